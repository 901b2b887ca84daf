"""The ``prodready`` command. Each subcommand only translates arguments into a call."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

# This process reads and writes notebooks with nbformat, whose jsonschema imports
# rfc3987_syntax when it is installed (Jupyter's event system pulls it in), and that import
# builds a grammar: a second of CPU before any command starts. nbformat never checks the
# "iri" formats it is for; the None entry makes that optional import fail at once.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from . import _doctor, _gradebook, _learner  # noqa: E402
from ._catalogue import CatalogueError, Module  # noqa: E402
from ._course import COURSE_ENV, Course, CourseNotFound  # noqa: E402
from ._grading import DEFAULT_TIMEOUT, ModuleGrade, grade_workbook  # noqa: E402
from ._notebooks import NotebookError  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except BrokenPipeError:
        # The reader went away (`prodready progress | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (
        KeyError,
        ValueError,
        FileNotFoundError,
        CourseNotFound,
        CatalogueError,
        NotebookError,
    ) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"prodready: {message}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prodready", description="Python backends that survive production: the course."
    )
    sub = parser.add_subparsers(required=True, metavar="command")

    check = sub.add_parser("check", help="grade your workbooks against the solutions")
    check.add_argument("target", nargs="?", help="module (01, validation) or exercise id")
    check.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds one cell may run (default %(default)s)",
    )
    check.set_defaults(run=_check)

    hint = sub.add_parser("hint", help="the next hint for an exercise (never the answer)")
    hint.add_argument("exercise")
    hint.add_argument("--level", type=int, help="show this hint level again")
    hint.set_defaults(run=_hint)

    progress = sub.add_parser("progress", help="exercises passed, per module, and what is next")
    progress.add_argument("module", nargs="?", help="the module to show in full (default: yours)")
    progress.add_argument("--all", action="store_true", help="list every module's exercises")
    progress.set_defaults(run=_progress)

    solution = sub.add_parser(
        "solution", help="the reference answer of an exercise you passed (or gave up on)"
    )
    solution.add_argument("exercise")
    solution.add_argument(
        "--give-up",
        action="store_true",
        help="show it although you have not passed it yet (recorded in your progress)",
    )
    solution.set_defaults(run=_solution)

    reset = sub.add_parser("reset", help="restore the starting code (your version is backed up)")
    reset.add_argument("target", help="exercise id, or module to reset the whole workbook")
    reset.set_defaults(run=_reset)

    grade = sub.add_parser(
        "grade",
        help="grade a class (instructors): folders of learners, or notebooks",
        description="Grade every learner's workbooks against solutions/, in parallel, and "
        "write grades.csv, summary.csv and feedback/<learner>.html into --out.",
    )
    grade.add_argument("paths", nargs="*", type=Path, help="class folder(s) or notebooks")
    grade.add_argument("--out", type=Path, required=True, help="folder for the gradebook")
    grade.add_argument(
        "--course",
        type=Path,
        help="the course copy whose solutions/ to grade against (default: this one); keep it "
        "out of the learners' reach",
    )
    grade.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="notebooks graded at once (default: CPU count, %(default)s)",
    )
    grade.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds one learner cell may run (default %(default)s)",
    )
    grade.add_argument(
        "--modules",
        help="comma-separated modules to grade, e.g. 01,02 "
        "(default: every module anyone handed in)",
    )
    grade.add_argument(
        "--shard", metavar="K/N", help="grade only shard K of N (whole learners), for a job array"
    )
    grade.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="SHARD_OUT",
        help="combine the --out folders of finished shards into --out",
    )
    grade.set_defaults(run=_grade)

    data = sub.add_parser("data", help="list or generate the course's large data sets")
    data.add_argument("action", choices=["list", "generate"])
    data.add_argument("names", nargs="*", help="data sets to generate (default: all)")
    data.set_defaults(run=_data)

    doctor = sub.add_parser("doctor", help="check this machine's setup and say how to fix it")
    doctor.add_argument("--no-kernel", action="store_true", help="skip starting a kernel")
    doctor.set_defaults(run=_doctor_command)
    return parser


def _with_solutions(course: Course) -> Course:
    if not course.has_solutions():
        raise FileNotFoundError(
            f"{course.root} has no solutions/, which grading compares against: the check "
            "cells in each workbook give the same verdicts; an instructor grades with the "
            "course copy that has them (`prodready grade --course DIR`)"
        )
    return course


def _check(args: argparse.Namespace) -> int:
    course = _with_solutions(Course.discover())
    if args.target is None:
        plan = [(m, m.exercises) for m in course.catalogue]
    else:
        module, exercises = course.catalogue.select(args.target)
        plan = [(module, exercises)]
    failures = 0
    for module, exercises in plan:
        print(f"Grading {course.workbook(module).relative_to(course.root)} …", flush=True)
        grade = grade_workbook(course, module, course.workbook(module), timeout=args.timeout)
        _learner.record_grade(course, grade)
        print(render_grade(grade, module, {ex.id for ex in exercises}))
        failures += sum(
            not r.passed for r in grade.results if r.exercise in {ex.id for ex in exercises}
        )
    return 1 if failures else 0


def render_grade(grade: ModuleGrade, module: Module, shown: set[str]) -> str:
    results = [r for r in grade.results if r.exercise in shown]
    passed = sum(r.passed for r in results)
    lines = [f"{module.name}: {passed}/{len(results)} passed ({grade.seconds:.1f} s)"]
    if grade.notice:
        lines.append(f"  note: {grade.notice}")
    width = max(len(r.exercise) for r in results)
    for r in results:
        if r.passed:
            lines.append(f"  ✓ {r.exercise:<{width}}  passed")
            continue
        first, *rest = r.message.splitlines() or [""]
        lines.append(f"  ✗ {r.exercise:<{width}}  {first}")
        lines.extend(f"    {'':<{width}}  {line}" for line in rest)
        lines.append(f"    {'':<{width}}  hint: prodready hint {r.exercise}")
    return "\n".join(lines)


def _hint(args: argparse.Namespace) -> int:
    print(_learner.hint(Course.discover(), args.exercise, args.level))
    return 0


def _progress(args: argparse.Namespace) -> int:
    print(_learner.render_progress(Course.discover(), args.module, every=args.all))
    return 0


def _solution(args: argparse.Namespace) -> int:
    print(_learner.reference_answer(Course.discover(), args.exercise, give_up=args.give_up))
    return 0


def _reset(args: argparse.Namespace) -> int:
    print(_learner.reset(Course.discover(), args.target))
    return 0


def _grade(args: argparse.Namespace) -> int:
    if args.course:
        os.environ[COURSE_ENV] = str(args.course.expanduser().resolve())
    course = _with_solutions(Course.discover())
    if args.merge:
        rows = _gradebook.merge(course, args.merge, args.out)
        print(f"merged {len(args.merge)} shards: {len(rows)} results in {args.out}")
        return 0
    if not args.paths:
        raise ValueError("name the class folder(s) or notebooks to grade")
    modules = (
        [course.catalogue.module(key.strip()) for key in args.modules.split(",")]
        if args.modules
        else None
    )
    submissions = _gradebook.find_submissions(course, args.paths, modules)
    if args.shard:
        index, _, count = args.shard.partition("/")
        if not (index.isdigit() and count.isdigit()):
            raise ValueError(f"--shard takes K/N, such as 2/8, not {args.shard!r}")
        submissions = _gradebook.shard(submissions, int(index), int(count))
    if not submissions:
        raise ValueError("no workbooks found: they are found by name, e.g. 01_validation.ipynb")
    bar = ProgressBar(len(submissions), sys.stderr)
    started = time.monotonic()
    rows = _gradebook.grade_class(
        course, submissions, jobs=args.jobs, timeout=args.timeout,
        on_graded=lambda submission, _: bar.advance(submission.learner),
    )  # fmt: skip
    bar.close()
    _gradebook.write_gradebook(course, rows, args.out)
    elapsed = time.monotonic() - started
    learners = len({s.learner for s in submissions})
    print(
        f"graded {len(submissions)} notebooks of {learners} learners in {elapsed:.1f} s "
        f"({len(submissions) / elapsed:.2f} notebooks/s); "
        f"{sum(r.passed for r in rows)}/{len(rows)} exercises passed; gradebook in {args.out}"
    )
    return 0


class ProgressBar:
    """A one-line bar on a terminal; a plain line per notebook anywhere else (CI logs)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.started = time.monotonic()
        self.live = stream.isatty()

    def advance(self, label: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        filled = int(30 * self.done / self.total)
        line = (
            f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} notebooks "
            f"{elapsed:.0f} s, about {eta:.0f} s left ({label})"
        )
        self.stream.write(f"\r{line:<100}" if self.live else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")


def _data(args: argparse.Namespace) -> int:
    from . import _datagen  # generators are only needed here

    if args.action == "list":
        for name, description in _datagen.DATASETS.items():
            print(f"{name:<16} {description}")
        return 0
    for name in args.names or list(_datagen.DATASETS):
        started = time.monotonic()
        path = _datagen.ensure(name)
        size = path.stat().st_size / 1e6
        print(f"{name}: {path} ({size:.0f} MB, {time.monotonic() - started:.1f} s)")
    return 0


def _doctor_command(args: argparse.Namespace) -> int:
    findings = _doctor.diagnose(with_kernel=not args.no_kernel)
    print(_doctor.render(findings))
    return 0 if all(f.ok for f in findings) else 1
