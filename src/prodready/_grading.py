"""The grading core: compose a graded notebook, run nbval on it, report per exercise.

``prodready check`` (a learner), ``prodready grade`` (an instructor) and the course's
self-tests all grade through ``grade_answers``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from ._catalogue import Module
from ._check import GRADING_ENV
from ._course import COURSE_ENV, Course
from ._notebooks import (
    ANSWER,
    Answers,
    NotebookError,
    cell_role,
    compose,
    learner_answers,
    read_notebook,
    write_notebook,
)

SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
_CELL_FILE = re.compile(r"\(\d+\.py, line (\d+)\)")  # IPython's name for a cell's code
DEFAULT_TIMEOUT = 30.0  # seconds per learner cell: an infinite loop costs one exercise
COURSE_CELL_TIMEOUT = 120.0  # the course's own cells: generous, for a heavily loaded machine
_STARTUP_ALLOWANCE = 90.0  # kernel start, on top of the per-cell budgets


@dataclass(frozen=True)
class ExerciseResult:
    exercise: str
    passed: bool
    message: str
    seconds: float = 0.0


@dataclass(frozen=True)
class ModuleGrade:
    module: Module
    results: tuple[ExerciseResult, ...]
    notice: str = ""  # about the notebook as a whole (unreadable, another module's, ...)
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)


def grade_workbook(
    course: Course, module: Module, path: Path, *, timeout: float = DEFAULT_TIMEOUT
) -> ModuleGrade:
    """Grade one learner's workbook file against the module's solution. Never raises for
    a bad submission: every problem becomes a verdict. The file is only read."""
    return grade_workbooks(course, [(module, path)], timeout=timeout)[0]


def grade_workbooks(
    course: Course, workbooks: Sequence[tuple[Module, Path]], *, timeout: float = DEFAULT_TIMEOUT
) -> list[ModuleGrade]:
    """Grade several workbooks in one nbval run (a fresh kernel each), saving the
    start-up of a test run per notebook. The results come back in the same order."""
    started = time.monotonic()
    grades: list[ModuleGrade | None] = []
    batch: list[tuple[Module, Answers]] = []
    positions: list[int] = []
    notices: list[str] = []
    for module, path in workbooks:
        try:
            answers = learner_answers(read_notebook(path))
        except NotebookError as e:
            message = f"your workbook could not be graded: {e}"
            results = tuple(ExerciseResult(ex.id, False, message) for ex in module.exercises)
            grades.append(ModuleGrade(module, results, str(e)))
            continue
        positions.append(len(grades))
        grades.append(None)
        batch.append((module, answers))
        notices.append(_foreign_notice(module, path, answers))
    graded = grade_answers_many(course, batch, timeout=timeout)
    for position, (module, given), notice, (results, setup_problem) in zip(
        positions, batch, notices, graded, strict=True
    ):
        noted = tuple(_note_missing(r, given, notice) for r in results)
        grades[position] = ModuleGrade(module, noted, notice or setup_problem)
    elapsed = (time.monotonic() - started) / max(len(workbooks), 1)
    return [ModuleGrade(g.module, g.results, g.notice, elapsed) for g in grades if g is not None]


def _foreign_notice(module: Module, path: Path, answers: Answers) -> str:
    ours = {ex.id for ex in module.exercises}
    if answers and not ours & set(answers):
        foreign = sorted({ex.partition(".")[0] for ex in answers})
        return (
            f"{path.name} holds answers for {', '.join(foreign)}, not for {module.name}: "
            "was another workbook saved under this name?"
        )
    return ""


def _note_missing(result: ExerciseResult, answers: Answers, notice: str) -> ExerciseResult:
    if result.passed or result.exercise in answers:
        return result
    why = notice or "your notebook has no answer cell for it (deleted or retagged?)"
    message = (
        f"{why}; the shipped starting code was graded instead: {result.message}\n"
        f"`prodready reset {result.exercise}` puts the cell back (your notebook is backed up)"
    )
    return ExerciseResult(result.exercise, False, message, result.seconds)


def grade_answers(
    course: Course, module: Module, answers: Answers, *, timeout: float = DEFAULT_TIMEOUT
) -> tuple[tuple[ExerciseResult, ...], str]:
    """Grade answer sources by exercise id. Returns the results in catalogue order and a
    note if a course (non-exercise) cell failed, which points at the environment."""
    return grade_answers_many(course, [(module, answers)], timeout=timeout)[0]


@dataclass(frozen=True)
class _Prepared:
    module: Module
    notebook: Any  # the graded notebook
    code_cells: list[Any]
    tampered: set[str]
    budget: float


def _prepare(course: Course, module: Module, answers: Answers, timeout: float) -> _Prepared:
    honest, tampered = _refuse_tampering(answers)
    graded = compose(read_notebook(course.solution(module)), honest)
    graded.cells.insert(0, nbformat.v4.new_code_cell(_GUARD_CELL))
    code_cells = [c for c in graded.cells if c.cell_type == "code"]
    learner_cells = sum(cell_role(c) is not None for c in code_cells)
    # A hard stop: every learner cell may use its full timeout, and learner code that
    # makes a course cell hang gets caught here at the latest.
    budget = _STARTUP_ALLOWANCE + timeout * learner_cells + 2 * COURSE_CELL_TIMEOUT
    return _Prepared(module, graded, code_cells, tampered, budget)


def grade_answers_many(
    course: Course,
    batch: Sequence[tuple[Module, Answers]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[tuple[tuple[ExerciseResult, ...], str]]:
    """Grade several notebooks in one nbval run, each in its own folder and kernel."""
    prepared = [_prepare(course, module, answers, timeout) for module, answers in batch]
    if not prepared:
        return []
    with tempfile.TemporaryDirectory(prefix="prodready-grade-") as tmp:
        try:
            lines = _run_nbval(prepared, Path(tmp), course, timeout)
        except RuntimeError:
            if len(prepared) == 1:
                raise
            lines = {}  # the shared run never started: grade each notebook alone below
    missing = [i for i in range(len(prepared)) if not lines.get(_folder(i))]
    if len(prepared) > 1 and missing:
        # The shared run was stopped before these started: never let one notebook's
        # trouble cost the others their grade. Run each of them alone.
        for i in missing:
            with tempfile.TemporaryDirectory(prefix="prodready-grade-") as tmp:
                alone = _run_nbval([prepared[i]], Path(tmp), course, timeout)
            lines[_folder(i)] = alone.get(_folder(0), {})
    return [_results(p, lines.get(_folder(i), {}), timeout) for i, p in enumerate(prepared)]


def _folder(index: int) -> str:
    return f"nb{index:03d}"


def _results(
    prepared: _Prepared, lines: dict[int, dict[str, Any]], timeout: float
) -> tuple[tuple[ExerciseResult, ...], str]:
    by_exercise: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    setup_problem = ""
    for index, cell in enumerate(prepared.code_cells):
        line = lines.get(index, {"cell": index, "outcome": "not run"})
        role = cell_role(cell)
        if role is None:
            if line["outcome"] != "passed" and not setup_problem:
                why = _explain(line, "", timeout)
                setup_problem = f"a course cell (code cell {index}) failed: {why}"
            continue
        by_exercise.setdefault(role[0], []).append((role[1], line))
    results = []
    for ex in prepared.module.exercises:
        if ex.id in prepared.tampered:
            results.append(ExerciseResult(ex.id, False, _TAMPERING))
            continue
        cells = by_exercise.get(ex.id, [])
        seconds = round(sum(float(line.get("seconds", 0.0)) for _, line in cells), 3)
        failed = [(role, line) for role, line in cells if line["outcome"] != "passed"]
        if cells and not failed:
            results.append(ExerciseResult(ex.id, True, "passed", seconds))
        elif failed:
            results.append(ExerciseResult(ex.id, False, _explain(failed[0][1], failed[0][0],
                                                                 timeout), seconds))  # fmt: skip
        else:
            results.append(ExerciseResult(ex.id, False, "the solution has no cells for it"))
    return tuple(results), setup_problem


_GUARD_CELL = "from prodready._guard import limit_output\nlimit_output()"
# Checks run in the same kernel as the learner's code, so code that rebinds or patches
# the checker could fake a pass. Grading refuses answers that reach for it.
_TAMPER_PATTERN = re.compile(
    r"ExerciseFailed|_REGISTRY|_conclude|prodready\._check"
    r"|^\s*(?:async\s+)?def\s+check(?:_async)?\s*\("
    r"|^\s*check(?:_async)?\s*[:=]"
    r"|\bas\s+check(?:_async)?\b"
    r"|prodready\.\w+\s*=|setattr\(\s*prodready",
    re.MULTILINE,
)
_TAMPERING = (
    "this answer reaches for the course's checker (it rebinds `check` or patches "
    "`prodready`), so it was not graded; solve the exercise in your own code"
)


def _refuse_tampering(answers: Answers) -> tuple[dict[str, list[str]], set[str]]:
    honest: dict[str, list[str]] = {}
    tampered: set[str] = set()
    for exercise, sources in answers.items():
        if any(_TAMPER_PATTERN.search(source) for source in sources):
            tampered.add(exercise)
            honest[exercise] = [""]  # graded as empty, so it cannot touch the other checks
        else:
            honest[exercise] = list(sources)
    return honest, tampered


def _run_nbval(
    prepared: Sequence[_Prepared], workdir: Path, course: Course, timeout: float
) -> dict[str, dict[int, dict[str, Any]]]:
    """One pytest/nbval run over the notebooks; per-cell lines, keyed by notebook folder.
    Each notebook sits in a folder of its own, which its kernel gets as working dir."""
    names = []
    for i, p in enumerate(prepared):
        (workdir / _folder(i)).mkdir()
        write_notebook(p.notebook, workdir / _folder(i) / "graded.ipynb")
        names.append(f"{_folder(i)}/graded.ipynb")
    report, log = workdir / "cells.jsonl", workdir / "log"
    (workdir / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # not the repo's config
    command = [
        sys.executable, "-m", "pytest", *names, "-c", "pytest.ini", "--rootdir", ".",
        "-q", "-p", "no:cacheprovider", "-p", "prodready._nbval_report",
        f"--prodready-report={report}", "--nbval", "--nbval-current-env",
        f"--nbval-cell-timeout={max(COURSE_CELL_TIMEOUT, timeout):g}",
        f"--prodready-learner-timeout={timeout:g}", f"--nbval-sanitize-with={SANITIZE}",
    ]  # fmt: skip
    env = {**os.environ, GRADING_ENV: "1", COURSE_ENV: str(course.root)}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    with open(log, "wb") as out:
        # A session of its own, so a stop takes the kernels (grandchildren) with it.
        proc = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            proc.wait(timeout=sum(p.budget for p in prepared))
        except subprocess.TimeoutExpired:
            pass
        finally:
            _kill_group(proc)
    lines: dict[str, dict[int, dict[str, Any]]] = {}
    if report.exists():
        for raw in report.read_text(encoding="utf-8").splitlines():
            line = json.loads(raw)
            lines.setdefault(line["notebook"], {})[int(line["cell"])] = line
    if not lines:
        tail = log.read_text(encoding="utf-8", errors="replace")[-1500:]
        raise RuntimeError(f"nbval did not run any cell; its output ended with:\n{tail}")
    return lines


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended on its own
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _explain(line: dict[str, Any], role: str, timeout: float) -> str:
    """Turn one failed cell into a message for the learner."""
    outcome, reason = line["outcome"], str(line.get("reason", ""))
    ename, evalue = str(line.get("ename", "")), str(line.get("evalue", ""))
    evalue = _CELL_FILE.sub(r"(line \1 of the cell)", evalue)
    if outcome == "not run":
        return "not run: grading stopped before this cell (an earlier cell hung or crashed)"
    if "Kernel dead" in reason:
        return "not checked: the Python kernel died in an earlier exercise"
    if not line.get("kernel_alive", True):
        return (
            "the Python kernel died running this cell (os._exit()? a crash?), "
            "so the exercises after it could not be checked either"
        )
    if reason.startswith("Timeout"):
        return (
            f"stopped after {timeout:g} s: look for a loop that never ends or a call that "
            "waits forever (a missing timeout?)"
        )
    if ename == "ExerciseFailed":
        return evalue.split("\nStuck? Run")[0].partition(": ")[2] or evalue
    if ename:
        where = "your answer" if role == ANSWER else "the check"
        detail = f"{ename}: {evalue}" if evalue else ename
        if role == ANSWER:
            return f"{where} raised {detail}"
        return f"{where} could not run your code: {detail} (keep the names the task asks for)"
    if reason == "Cell outputs differ":
        return (
            "the check printed something other than the reference verdict:\n"
            + str(line.get("diff", "")).strip()
        )
    return reason or outcome
