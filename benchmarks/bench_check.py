"""Check latency: how long `prodready check NN` takes to grade a solved workbook.

This is the wait a learner has after asking for a grade: a fresh kernel, the seal, every
check and its canary. The target (issue 21) is a median of at most 5 s per module on a
2-core machine, the slowest module included. Median of 5 runs per module.
"""

from __future__ import annotations

import statistics
import time

from prodready._course import Course
from prodready._grading import grade_answers
from prodready._notebooks import learner_answers, read_notebook

RUNS = 5
TARGET_SECONDS = 5.0


def main() -> None:
    course = Course.discover()
    columns = f"{'module':<20} {'median':>8} {'min':>7} {'max':>7}  per exercise"
    print(f"{columns}  at most {TARGET_SECONDS:g} s")
    for module in course.catalogue:
        answers = learner_answers(read_notebook(course.solution(module)))
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            results, _ = grade_answers(course, module, answers)
            times.append(time.perf_counter() - started)
            assert all(r.passed for r in results), f"{module.name}: the solution must pass"
        median = statistics.median(times)
        met = "yes" if median <= TARGET_SECONDS else "NO"
        print(
            f"{module.name:<20} {median:>7.1f}s {min(times):>6.1f}s {max(times):>6.1f}s"
            f"  {median / len(module.exercises):>9.1f} s   {met}"
        )


if __name__ == "__main__":
    main()
