"""Module 03's headline figures: medians of 5 runs on real uvicorn servers on 127.0.0.1.

Run: .venv/bin/python benchmarks/bench_concurrency.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI

from prodready._checks._support import serve
from prodready._checks.concurrency import Upstream

RUNS = 5
WAIT = 0.2


def blocking_app() -> FastAPI:
    app = FastAPI()

    @app.get("/blocking")
    async def blocking() -> dict[str, bool]:
        time.sleep(WAIT)  # the mistake: a blocking call inside async def
        return {"ok": True}

    @app.get("/async")
    async def non_blocking() -> dict[str, bool]:
        await asyncio.sleep(WAIT)
        return {"ok": True}

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


async def ten_at_once(url: str) -> float:
    async with httpx.AsyncClient(timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client.get(url) for _ in range(10)))
        return time.perf_counter() - started


async def twenty_calls(url: str, concurrent: bool) -> float:
    async with httpx.AsyncClient(timeout=30) as client:
        await client.get(url)
        started = time.perf_counter()
        if concurrent:
            await asyncio.gather(*(client.get(url) for _ in range(20)))
        else:
            for _ in range(20):
                await client.get(url)
        return time.perf_counter() - started


async def per_call(url: str, shared: bool) -> float:
    """Median seconds per call over 50 calls."""
    times = []
    async with httpx.AsyncClient() as client:
        await client.get(url)
        for _ in range(50):
            started = time.perf_counter()
            if shared:
                await client.get(url)
            else:
                async with httpx.AsyncClient() as fresh:
                    await fresh.get(url)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


async def trickle(url: str, deadline: bool) -> float:
    """One request to an upstream that sends a byte every 0.1 s: httpx's per-read timeout of
    0.3 s never fires; one asyncio.timeout(0.3) around the request does."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as client:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(0.3 if deadline else None):
                (await client.get(url)).raise_for_status()
        except TimeoutError:
            pass
        return time.perf_counter() - started


def median_of_runs(measure: Callable[[], Awaitable[float]]) -> float:
    return statistics.median(asyncio.run(measure()) for _ in range(RUNS))


def report(name: str, slow: float, fast: float, unit: str = "s") -> None:
    scale = 1000 if unit == "ms" else 1
    print(
        f"{name:48} {slow * scale:8.3f} {unit} vs {fast * scale:8.3f} {unit}   "
        f"ratio {slow / fast:5.1f}x"
    )


def main() -> None:
    print(f"module 03 (concurrency): medians of {RUNS} runs")
    with serve(blocking_app()) as base:
        report(
            "10 concurrent: time.sleep vs asyncio.sleep",
            median_of_runs(lambda: ten_at_once(base + "/blocking")),
            median_of_runs(lambda: ten_at_once(base + "/async")),
        )
        report(
            "per call: new client vs shared client",
            median_of_runs(lambda: per_call(base + "/ping", shared=False)),
            median_of_runs(lambda: per_call(base + "/ping", shared=True)),
            unit="ms",
        )
    upstream = Upstream()
    with upstream.serve() as base:
        url = base + "/item/0?delay=0.1"
        report(
            "20 calls of 0.1 s: sequential awaits vs gather",
            median_of_runs(lambda: twenty_calls(url, concurrent=False)),
            median_of_runs(lambda: twenty_calls(url, concurrent=True)),
        )
        url = base + "/trickle?every=0.1&total=1.5"
        report(
            "trickle: httpx Timeout(0.3) vs asyncio.timeout",
            median_of_runs(lambda: trickle(url, deadline=False)),
            median_of_runs(lambda: trickle(url, deadline=True)),
        )


if __name__ == "__main__":
    main()
