"""Module 04's headline figures: medians of 5 runs, peak memory measured with tracemalloc.

Run: .venv/bin/python benchmarks/bench_streaming.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
import tracemalloc
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select

from prodready._checks.streaming import reference_p95
from prodready._course import scratch_dir
from prodready._datagen import ensure, generate

RUNS = 5
EXPORT_ROWS = 100_000
LOG_LINES = 250_000
UPLOAD_BYTES = 32 * 1024 * 1024
LISTING_ROWS = 400_000
PAGE = 100

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


def upload_app(folder: Path) -> FastAPI:
    app = FastAPI()

    @app.post("/body")
    async def whole_body(request: Request) -> dict[str, int]:
        body = await request.body()
        (folder / "body.csv").write_bytes(body)
        return {"bytes": len(body)}

    @app.post("/stream")
    async def streamed(request: Request) -> dict[str, int]:
        size = 0
        with (folder / "stream.csv").open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                out.write(chunk)
        return {"bytes": size}

    return app


async def upload_peak(app: FastAPI, path: str) -> int:
    block = b"0" * 65536

    async def body() -> AsyncIterator[bytes]:
        for _ in range(UPLOAD_BYTES // len(block)):
            yield block

    transport = httpx.ASGITransport(app=app)  # it streams the request body chunk by chunk
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        tracemalloc.start()
        try:
            response = await client.post(path, content=body())
            assert response.json() == {"bytes": UPLOAD_BYTES}
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def deepest_page_ms(work: Path) -> tuple[list[float], list[float]]:
    """Median time of the last page of a newest-first listing: LIMIT/OFFSET vs keyset."""
    listing = Table(
        "orders", MetaData(), Column("id", Integer, primary_key=True), Column("customer", String)
    )
    engine = create_engine(f"sqlite:///{work / 'listing.db'}")
    listing.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
            f"WHERE i < {LISTING_ROWS - 1}) INSERT INTO orders SELECT i, 'C' || i FROM n"
        )
    newest = select(listing.c.id).order_by(listing.c.id.desc()).limit(PAGE)
    by_offset = newest.offset(LISTING_ROWS - PAGE)
    by_key = newest.where(listing.c.id < PAGE)
    offset_ms: list[float] = []
    keyset_ms: list[float] = []
    with engine.connect() as conn:
        assert list(conn.execute(by_offset).scalars()) == list(conn.execute(by_key).scalars())
        for query, timings in ((by_offset, offset_ms), (by_key, keyset_ms)):
            for _ in range(RUNS):
                started = time.perf_counter()
                conn.execute(query).all()
                timings.append(1000 * (time.perf_counter() - started))
    engine.dispose()
    return offset_ms, keyset_ms


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

    app = upload_app(work)
    whole = [float(asyncio.run(upload_peak(app, "/body"))) for _ in range(RUNS)]
    streamed = [float(asyncio.run(upload_peak(app, "/stream"))) for _ in range(RUNS)]
    label = f"upload of {UPLOAD_BYTES // 2**20} MiB, peak: request.body() vs stream"
    report(label, whole, streamed)

    offset_ms, keyset_ms = deepest_page_ms(work)
    report(
        f"last page of {LISTING_ROWS:,} rows, time: OFFSET vs keyset", offset_ms, keyset_ms, "ms"
    )


if __name__ == "__main__":
    main()
