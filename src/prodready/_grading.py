"""The grading core: compose a graded notebook, run nbval on it, report per exercise.

``prodready check`` (a learner), ``prodready grade`` (an instructor) and the course's
self-tests all grade through ``grade_answers``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import shutil
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
from ._check import FIRST_KERNEL_ENV, GRADING_ENV
from ._course import COURSE_ENV, Course
from ._notebooks import (
    ANSWER,
    CHECK,
    Answers,
    NotebookError,
    cell_role,
    compose,
    learner_answers,
    read_notebook,
    stubs,
    write_notebook,
)
from ._scrutiny import Flag, scrutinize
from ._seal import check_cell, digest, read_evidence, seal_cell

SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
_CELL_FILE = re.compile(r"\(\d+\.py, line (\d+)\)")  # IPython's name for a cell's code
DEFAULT_TIMEOUT = 30.0  # seconds per learner cell: an infinite loop costs one exercise
COURSE_CELL_TIMEOUT = 120.0  # the course's own cells: generous, for a heavily loaded machine
_STARTUP_ALLOWANCE = 90.0  # kernel start, on top of the per-cell budgets


PASSED, FAILED, TAMPERED, FLAGGED = "passed", "failed", "tampered", "flagged"


@dataclass(frozen=True)
class ExerciseResult:
    exercise: str
    passed: bool
    message: str
    seconds: float = 0.0
    status: str = ""  # passed, failed, tampered (the seal caught it) or flagged (for review)
    culprit: bool = False  # tampered, and the seal saw this exercise's own answer do it

    @property
    def verdict(self) -> str:
        return self.status or (PASSED if self.passed else FAILED)


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
    files: list[Path | None] = []
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
        notice = _foreign_notice(module, path, answers)
        folder = path.parent / module.name  # a module whose answer includes files
        if module.files and not folder.is_dir():
            notice = notice or (
                f"no {module.name}/ folder next to {path.name}: the shipped starting code of "
                "the service was graded"
            )
        files.append(folder if module.files and folder.is_dir() else None)
        notices.append(notice)
    graded = grade_answers_many(course, batch, timeout=timeout, files=files)
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
    return ExerciseResult(result.exercise, False, message, result.seconds, result.status)


def grade_answers(
    course: Course,
    module: Module,
    answers: Answers,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    files: Path | None = None,
) -> tuple[tuple[ExerciseResult, ...], str]:
    """Grade answer sources by exercise id (and, for a module whose answer includes files,
    the folder of them; by default the shipped starting code). Returns the results in
    catalogue order and a note if a course (non-exercise) cell failed."""
    return grade_answers_many(course, [(module, answers)], timeout=timeout, files=[files])[0]


@dataclass(frozen=True)
class _Prepared:
    module: Module
    notebook: Any  # the graded notebook; its first cell is the seal, set once paths exist
    code_cells: list[Any]
    seal: dict[str, Any]  # what the seal cell needs, but the paths (see _run_nbval)
    key: bytes
    flags: dict[str, list[Flag]]
    budget: float
    files: Path | None  # copied next to the graded notebook, for modules with files


def _prepare(
    course: Course,
    module: Module,
    answers: Answers,
    timeout: float,
    files: Path | None,
    composed: Any = None,
) -> _Prepared:
    """The graded notebook for ``answers`` (or an already ``composed`` one), its seal's
    configuration, and the static review of the answers."""
    solution = read_notebook(course.solution(module))
    if module.files and files is None:
        files = course.starting_files(module)
    graded = composed if composed is not None else compose(solution, answers)
    nonce, key = secrets.token_hex(8), secrets.token_bytes(32)
    shipped = stubs(solution)
    course_cells: dict[str, str] = {}
    answer_cells: dict[str, str] = {}
    exercises: dict[str, dict[str, Any]] = {}
    checks_seen: dict[str, int] = {}  # a composed notebook may check an exercise many times
    for cell in graded.cells:
        if cell.cell_type != "code":
            continue
        role = cell_role(cell)
        if role and role[1] == ANSWER:
            answer_cells[_cell_digest(cell.source)] = role[0]
            continue
        at = str(checks_seen.get(role[0], 0) + 1) if role else ""
        if role and role[1] == CHECK and (rewritten := check_cell(nonce, cell.source, at)):
            exercise, cell.source, args = rewritten
            checks_seen[exercise] = int(at)
            cell.metadata["prodready"]["at"] = at
            exercises[exercise] = {"stubs": shipped.get(exercise, [""]), "args": args}
            course_cells[_cell_digest(cell.source)] = f"check:{exercise}@{at}"
            continue
        course_cells[_cell_digest(cell.source)] = "course"
    graded.cells.insert(0, nbformat.v4.new_code_cell(""))  # the seal, once its paths exist
    flags = {
        exercise: [flag for source in sources for flag in scrutinize(source)]
        for exercise, sources in answers.items()
    }
    code_cells = [c for c in graded.cells if c.cell_type == "code"]
    learner_cells = sum(cell_role(c) is not None for c in code_cells)
    # A hard stop: every learner cell may use its full timeout, and learner code that
    # makes a course cell hang gets caught here at the latest.
    budget = _STARTUP_ALLOWANCE + timeout * learner_cells + 2 * COURSE_CELL_TIMEOUT
    seal = {
        "nonce": nonce, "exercises": exercises, "course_cells": course_cells,
        "answer_cells": answer_cells, "solutions": str(course.root / "solutions"),
    }  # fmt: skip
    return _Prepared(module, graded, code_cells, seal, key, flags, budget, files)


def _cell_digest(source: str) -> str:
    """How the seal recognises a cell: the digest of the code IPython compiles for it."""
    try:
        compiled = _transformer().transform_cell(source)
    except (SyntaxError, ValueError):
        compiled = source
    return digest(compiled)


@functools.cache
def _transformer() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def grade_answers_many(
    course: Course,
    batch: Sequence[tuple[Module, Answers]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    files: Sequence[Path | None] | None = None,
) -> list[tuple[tuple[ExerciseResult, ...], str]]:
    """Grade several notebooks in one nbval run, each in its own folder and kernel.

    Code in one answer must not change another exercise's verdict: when the seal pins
    tampering on an exercise, its notebook is graded again with that answer replaced by
    the shipped starting code, and the other exercises get the second run's verdicts."""
    folders = list(files) if files is not None else [None] * len(batch)
    graded = _grade_once(course, batch, timeout, folders)
    affected = [(i, r) for i, (results, _) in enumerate(graded) for r in results
                if r.verdict == TAMPERED]  # fmt: skip
    if not affected:
        return graded
    culprits: dict[int, set[str]] = {}
    for i, r in affected:
        if r.culprit or r.exercise not in batch[i][1]:
            culprits.setdefault(i, set()).add(r.exercise)
    # Affected, but by whose code? Each such exercise alone: its own answer, the
    # reference's for the others. Tampered with there too, it did it itself.
    suspects = [(i, r.exercise) for i, r in affected if r.exercise not in culprits.get(i, ())]
    alone = _grade_once(
        course,
        [(batch[i][0], {**solution_answers(course, batch[i][0]), ex: batch[i][1][ex]})
         for i, ex in suspects],
        timeout,
        [folders[i] for i, _ in suspects],
    )  # fmt: skip
    for (i, ex), (results, _) in zip(suspects, alone, strict=True):
        if ex in _tampered_in(results):
            culprits.setdefault(i, set()).add(ex)
    # Then, where the culprits' code may have cost another exercise its verdict (anything
    # but a clean pass), the notebook again, with the culprits' answers as the shipped code.
    again = [
        (i, {**answers, **{ex: stubs_of(course, module)[ex] for ex in culprits.get(i, ())}})
        for i, (module, answers) in enumerate(batch)
        if any(j == i for j, _ in affected)
        and any(not r.passed for r in graded[i][0] if r.exercise not in culprits.get(i, ()))
    ]
    regraded = _grade_once(
        course,
        [(batch[i][0], answers) for i, answers in again],
        timeout,
        [folders[i] for i, _ in again],
    )
    for (i, _), (results, problem) in zip(again, regraded, strict=True):
        first = {r.exercise: r for r in graded[i][0]}
        graded[i] = (
            tuple(first[r.exercise] if r.exercise in culprits.get(i, ()) else r for r in results),
            problem,
        )
    return graded


def _tampered_in(results: Sequence[ExerciseResult]) -> set[str]:
    return {r.exercise for r in results if r.verdict == TAMPERED}


def solution_answers(course: Course, module: Module) -> dict[str, list[str]]:
    return learner_answers(read_notebook(course.solution(module)))


def stubs_of(course: Course, module: Module) -> dict[str, list[str]]:
    return stubs(read_notebook(course.solution(module)))


def _grade_once(
    course: Course,
    batch: Sequence[tuple[Module, Answers]],
    timeout: float,
    files: Sequence[Path | None],
) -> list[tuple[tuple[ExerciseResult, ...], str]]:
    prepared = [
        _prepare(course, module, answers, timeout, folder)
        for (module, answers), folder in zip(batch, files, strict=True)
    ]
    return [
        _results(p, lines, evidence, timeout)
        for p, (lines, evidence) in zip(
            prepared, run_prepared(course, prepared, timeout), strict=True
        )
    ]


Evidence = tuple[list[dict[str, Any]], int]  # the seal's authentic records, forged lines


def run_prepared(
    course: Course, prepared: Sequence[_Prepared], timeout: float
) -> list[tuple[dict[int, dict[str, Any]], Evidence]]:
    """Run prepared notebooks (one nbval run, a fresh kernel each): per notebook, its
    per-cell lines and the seal's evidence."""
    if not prepared:
        return []
    with tempfile.TemporaryDirectory(prefix="prodready-grade-") as tmp:
        try:
            lines, evidence = _run_nbval(prepared, Path(tmp), course, timeout)
        except RuntimeError:
            if len(prepared) == 1:
                raise
            lines, evidence = {}, {}  # the shared run never started: each alone, below
    missing = [i for i in range(len(prepared)) if not lines.get(_folder(i))]
    if len(prepared) > 1 and missing:
        # The shared run was stopped before these started: never let one notebook's
        # trouble cost the others their grade. Run each of them alone.
        for i in missing:
            with tempfile.TemporaryDirectory(prefix="prodready-grade-") as tmp:
                alone, proof = _run_nbval([prepared[i]], Path(tmp), course, timeout)
            lines[_folder(i)] = alone.get(_folder(0), {})
            evidence[_folder(i)] = proof.get(_folder(0), ([], 0))
    return [
        (lines.get(_folder(i), {}), evidence.get(_folder(i), ([], 0))) for i in range(len(prepared))
    ]


def _folder(index: int) -> str:
    return f"nb{index:03d}"


def _results(
    prepared: _Prepared,
    lines: dict[int, dict[str, Any]],
    evidence: tuple[list[dict[str, Any]], int],
    timeout: float,
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
    proof = _Proof(prepared.seal["nonce"], *evidence)
    results = []
    for ex in prepared.module.exercises:
        cells = by_exercise.get(ex.id, [])
        seconds = round(sum(float(line.get("seconds", 0.0)) for _, line in cells), 3)
        failed = [(role, line) for role, line in cells if line["outcome"] != "passed"]
        if not cells:
            result = ExerciseResult(ex.id, False, "the solution has no cells for it")
        elif failed:
            message = _explain(failed[0][1], failed[0][0], timeout)
            result = ExerciseResult(ex.id, False, message, seconds)
        else:
            result = ExerciseResult(ex.id, True, "passed", seconds)
        results.append(proof.judge(result, prepared.flags.get(ex.id, [])))
    if proof.forged:
        setup_problem = setup_problem or (
            f"{proof.forged} line(s) of the grader's evidence were forged; see the tampered "
            "exercises"
        )
    return tuple(results), setup_problem


class _Proof:
    """What the seal signed in the kernel: a pass counts only with its signed verdict and
    canary, and tampering pinned on an exercise costs that exercise."""

    def __init__(self, nonce: str, records: list[dict[str, Any]], forged: int) -> None:
        mine = [r for r in records if r.get("nonce") == nonce]
        self.forged = forged + len(records) - len(mine)
        self.sealed = any(r["kind"] == "sealed" for r in mine)
        self.tampering: dict[str | None, list[str]] = {}
        self.certain: set[str] = set()  # tampering that the exercise's own answer cell did
        self.verdicts: dict[tuple[str, str], bool] = {}  # (exercise, which check cell)
        self.canaries: dict[tuple[str, str], bool] = {}
        for r in mine:
            if r["kind"] in ("tampered", "suspect"):
                self.tampering.setdefault(r["exercise"], []).append(str(r["detail"]))
                if r["kind"] == "tampered" and r["exercise"]:
                    self.certain.add(str(r["exercise"]))
            elif r["kind"] == "verdict":
                self.verdicts[(r["exercise"], r["at"])] = bool(r["ok"])
            elif r["kind"] == "canary":
                self.canaries[(r["exercise"], r["at"])] = bool(r["ok"])

    def judge(self, nbval: ExerciseResult, flags: list[Flag], at: str = "1") -> ExerciseResult:
        ex, seconds = nbval.exercise, nbval.seconds
        why = self.tampering.get(ex) or (self.tampering.get(None) if nbval.passed else None)
        if why:
            culprit = ex in self.certain
            return ExerciseResult(ex, False, _tampered(why[0]), seconds, TAMPERED, culprit)
        if not nbval.passed:
            if flags:
                message = f"{nbval.message}\n(also {_flagged(flags)})"
                return ExerciseResult(ex, False, message, seconds, FLAGGED)
            return nbval
        if not self.sealed:
            return ExerciseResult(ex, False, "grading could not seal the kernel", seconds)
        if not self.verdicts.get((ex, at)):
            return ExerciseResult(ex, False, _tampered(_FORGED_OUTPUT), seconds, TAMPERED)
        if self.canaries.get((ex, at)) is not True:
            why_canary = _CANARY_ACCEPTED if (ex, at) in self.canaries else _CANARY_MISSING
            return ExerciseResult(ex, False, _tampered(why_canary), seconds, TAMPERED)
        if flags:
            message = (
                f"the check passed, but {_flagged(flags)}. Answers have no need for that, so "
                "it counts once an instructor has looked at it"
            )
            return ExerciseResult(ex, False, message, seconds, FLAGGED)
        return nbval


_FORGED_OUTPUT = (
    "the check cell printed the passing verdict, but the course's checker never passed "
    "this answer: the output was produced some other way"
)
_CANARY_ACCEPTED = (
    "the checker also passed the exercise's shipped starting code, so code in this "
    "notebook had changed how it judges"
)
_CANARY_MISSING = "the grader could not confirm this check (its canary never ran)"


def _flagged(flags: list[Flag]) -> str:
    listed = "; ".join(f"{f.reason} ({f.line and f'line {f.line}'})" for f in flags[:3])
    more = f" and {len(flags) - 3} more" if len(flags) > 3 else ""
    return f"flagged for review: this answer {listed}{more}"


def _tampered(detail: str) -> str:
    return (
        f"tampered: {detail}. An answer that reaches into the grader earns nothing; if you "
        "believe this is a mistake, ask your instructor to review it"
    )


def _run_nbval(
    prepared: Sequence[_Prepared], workdir: Path, course: Course, timeout: float
) -> tuple[dict[str, dict[int, dict[str, Any]]], dict[str, tuple[list[dict[str, Any]], int]]]:
    """One pytest/nbval run over the notebooks: per-cell lines and the seal's evidence,
    keyed by notebook folder. Each notebook sits in a folder of its own, which its kernel
    gets as working directory; the grader's own files (report, evidence, the seal's
    config with its key) are in ``private/``, which the seal refuses to learner code."""
    private = workdir / "private"
    private.mkdir(mode=0o700)
    names = []
    for i, p in enumerate(prepared):
        (workdir / _folder(i)).mkdir()
        config = private / f"{_folder(i)}.json"
        seal = {
            "key": p.key.hex(), "nonce": p.seal["nonce"], "exercises": p.seal["exercises"],
            "course_cells": p.seal["course_cells"], "answer_cells": p.seal["answer_cells"],
            "evidence": str(private / f"{_folder(i)}.evidence"),
            "protected": [p.seal["solutions"], str(private)],
            "canary_dir": "",
        }  # fmt: skip
        if p.module.files:  # the canary judges the shipped files, in a folder of their own
            canary = workdir / f"{_folder(i)}.canary"
            copy_answer_files(course.starting_files(p.module), canary / p.module.name)
            seal["canary_dir"] = str(canary)
        config.write_text(json.dumps(seal), encoding="utf-8")
        config.chmod(0o600)
        p.notebook.cells[0].source = seal_cell(str(config))
        write_notebook(p.notebook, workdir / _folder(i) / "graded.ipynb")
        if p.files is not None:  # the learner's files, beside the notebook as in exercises/
            copy_answer_files(p.files, workdir / _folder(i) / p.module.name)
        names.append(f"{_folder(i)}/graded.ipynb")
    report, log = private / "cells.jsonl", private / "log"
    (workdir / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # not the repo's config
    command = [
        sys.executable, "-m", "pytest", *names, "-c", "pytest.ini", "--rootdir", ".",
        "-q", "-p", "no:cacheprovider", "-p", "prodready._nbval_report", "-p", "nbval.plugin",
        f"--prodready-report={report}", "--nbval", "--nbval-current-env",
        f"--nbval-cell-timeout={max(COURSE_CELL_TIMEOUT, timeout):g}",
        f"--prodready-learner-timeout={timeout:g}", f"--nbval-sanitize-with={SANITIZE}",
    ]  # fmt: skip
    env = {**os.environ, GRADING_ENV: "1", COURSE_ENV: str(course.root)}
    env[FIRST_KERNEL_ENV] = str(workdir / _folder(0))  # booted while pytest starts
    # Only the plugins named above: xdist, anyio's and platformdirs' load otherwise, 0.4 s of
    # CPU in every grading run (the ordering matters too: ours before nbval's, see its top).
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
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
    evidence = {
        _folder(i): read_evidence(private / f"{_folder(i)}.evidence", p.key)
        for i, p in enumerate(prepared)
    }
    return lines, evidence


_FILES_LIMIT = 20_000_000  # bytes: a service's source, not a data set or a virtualenv
_NOT_ANSWERS = ("__pycache__", "*.pyc", ".ipynb_checkpoints", ".venv", "*.sqlite*", "*.db")


def _not_answers(folder: str, names: list[str]) -> set[str]:
    """Caches, databases and every symbolic link: a link in a submission could point the
    grader, who can read the reference, at it."""
    skipped = shutil.ignore_patterns(*_NOT_ANSWERS)(folder, names)
    return skipped | {n for n in names if os.path.islink(os.path.join(folder, n))}


def copy_answer_files(source: Path, target: Path) -> None:
    """A copy of a learner's folder of files, without caches, databases or links. The
    grader reads submissions only, so the kernel works on this copy."""
    shutil.copytree(source, target, ignore=_not_answers)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    if size > _FILES_LIMIT:
        shutil.rmtree(target)
        target.mkdir()
        (target / "TOO_LARGE").write_text(f"{source} holds {size} bytes", encoding="utf-8")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the test run and the kernels it started (its grandchildren)."""
    if sys.platform == "win32":  # no process groups: ask Windows to end the whole tree
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(proc.pid)], capture_output=True)
    else:
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
        return evalue.partition(": ")[2] or evalue
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
