"""Module 10's figures: the readiness report on the shipped service and on the reference.

For each, `BENCH_CAPSTONE_RUNS` (default 3) runs of the report's three service runs (the
load, the export, the receipts; the suite of the service's own tests is timed separately),
each from a fresh copy of the files, and the median of each figure:

- throughput: answers per second during the load (more than a hundred clients at once,
  against the course's slow and flaky provider);
- p99 of /health and of order attempts, no answer counting as the client's timeout;
- lost writes (an order acknowledged with 201 missing from the database), duplicated orders
  and double charges;
- the export's peak memory growth, and receipts sent more than once;
- how many of the seven load, export and receipt requirements each run meets;
- how long the three runs take; and the service's start (to its port being open) forked
  from the warm server (`_forks`) against an ordinary `python` process: median of 5.

Run: .venv/bin/python benchmarks/bench_capstone.py
"""

from __future__ import annotations

import math
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from prodready._checks.capstone import _forks, _run, _verdicts
from prodready._checks.capstone._report import REQUIREMENTS
from prodready._course import find_course_root

RUNS = int(os.environ.get("BENCH_CAPSTONE_RUNS", "3"))
ROOT = find_course_root()
SERVICES = {
    "shipped": ROOT / "solutions" / "10_capstone.starting",
    "reference": ROOT / "solutions" / "10_capstone",
}


def _numbers(text: str, at_least: int) -> list[float]:
    """The numbers in a judge's figures, padded with NaN (a stage not judged has none)."""
    found = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
    return found + [math.nan] * max(at_least - len(found), 0)


def _figures(folder: Path) -> dict[str, float]:
    """One report's figures, as its judges state them (no second reading of the evidence)."""
    started = time.perf_counter()
    load, export, receipts = (_run.run(folder, kind) for kind in ("load", "export", "receipts"))
    took = time.perf_counter() - started
    runs = {"load": load, "export": export, "receipts": receipts}
    met = sum(r.judge(runs[r.kind]).ok for r in REQUIREMENTS)
    latency = _verdicts.judge_latency(load).figures  # "health p99 0.08 s, orders p99 ..."
    orders = _verdicts.judge_orders(load).figures  # "40/40 acknowledged, 0 lost, ..."
    memory = _verdicts.judge_export(export).figures  # "60000 rows, peak memory +5 MB"
    mail = _verdicts.judge_receipts(receipts).figures  # "24/24 receipts delivered, 0 dup..."
    health_p99, orders_p99, rate = _numbers(latency.replace("p99", ""), 3)[:3]
    acknowledged, _, lost, duplicated, double = _numbers(orders, 5)[:5]
    return {
        "answers/s": rate,
        "health p99 s": health_p99,
        "orders p99 s": orders_p99,
        "acknowledged": acknowledged,
        "lost": lost,
        "duplicated": duplicated,
        "double charges": double,
        "export +MB": _numbers(memory, 2)[1],
        "receipt repeats": _numbers(mail, 3)[2],
        "report s": took,
        "met of 7": float(met),
    }


def _service_start(folder: Path) -> float:
    """Seconds from starting the service of `folder` to its port being open."""
    with tempfile.TemporaryDirectory(prefix="bench-capstone-") as scratch:
        service, logs = Path(scratch) / "service", Path(scratch) / "logs"
        _run.copy_service(folder, service)
        logs.mkdir()
        port = Path(scratch) / "port"
        began = time.perf_counter()
        process = _run.Process(
            "service", ["-m", "prodready._checks.capstone._serve", str(port)], service,
            {"SHOP_DATABASE_PATH": str(Path(scratch) / "shop.db")}, logs,
        )  # fmt: skip
        try:
            while not port.exists():
                assert process.alive(), process.tail()
                time.sleep(0.005)
            return time.perf_counter() - began
        finally:
            process.stop()


def _cold(
    argv: list[str], cwd: str, env: dict[str, str], out: IO[bytes], err: IO[bytes]
) -> subprocess.Popen[bytes]:
    """`_forks.start` as it was before the fork server: a new interpreter per process."""
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
    )


def _starts(folder: Path) -> tuple[float, float]:
    _service_start(folder)  # the fork server's own start, once per checker process
    warm = statistics.median(_service_start(folder) for _ in range(5))
    forked, _forks.start = _forks.start, _cold
    try:
        cold = statistics.median(_service_start(folder) for _ in range(5))
    finally:
        _forks.start = forked
    return warm, cold


def main() -> None:
    names = list(_figures(SERVICES["reference"]))  # and a warm-up
    table: dict[str, dict[str, list[float]]] = {name: {k: [] for k in names} for name in SERVICES}
    for _ in range(RUNS):
        for name, folder in SERVICES.items():
            for k, v in _figures(folder).items():
                table[name][k].append(v)
    print(f"median of {RUNS} runs of the report's three service runs, per service")
    print(f"{'figure':<16}" + "".join(f"{name:>12}" for name in SERVICES))
    for k in names:
        cells = "".join(f"{statistics.median(table[name][k]):>12.2f}" for name in SERVICES)
        print(f"{k:<16}{cells}")
    for name in SERVICES:
        counts = [int(n) for n in table[name]["met of 7"]]
        print(f"{name}: requirements met in each run: {counts}")
    warm, cold = _starts(SERVICES["reference"])
    print(
        f"service start to first answer: {warm:.2f} s forked from the warm server, "
        f"{cold:.2f} s as an ordinary process ({cold / warm:.1f}x)"
    )


if __name__ == "__main__":
    main()
