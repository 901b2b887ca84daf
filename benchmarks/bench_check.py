"""Check latency: how long `prodready check NN` takes to grade a solved workbook.

This is the wait a learner has after asking for a grade: the command starting, a fresh
kernel, the seal, every check and its canary. The target (issue 21) is a median of at
most 5 s per module on a 2-core machine, the slowest module included. Median of 5 runs
per module, of the command as a learner types it, in a scratch copy of the course whose
workbooks are solved (and, for a module whose answer includes files, its files); the
in-process column is `grade_answers` alone, without the command's own start-up.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prodready._course import COURSE_ENV, Course
from prodready._grading import grade_answers
from prodready._notebooks import compose, learner_answers, read_notebook, write_notebook

RUNS = int(os.environ.get("BENCH_CHECK_RUNS", "5"))
TARGET_SECONDS = 5.0
COMMAND = Path(sys.executable).with_name("prodready")


def solved_copy(course: Course, into: Path) -> Course:
    """The course with every workbook (and answer folder) replaced by the solution's."""
    root = into / "course"
    for part in ("exercises", "solutions", "data"):
        shutil.copytree(course.root / part, root / part, symlinks=True)
    copy = Course(root, course.catalogue)
    for module in course.catalogue:
        solution = read_notebook(copy.solution(module))
        write_notebook(compose(solution, learner_answers(solution)), copy.workbook(module))
        if module.files:
            shutil.rmtree(copy.learner_files(module), ignore_errors=True)
            shutil.copytree(copy.reference_files(module), copy.learner_files(module))
    return copy


def timed_command(course: Course, module_number: str) -> float:
    env = {**os.environ, COURSE_ENV: str(course.root)}
    started = time.perf_counter()
    done = subprocess.run(
        [str(COMMAND), "check", module_number], env=env, capture_output=True, text=True
    )
    took = time.perf_counter() - started
    assert done.returncode == 0, f"prodready check {module_number}: {done.stdout[-2000:]}"
    return took


def main() -> None:
    course = Course.discover()
    print(
        f"{'module':<16} {'`prodready check`':>18} {'min':>6} {'max':>6} {'in-process':>11}"
        f"  at most {TARGET_SECONDS:g} s"
    )
    with tempfile.TemporaryDirectory(prefix="bench-check-") as scratch:
        solved = solved_copy(course, Path(scratch))
        for module in course.catalogue:
            answers = learner_answers(read_notebook(course.solution(module)))
            number = module.name.split("_", 1)[0]
            command = [timed_command(solved, number) for _ in range(RUNS)]
            inside = []
            for _ in range(RUNS):
                started = time.perf_counter()
                results, _ = grade_answers(course, module, answers)
                inside.append(time.perf_counter() - started)
                assert all(r.passed for r in results), f"{module.name}: the solution must pass"
            median = statistics.median(command)
            met = "yes" if median <= TARGET_SECONDS else "NO"
            print(
                f"{module.name:<16} {median:>17.1f}s {min(command):>5.1f}s {max(command):>5.1f}s"
                f" {statistics.median(inside):>10.1f}s  {met}",
                flush=True,
            )


if __name__ == "__main__":
    main()
