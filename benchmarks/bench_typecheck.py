"""Module 07's headline figure: how long each workbook check takes (mypy is the slow part).

Each check runs ``mypy --strict`` in-process on the answer cell, then tests behaviour.
The solution's answer cells are executed here the way IPython runs cells (their source
registered in ``linecache``), and each check is timed: median of 5 runs.
"""

from __future__ import annotations

import ast
import functools
import linecache
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

from mypy import api as mypy_api

from prodready._check import find_checker
from prodready._checks.typecheck import MYPY_FLAGS, mypy_cache_dir
from prodready._notebooks import ANSWER, CHECK, cell_role, read_notebook

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
BUDGET_SECONDS = 2.0  # issue 21: no check over 2 s (the module's check cells together: about 2 s)


def _run_cell(source: str, name: str, namespace: dict[str, object]) -> None:
    filename = f"<bench-cell-{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


def _timings(action: Callable[[], object], runs: int = RUNS) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return timings


def _median_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    return statistics.median(_timings(action, runs))


def main() -> None:
    solution = read_notebook(ROOT / "solutions" / "07_typecheck.ipynb")
    module = types.ModuleType("bench_typecheck_answers")  # dataclasses need a real module
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    latencies: dict[str, float] = {}
    first_runs: dict[str, float] = {}  # a fresh kernel: mypy's cache fills as checks run
    for cell in solution.cells:
        role = cell_role(cell)
        if role is None or cell.cell_type != "code":
            continue
        exercise, kind = role
        if kind == ANSWER:
            _run_cell(cell.source, exercise, namespace)
        elif kind == CHECK:
            statement = ast.parse(cell.source).body[0]
            assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
            args = [namespace[a.id] for a in statement.value.args[1:] if isinstance(a, ast.Name)]
            check = find_checker(exercise)
            timings = _timings(functools.partial(check, *args))
            first_runs[exercise] = timings[0]
            latencies[exercise] = statistics.median(timings)
    one_line = "x: int = 1\n"
    cold = _median_seconds(
        lambda: mypy_api.run([*MYPY_FLAGS, "--cache-dir=/dev/null", "-c", one_line])
    )
    warm = _median_seconds(
        lambda: mypy_api.run([*MYPY_FLAGS, f"--cache-dir={mypy_cache_dir()}", "-c", one_line])
    )
    print(f"typecheck: check latency, median of {RUNS} runs (mypy --strict + behaviour)")
    for exercise, seconds in latencies.items():
        print(f"  {exercise:28} {seconds:6.2f} s")
    first_check = next(iter(first_runs.values()))
    worst = max(*first_runs.values(), *latencies.values())
    print(f"first check in a new process (cold mypy cache): {first_check:.2f} s")
    print(
        f"the five checks in a fresh process: {sum(first_runs.values()):.2f} s "
        f"(warm: {sum(latencies.values()):.2f} s)"
    )
    print(
        f"worst check {worst:.2f} s: {BUDGET_SECONDS / worst:.1f}x under the "
        f"{BUDGET_SECONDS:g} s budget"
    )
    print(
        f"mypy on a one-line module: {cold:.2f} s without a cache (--cache-dir=/dev/null), "
        f"{warm:.2f} s with the checks' temporary cache: {cold / warm:.1f}x faster"
    )


if __name__ == "__main__":
    main()
