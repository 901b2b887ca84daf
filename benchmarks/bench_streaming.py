"""Module 04's headline figures: medians of 5 runs, peak memory measured with tracemalloc.

Run: .venv/bin/python benchmarks/bench_streaming.py
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from prodready._checks.streaming import reference_p95
from prodready._course import scratch_dir
from prodready._datagen import ensure, generate

RUNS = 5
EXPORT_ROWS = 100_000
LOG_LINES = 250_000

Order = tuple[int, str, int, int]


def fetch_orders(n: int) -> Iterator[Order]:
    for i in range(n):
        yield 100_000 + i, f"C{i % 50_000:05d}", 1 + i % 12, 199 + i % 49_800


def csv_line(order: Order) -> str:
    order_id, customer, qty, cents = order
    return f"{order_id},{customer},{qty},{cents // 100}.{cents % 100:02d}\n"


def export_in_memory(orders: Iterable[Order], path: Path) -> None:
    path.write_text("".join([csv_line(order) for order in orders]))


def export_streaming(orders: Iterable[Order], path: Path) -> None:
    with open(path, "w") as out:
        out.writelines(csv_line(order) for order in orders)


def p95_keeping_every_value(path: Path) -> dict[str, float]:
    latencies: defaultdict[str, list[float]] = defaultdict(list)
    with path.open(encoding="utf-8") as log:
        for line in log:
            _, _, method, route, _, _, seconds = line.split()
            if seconds != "-":
                latencies[f"{method} {route}"].append(float(seconds))
    return {e: sorted(v)[int(0.95 * len(v))] for e, v in latencies.items()}


def peak_bytes(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(label: str, worse: list[float], better: list[float], unit: str = "MB") -> None:
    w, b = median(worse), median(better)
    scale = 1e6 if unit == "MB" else 1.0
    worst = min(x / y for x, y in zip(worse, better, strict=True))
    print(
        f"{label}: {w / scale:.2f} {unit} vs {b / scale:.3f} {unit}, "
        f"ratio {w / b:.0f}x (lowest of {len(worse)} runs: {worst:.0f}x)"
    )


def main() -> None:
    work = scratch_dir("prodready-bench-")
    started = time.perf_counter()
    generate("access_log", work)
    print(f"generating the 1,000,000-line access log: {time.perf_counter() - started:.1f} s")

    in_memory = [
        float(peak_bytes(lambda: export_in_memory(fetch_orders(EXPORT_ROWS), work / "a.csv")))
        for _ in range(RUNS)
    ]
    streaming = [
        float(peak_bytes(lambda: export_streaming(fetch_orders(EXPORT_ROWS), work / "b.csv")))
        for _ in range(RUNS)
    ]
    report(f"export of {EXPORT_ROWS:,} rows, peak: in memory vs streaming", in_memory, streaming)

    log = ensure("access_log")
    prefix = work / "prefix.log"
    with log.open(encoding="utf-8") as source, prefix.open("w", encoding="utf-8") as out:
        out.writelines(islice(source, LOG_LINES))
    every_value = [float(peak_bytes(lambda: p95_keeping_every_value(prefix))) for _ in range(RUNS)]
    histogram = [float(peak_bytes(lambda: reference_p95(prefix))) for _ in range(RUNS)]
    report(f"p95 over {LOG_LINES:,} log lines, peak: a list vs a histogram", every_value, histogram)

    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        reference_p95(log)
        timings.append(time.perf_counter() - started)
    print(f"p95 over the whole 1,000,000-line log (untraced): {median(timings):.2f} s")


if __name__ == "__main__":
    main()
