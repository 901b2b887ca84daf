"""Class grading throughput: `prodready grade` against nbgrader's `autograde`, same run.

A synthetic class is made from the course itself: BENCH_LEARNERS learners (default 30)
× every module (or BENCH_MODULES, e.g. `01,05`), each workbook solved, left as shipped
(stubs) or partly solved, chosen by a seeded generator. prodready grades it end to end
(find_submissions → grade_class with one job per CPU → write_gradebook) and every verdict
is checked, so a broken grader cannot post a good figure.

nbgrader 0.9.6 then grades the same answers at the same isolation (a fresh kernel per
notebook): each solution becomes an nbgrader source notebook (answer cells are autograded
answers, check cells are 1-point autograder tests, every other cell is locked), `nbgrader
generate_assignment` releases it, the learners' answers go into
`submitted/<learner>/prodready/<NN_slug>.ipynb`, and `nbgrader autograde prodready --force`
is timed. Both tools run the notebooks in the same kernel: the course's own Python
(`sys.executable -m ipykernel_launcher`), with PRODREADY_GRADING=1 and PRODREADY_COURSE set.

nbgrader is never installed into the course's environment (its pins would fight the
course's): it gets a venv of its own, `.venv/bench-nbgrader/`, made on first use.

Targets (issue 21): prodready at least 3x nbgrader's throughput, and a class of 30 graded in at most
10 minutes on a 2-core machine. Figures are from one run each, so noisy on a busy machine.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import nbformat
from nbformat import NotebookNode

from prodready._catalogue import Module
from prodready._check import GRADING_ENV
from prodready._course import COURSE_ENV, Course
from prodready._gradebook import find_submissions, grade_class, write_gradebook
from prodready._notebooks import (
    ANSWER,
    CHECK,
    build_workbook,
    cell_role,
    learner_answers,
    read_notebook,
    stubs,
    write_notebook,
)

SEED = 20260101
CLASS_SIZE = 30  # the target's class
CLASS_TARGET_SECONDS = 600.0
RATIO_TARGET = 3.0
NBGRADER = "nbgrader==0.9.6"
ASSIGNMENT = "prodready"
KERNEL_NAME = "prodready-course"
NB_TIMEOUT = 120  # nbgrader's per-cell timeout: prodready allows its course cells as much
NB_STARTUP_TIMEOUT = 90  # prodready's kernel-start allowance
REPO = Path(__file__).resolve().parents[1]
BENCH_VENV = REPO / ".venv" / "bench-nbgrader"

Plan = dict[str, dict[str, dict[str, bool]]]  # learner -> module -> exercise -> solved?


class Timing(NamedTuple):
    tool: str
    notebooks: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.notebooks / self.seconds if self.seconds else 0.0


def main() -> None:
    course = Course.discover()
    modules = _selected_modules(course)
    learners = int(os.environ.get("BENCH_LEARNERS", str(CLASS_SIZE)))
    jobs = os.cpu_count() or 1
    plan = make_plan(modules, learners, SEED)
    notebooks = learners * len(modules)
    solved = sum(v for mods in plan.values() for exs in mods.values() for v in exs.values())
    total = sum(len(exs) for mods in plan.values() for exs in mods.values())
    print(
        f"class: {learners} learners × {len(modules)} modules "
        f"({', '.join(m.number for m in modules)}) = {notebooks} notebooks, "
        f"{solved}/{total} exercises solved; {jobs} CPUs"
    )
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="prodready-bench-grade-") as tmp:
        root = Path(tmp)
        answers = {m.name: _module_answers(course, m) for m in modules}

        prodready = time_prodready(course, modules, plan, answers, root / "prodready", jobs)
        problems += prodready[1]
        _report(prodready[0], learners, len(course.catalogue.modules), len(modules))

        nbgrader_exe = ensure_nbgrader()
        nbgrader: Timing | None = None
        if nbgrader_exe is not None:
            try:
                nbgrader, disagreements = time_nbgrader(
                    course, modules, plan, answers, root / "nbgrader", nbgrader_exe
                )
            except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                print(f"nbgrader: FAILED, so only prodready's figures are reported:\n{e}")
                disagreements = []
            else:
                _report(nbgrader, learners, len(course.catalogue.modules), len(modules))
            if disagreements:
                print(f"nbgrader disagreed with the expected verdict {len(disagreements)} times:")
                for line in disagreements[:10]:
                    print(f"  {line}")

    ours = prodready[0]
    print()
    print(f"{'tool':<10} {'notebooks':>9} {'seconds':>9} {'nb/s':>7}")
    for timing in (ours, nbgrader):
        if timing is not None:
            print(
                f"{timing.tool:<10} {timing.notebooks:>9} {timing.seconds:>8.1f}s "
                f"{timing.per_second:>7.3f}"
            )
    class_seconds = _class_estimate(ours, len(course.catalogue.modules))
    scope = (
        "measured"
        if learners == CLASS_SIZE and len(modules) == len(course.catalogue.modules)
        else f"extrapolated to {CLASS_SIZE} learners × {len(course.catalogue.modules)} modules"
    )
    print(
        f"class of {CLASS_SIZE} graded in {class_seconds:.0f} s ({scope}); "
        f"under {CLASS_TARGET_SECONDS:g} s: {class_seconds <= CLASS_TARGET_SECONDS}"
    )
    if nbgrader is not None and nbgrader.per_second:
        ratio = ours.per_second / nbgrader.per_second
        print(
            f"prodready / nbgrader throughput: {ratio:.2f}x "
            f"(jobs={jobs} vs nbgrader's serial autograde); "
            f"at least {RATIO_TARGET:g}x: {ratio >= RATIO_TARGET}"
        )
    else:
        print("prodready / nbgrader throughput: not measured (nbgrader unavailable)")
    if problems:
        listed = "\n  ".join(problems[:20])
        raise AssertionError(
            f"prodready gave {len(problems)} wrong verdicts; its figures are void:\n  {listed}"
        )


# --- the synthetic class -------------------------------------------------------------


def _selected_modules(course: Course) -> list[Module]:
    wanted = os.environ.get("BENCH_MODULES", "").strip()
    if not wanted:
        return list(course.catalogue)
    return [course.catalogue.module(key.strip()) for key in wanted.split(",") if key.strip()]


def make_plan(modules: Sequence[Module], learners: int, seed: int) -> Plan:
    """Which exercises each learner solved: a third solved everything, a third handed in
    the stubs, a third solved some (at least one, never all, per module)."""
    rng = random.Random(seed)
    plan: Plan = {}
    for n in range(learners):
        kind = ("solved", "stub", "partial")[n % 3]
        mine: dict[str, dict[str, bool]] = {}
        for module in modules:
            ids = [ex.id for ex in module.exercises]
            if kind == "partial":
                k = rng.randint(1, len(ids) - 1)
                chosen = set(rng.sample(ids, k))
                mine[module.name] = {ex: ex in chosen for ex in ids}
            else:
                mine[module.name] = dict.fromkeys(ids, kind == "solved")
        plan[f"learner{n + 1:02d}"] = mine
    return plan


class ModuleAnswers(NamedTuple):
    solution: NotebookNode
    solved: dict[str, list[str]]
    shipped: dict[str, list[str]]

    def of(self, solved: Mapping[str, bool]) -> dict[str, list[str]]:
        return {ex: (self.solved if ok else self.shipped)[ex] for ex, ok in solved.items()}


def _module_answers(course: Course, module: Module) -> ModuleAnswers:
    solution = read_notebook(course.solution(module))
    return ModuleAnswers(solution, learner_answers(solution), stubs(solution))


def _fill_answers(nb: NotebookNode, answers: Mapping[str, Sequence[str]], key: str) -> None:
    """Put each exercise's answer sources into its answer cells, in order. ``key`` picks
    the cells: by prodready's metadata, or by nbgrader's grade ids."""
    seen: dict[str, int] = {}
    for cell in nb.cells:
        exercise = _answer_exercise(cell, key)
        if exercise is None:
            continue
        n = seen.get(exercise, 0)
        seen[exercise] = n + 1
        cell.source = answers[exercise][n]
    for exercise, sources in answers.items():
        if seen.get(exercise, 0) != len(sources):
            raise ValueError(f"{exercise}: {len(sources)} answers for {seen.get(exercise)} cells")


def _answer_exercise(cell: NotebookNode, key: str) -> str | None:
    if cell.cell_type != "code":
        return None
    if key == "prodready":
        role = cell_role(cell)
        return role[0] if role and role[1] == ANSWER else None
    meta = cell.metadata.get("nbgrader", {})
    match = re.fullmatch(r"answer-(.+)-\d+", str(meta.get("grade_id", "")))
    return match.group(1).replace("-", ".", 1) if match and meta.get("solution") else None


def _grade_name(exercise: str) -> str:
    """An nbgrader grade id part (no dots): ids are ``slug.name`` without dashes."""
    return exercise.replace(".", "-")


# --- prodready -----------------------------------------------------------------------


def time_prodready(
    course: Course,
    modules: Sequence[Module],
    plan: Plan,
    answers: Mapping[str, ModuleAnswers],
    root: Path,
    jobs: int,
) -> tuple[Timing, list[str]]:
    class_dir, out = root / "class", root / "gradebook"
    for learner, mine in plan.items():
        folder = class_dir / learner / "exercises"
        folder.mkdir(parents=True)
        for module in modules:
            workbook = build_workbook(answers[module.name].solution)
            _fill_answers(workbook, answers[module.name].of(mine[module.name]), "prodready")
            write_notebook(workbook, folder / f"{module.name}.ipynb")
    print(f"\nprodready: grading {len(plan) * len(modules)} notebooks, jobs={jobs} ...", flush=True)
    started = time.perf_counter()
    submissions = find_submissions(course, [class_dir], modules)
    rows = grade_class(course, submissions, jobs=jobs)
    write_gradebook(course, rows, out)
    seconds = time.perf_counter() - started
    problems = []
    got = {(r.learner, r.exercise): r for r in rows}
    for learner, mine in plan.items():
        for module_name, solved in mine.items():
            for exercise, expected in solved.items():
                row = got.get((learner, exercise))
                if row is None:
                    problems.append(f"{learner} {exercise}: no verdict")
                elif row.passed != expected:
                    problems.append(
                        f"{learner} {module_name} {exercise}: expected "
                        f"{'pass' if expected else 'fail'}, got {row.message[:200]!r}"
                    )
    if len(rows) != len(got):
        problems.append(f"{len(rows)} rows for {len(got)} (learner, exercise) pairs")
    if not (out / "grades.csv").exists() or not (out / "summary.csv").exists():
        problems.append("the gradebook was not written")
    verdict = "all verdicts right" if not problems else f"{len(problems)} WRONG verdicts"
    print(f"prodready: {verdict} ({len(rows)} exercise verdicts)")
    return Timing("prodready", len(submissions), seconds), problems


# --- nbgrader ------------------------------------------------------------------------


def ensure_nbgrader() -> Path | None:
    """nbgrader in a venv of its own, installed on first use; None if it cannot be."""
    exe, stamp = BENCH_VENV / "bin" / "nbgrader", BENCH_VENV / f".installed-{NBGRADER}"
    if exe.exists() and stamp.exists():
        return exe
    print(f"\nnbgrader: installing {NBGRADER} into {BENCH_VENV} (first use) ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(BENCH_VENV)],
        [str(BENCH_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", NBGRADER],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            print("nbgrader: COULD NOT BE INSTALLED, so only prodready's figures are reported:")
            print("  " + "\n  ".join(tail))
            return None
    stamp.touch()
    return exe


def nbgrader_source(solution: NotebookNode) -> NotebookNode:
    """The solution as an nbgrader source notebook: answers are autograded answers (the
    solution between BEGIN/END SOLUTION markers), checks are 1-point tests, the rest locked."""
    nb: NotebookNode = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "prodready course", "language": "python",
                                  "name": KERNEL_NAME}}  # fmt: skip
    counts: dict[tuple[str, str], int] = {}
    meta: dict[str, bool | int]
    for index, source_cell in enumerate(solution.cells):
        cell = nbformat.from_dict(
            {k: v for k, v in source_cell.items() if k not in ("outputs", "execution_count")}
        )
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {}
        role = cell_role(source_cell)
        if role and cell.cell_type == "code":
            exercise, kind = role
            n = counts.get(role, 0)
            counts[role] = n + 1
            grade_id = f"{kind}-{_grade_name(exercise)}-{n}"
            if kind == ANSWER:
                cell.source = f"### BEGIN SOLUTION\n{cell.source}\n### END SOLUTION"
                meta = {"solution": True, "grade": False, "locked": False}
            else:
                assert kind == CHECK
                meta = {"grade": True, "solution": False, "locked": True, "points": 1}
        else:
            grade_id = f"cell-{index}"
            meta = {"solution": False, "grade": False, "locked": True}
        cell.metadata["nbgrader"] = {**meta, "grade_id": grade_id, "schema_version": 3}
        nb.cells.append(cell)
    return nb


def time_nbgrader(
    course: Course,
    modules: Sequence[Module],
    plan: Plan,
    answers: Mapping[str, ModuleAnswers],
    root: Path,
    exe: Path,
) -> tuple[Timing, list[str]]:
    home = root / "course"
    source = home / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    (home / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(home)!r}\n"
        f"c.CourseDirectory.course_id = {ASSIGNMENT!r}\n"
        f"c.Execute.timeout = {NB_TIMEOUT}\n"
        f"c.Execute.startup_timeout = {NB_STARTUP_TIMEOUT}\n",
        encoding="utf-8",
    )
    # The course's kernel, exactly as prodready's nbval runs it (--nbval-current-env).
    kernel_dir = root / "jupyter" / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True)
    course_env = {GRADING_ENV: "1", COURSE_ENV: str(course.root)}
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "prodready course",
        "language": "python",
        "env": course_env,
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    (root / "jupyter-config").mkdir()
    env = {
        **os.environ,
        **course_env,
        "JUPYTER_PATH": str(root / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(root / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(root / "jupyter-data"),
        # nbgrader runs `alembic` by name; last on PATH, so the kernel's PATH is unchanged
        "PATH": os.pathsep.join([os.environ.get("PATH", os.defpath), str(exe.parent)]),
    }
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "JUPYTER_PREFER_ENV_PATH"):
        env.pop(key, None)
    for module in modules:
        nbformat.write(
            nbgrader_source(answers[module.name].solution), source / f"{module.name}.ipynb"
        )
    _nbgrader(exe, ["generate_assignment", ASSIGNMENT, "--force"], home, env, root / "gen.log")
    released = {
        m.name: nbformat.read(home / "release" / ASSIGNMENT / f"{m.name}.ipynb", as_version=4)
        for m in modules
    }
    for learner, mine in plan.items():
        folder = home / "submitted" / learner / ASSIGNMENT
        folder.mkdir(parents=True)
        for module in modules:
            nb = nbformat.from_dict(json.loads(json.dumps(released[module.name])))
            _fill_answers(nb, answers[module.name].of(mine[module.name]), "nbgrader")
            nbformat.write(nb, folder / f"{module.name}.ipynb")
    notebooks = len(plan) * len(modules)
    print(f"\nnbgrader: autograding {notebooks} notebooks (serial, as nbgrader does) ...")
    sys.stdout.flush()
    started = time.perf_counter()
    _nbgrader(exe, ["autograde", ASSIGNMENT, "--force"], home, env, root / "autograde.log")
    seconds = time.perf_counter() - started
    scores = _nbgrader_scores(exe, home, env)
    disagreements = []
    for learner, mine in plan.items():
        for module_name, solved in mine.items():
            for exercise, expected in solved.items():
                got = scores.get(f"{learner}/{module_name}/check-{_grade_name(exercise)}-0")
                if got is None or (got > 0) != expected:
                    disagreements.append(
                        f"{learner} {exercise}: expected {'pass' if expected else 'fail'}, "
                        f"nbgrader scored {got}"
                    )
    print(
        "nbgrader: all verdicts right"
        if not disagreements
        else f"nbgrader: {len(disagreements)} verdicts differ from the expected ones"
    )
    return Timing("nbgrader", notebooks, seconds), disagreements


def _nbgrader(exe: Path, args: list[str], home: Path, env: dict[str, str], log: Path) -> None:
    with log.open("wb") as out:
        done = subprocess.run(
            [str(exe), *args], cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    text = log.read_text(encoding="utf-8", errors="replace")
    if done.returncode != 0 or re.search(r"\| (ERROR|CRITICAL)\]", text):
        raise RuntimeError(f"nbgrader {args[0]} failed ({done.returncode}):\n{text[-3000:]}")


_SCORES = """
import json, sys
from nbgrader.api import Gradebook
scores = {}
with Gradebook("sqlite:///gradebook.db") as gb:
    for assignment in gb.assignments:
        for sub in gb.assignment_submissions(assignment.name):
            for nb in sub.notebooks:
                for grade in nb.grades:
                    scores[f"{sub.student.id}/{nb.name}/{grade.name}"] = grade.score
json.dump(scores, sys.stdout)
"""


def _nbgrader_scores(exe: Path, home: Path, env: dict[str, str]) -> dict[str, float]:
    python = exe.with_name("python")
    done = subprocess.run(
        [str(python), "-c", _SCORES], cwd=home, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    scores: dict[str, float] = json.loads(done.stdout)
    return scores


# --- reporting -----------------------------------------------------------------------


def _report(timing: Timing, learners: int, all_modules: int, modules: int) -> None:
    print(
        f"{timing.tool}: {timing.notebooks} notebooks in {timing.seconds:.1f} s "
        f"= {timing.per_second:.3f} notebooks/s ({timing.seconds / max(learners, 1):.1f} s "
        f"per learner for {modules} of {all_modules} modules)",
        flush=True,
    )


def _class_estimate(timing: Timing, all_modules: int) -> float:
    return CLASS_SIZE * all_modules / timing.per_second if timing.per_second else float("inf")


if __name__ == "__main__":
    main()
