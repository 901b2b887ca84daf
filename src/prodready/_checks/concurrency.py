"""Checks for module 03: async versus sync (FastAPI, httpx, uvicorn).

Every check runs the learner's code against real servers: uvicorn on 127.0.0.1, an
ephemeral port, in a thread, always stopped. The upstreams sleep instead of computing,
so the figures hold on a busy machine; the margins are at least 2x.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Response

from .._check import Fail, checker, expect, run_in_fresh_loop

SERVER_THREAD = "prodready-check-server"


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` on uvicorn in a thread; yield its base URL; always stop it."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="critical", lifespan="on",
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=SERVER_THREAD, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise Fail("the app did not start under uvicorn (does its lifespan raise?)")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


@dataclass
class Upstream:
    """A local upstream that sleeps, counts, and refuses more than ``limit`` in flight."""

    limit: int | None = None
    hits: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    rejected: int = 0
    closing: bool = False
    app: FastAPI = field(default_factory=FastAPI)

    def __post_init__(self) -> None:
        @self.app.get("/item/{n}")
        async def item(n: int, delay: float = 0.1) -> Response:
            self.hits += 1
            self.in_flight += 1
            try:
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                if self.limit is not None and self.in_flight > self.limit:
                    self.rejected += 1
                    return Response(status_code=429)
                await asyncio.sleep(delay)
                return Response(f'{{"n": {n}}}', media_type="application/json")
            finally:
                self.in_flight -= 1

        @self.app.get("/hang")
        async def hang() -> Response:
            while not self.closing:  # never answers; lets the server stop at once
                await asyncio.sleep(0.02)
            return Response(status_code=204)

        @self.app.get("/status/{code}")
        async def status(code: int) -> Response:
            return Response(status_code=code)

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        with serve(self.app) as base:
            try:
                yield base
            finally:
                self.closing = True


# --- 1. a blocking call inside async def ------------------------------------------------

LOOKUP_SECONDS = 0.3


@checker("concurrency.unblock_endpoint")
def _unblock_endpoint(price_app: Any) -> str:
    expect(isinstance(price_app, FastAPI), "price_app should be the FastAPI app from the task")
    skus = [f"SKU-{i}" for i in range(10)]

    async def ten_at_once(base: str) -> tuple[float, list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            started = time.perf_counter()
            responses = await asyncio.gather(*(client.get(f"/price/{s}") for s in skus))
            return time.perf_counter() - started, responses

    serial = LOOKUP_SECONDS * len(skus)
    with serve(price_app) as base:
        elapsed, responses = run_in_fresh_loop(lambda: ten_at_once(base))
        if serial * 0.6 <= elapsed < serial * 0.9:  # too fast to be serial: a busy moment
            elapsed, responses = run_in_fresh_loop(lambda: ten_at_once(base))
    for sku, response in zip(skus, responses, strict=True):
        expect(
            response.status_code == 200,
            f"GET /price/{sku} answered {response.status_code}: keep the route and its shape",
        )
        expect(
            response.json() == {"sku": sku, "cents": 100 * len(sku) + 99},
            f"GET /price/{sku} returned {response.json()!r}: the price must still come "
            "from legacy_price(), only the way you call it changes",
        )
    expect(
        elapsed < serial * 0.6,
        f"10 concurrent requests took {elapsed:.2f} s, close to 10 x {LOOKUP_SECONDS} s: "
        "each request waited for the one before. legacy_price() blocks, and a blocking "
        "call inside `async def` freezes the event loop that serves every other request.",
    )
    return "10 concurrent requests overlap instead of queueing behind a blocking call"


# --- 2. sync or async: decide with a measurement ----------------------------------------

ITEM_DELAY = 0.1


@checker("concurrency.sync_or_async")
def _sync_or_async(
    time_sync: Callable[[list[str]], float],
    time_async: Callable[[list[str]], Awaitable[float]],
    decisions: Mapping[str, str],
) -> str:
    upstream = Upstream()
    figures: dict[tuple[str, int], float] = {}
    with upstream.serve() as base:
        for count in (1, 16):
            urls = [f"{base}/item/{i}?delay={ITEM_DELAY}" for i in range(count)]
            for way in ("sync", "async"):
                before = upstream.hits
                started = time.perf_counter()
                if way == "sync":
                    figure = time_sync(urls)
                else:
                    figure = run_in_fresh_loop(functools.partial(time_async, urls))
                wall = time.perf_counter() - started
                expect(
                    upstream.hits - before == count,
                    f"time_{way}() on {count} URL(s) made {upstream.hits - before} requests: "
                    "it should request every URL once, that is what it measures",
                )
                # the upstream sleeps ITEM_DELAY per call: no honest figure is below that
                expect(
                    isinstance(figure, float | int) and ITEM_DELAY * 0.9 <= figure <= wall + 0.05,
                    f"time_{way}() returned {figure!r}, but the call took {wall:.2f} s and each "
                    f"request waits {ITEM_DELAY} s: return the seconds you measured around the "
                    "requests",
                )
                figures[(way, count)] = float(figure)
    sync16, async16 = figures[("sync", 16)], figures[("async", 16)]
    expect(
        sync16 >= 16 * ITEM_DELAY * 0.7,
        f"time_sync() did 16 calls of {ITEM_DELAY} s in {sync16:.2f} s: the sync way is one "
        "call after another with a plain httpx.Client, nothing concurrent",
    )
    expect(
        async16 <= 16 * ITEM_DELAY * 0.5 or async16 <= sync16 / 3,  # generous on a busy machine
        f"time_async() did 16 calls of {ITEM_DELAY} s in {async16:.2f} s: the calls ran one "
        "after another. Awaiting each call in a loop is sequential; start them all, then wait",
    )
    expect(
        set(decisions) == {"one_call", "fan_out"} and set(decisions.values()) <= {"sync", "async"},
        f'decisions should map "one_call" and "fan_out" to "sync" or "async", got {decisions!r}',
    )
    expect(
        decisions["fan_out"] == "async",
        f"your own figures for 16 calls: sync {sync16:.2f} s, async {async16:.2f} s. "
        "For independent I/O waits, overlapping them is the whole win",
    )
    expect(
        decisions["one_call"] == "sync",
        f"your own figures for one call: sync {figures[('sync', 1)]:.2f} s, async "
        f"{figures[('async', 1)]:.2f} s, the same. Async buys nothing when nothing overlaps, "
        "and costs an event loop and async-only libraries: pick the simpler code",
    )
    return "measured both ways; sync for one call, async for the fan-out"


# --- 3. bounded fan-out with timeouts --------------------------------------------------

FETCH_LIMIT, FETCH_TIMEOUT, FETCH_CAP = 8, 0.5, 6.0


@checker("concurrency.fetch_all")
def _fetch_all(fetch_all: Callable[..., Awaitable[Mapping[str, int | None]]]) -> str:
    upstream = Upstream(limit=FETCH_LIMIT)
    with upstream.serve() as base:
        good = [f"{base}/item/{i}?delay={ITEM_DELAY}" for i in range(40)]
        silent = [f"{base}/hang?{i}" for i in range(2)]
        urls = good[:20] + silent[:1] + good[20:] + silent[1:]

        async def run() -> tuple[float, Mapping[str, int | None]]:
            started = time.perf_counter()
            async with asyncio.timeout(FETCH_CAP):
                result = await fetch_all(urls, limit=FETCH_LIMIT, timeout=FETCH_TIMEOUT)
            return time.perf_counter() - started, result

        try:
            elapsed, result = run_in_fresh_loop(run)
        except TimeoutError:
            raise Fail(
                f"fetch_all() was still waiting after {FETCH_CAP:g} s for URLs that take about "
                "1 s in all: two of them never answer, and a request without a timeout (or "
                "with one that never fires) waits forever and holds everything behind it"
            ) from None
        except httpx.TimeoutException as e:
            raise Fail(
                f"a request timed out ({type(e).__name__}) and the exception escaped "
                "fetch_all(): one silent upstream must not sink the whole batch; record None "
                "for a URL that timed out and keep the others"
            ) from None
    expect(
        isinstance(result, Mapping) and set(result) == set(urls),
        "fetch_all() should return a dict with one entry per URL",
    )
    statuses = [result[u] for u in good]
    expect(
        upstream.rejected == 0 and 429 not in statuses,
        f"{upstream.rejected} requests got 429 Too Many Requests: the upstream accepts "
        f"{FETCH_LIMIT} in flight and you had up to {upstream.max_in_flight} at once. "
        "Unbounded fan-out is a self-inflicted outage; never have more than `limit` in flight",
    )
    expect(
        all(result[u] is None for u in silent),
        f"the URLs that never answer came back as {[result[u] for u in silent]!r}: "
        "a URL that timed out should map to None",
    )
    timed_out = statuses.count(None)
    expect(
        timed_out == 0,
        f"{timed_out} URLs that answer in {ITEM_DELAY} s came back as None: they timed out "
        "while waiting their turn. If the client's connection pool bounds concurrency, the "
        "wait for a free connection counts against its pool timeout",
    )
    expect(
        statuses == [200] * len(good),
        f"expected status 200 for every URL that answers, got {sorted(set(statuses))!r}",
    )
    expect(
        elapsed < 3.0,
        f"fetch_all() took {elapsed:.2f} s; {len(good)} calls of {ITEM_DELAY} s with "
        f"{FETCH_LIMIT} in flight take about 0.5 s, and the silent ones should give up "
        f"after timeout={FETCH_TIMEOUT} s. Do all requests run concurrently, and does the "
        "timeout you were given reach the client?",
    )
    return f"at most {FETCH_LIMIT} in flight, 0 rejected, silent URLs gave up on time"


# --- 4. CPU work off the event loop ----------------------------------------------------

CRUNCH_N = 8_000_000
HEALTH_LIMIT = 0.25  # seconds, or HEALTH_SHARE of a report's time on a slow machine
HEALTH_SHARE = 0.3


def _expected_checksum(n: int) -> int:
    """``sum(i * i % 7 for i in range(n))`` without the CPU: the residues repeat every 7."""
    cycle = [i * i % 7 for i in range(7)]
    return sum(cycle) * (n // 7) + sum(cycle[: n % 7])


@checker("concurrency.cpu_offload")
def _cpu_offload(report_app: Any) -> str:
    expect(isinstance(report_app, FastAPI), "report_app should be the FastAPI app from the task")
    children_before = {p.pid for p in multiprocessing.active_children()}

    async def reports_and_health(base: str) -> tuple[float, float, list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await client.get("/health")  # the server is up and the connection is open

            async def timed_report() -> tuple[float, httpx.Response]:
                started = time.perf_counter()
                response = await client.get(f"/report/{CRUNCH_N}")
                return time.perf_counter() - started, response

            reports = [asyncio.create_task(timed_report()) for _ in range(2)]
            await asyncio.sleep(0.1)
            worst = 0.0
            while not all(r.done() for r in reports):
                started = time.perf_counter()
                health = await client.get("/health")
                worst = max(worst, time.perf_counter() - started)
                expect(health.status_code == 200, "GET /health should answer 200")
                await asyncio.sleep(0.05)
            done = [await r for r in reports]
            return worst, min(seconds for seconds, _ in done), [resp for _, resp in done]

    with serve(report_app) as base:
        worst, report_time, responses = run_in_fresh_loop(lambda: reports_and_health(base))
    for response in responses:
        expect(
            response.status_code == 200
            and response.json() == {"n": CRUNCH_N, "checksum": _expected_checksum(CRUNCH_N)},
            f"GET /report/{CRUNCH_N} answered {response.status_code} {response.text[:120]!r}: "
            "the report must still be checksum(n)",
        )
    # On the loop, /health waits for a whole report; off it, a small fraction of one.
    # Relative to the report's own time, so a busy machine slows both sides alike.
    expect(
        worst < max(HEALTH_LIMIT, HEALTH_SHARE * report_time),
        f"while two reports were computing (the faster took {report_time:.2f} s), GET /health "
        f"took up to {worst:.2f} s: the CPU-bound work runs on the event loop, so nothing "
        "else is served until it ends. A load balancer reads that as a dead server",
    )
    leftover = {p.pid for p in multiprocessing.active_children()} - children_before
    expect(
        not leftover,
        f"{len(leftover)} worker process(es) were still alive after the server stopped: a "
        "pool created outside the app's lifespan is never shut down with it",
    )
    return "/health stays fast while reports compute; no worker outlives the server"


# --- 5. an aggregator with a latency budget --------------------------------------------

PARTS = ("profile", "orders", "recs")


@checker("concurrency.aggregate")
def _aggregate(dashboard: Callable[..., Awaitable[Mapping[str, Any]]]) -> str:
    upstream = Upstream()
    with upstream.serve() as base:

        def part(name: str, delay: float) -> str:
            return f"{base}/item/{PARTS.index(name)}?delay={delay}"

        async def call(urls: dict[str, str], budget: float) -> tuple[float, Mapping[str, Any]]:
            async with httpx.AsyncClient() as client:
                started = time.perf_counter()
                async with asyncio.timeout(budget + 4):
                    result = await dashboard(client, urls, budget=budget)
                return time.perf_counter() - started, result

        def run(urls: dict[str, str], budget: float) -> tuple[float, Mapping[str, Any]]:
            try:
                elapsed, result = run_in_fresh_loop(lambda: call(urls, budget))
            except TimeoutError:
                raise Fail(
                    f"dashboard() was still waiting {budget + 4:g} s after a budget of "
                    f"{budget:g} s: the slow upstream held the whole page"
                ) from None
            except httpx.HTTPError as e:
                raise Fail(
                    f"one upstream failed ({type(e).__name__}) and dashboard() raised: the page "
                    "should show what it has and None for the part that failed"
                ) from None
            expect(
                isinstance(result, Mapping) and set(result) == set(urls),
                f"dashboard() should return one key per upstream {sorted(urls)}, got "
                f"{sorted(result) if isinstance(result, Mapping) else result!r}",
            )
            return elapsed, result

        def body(name: str) -> dict[str, int]:
            return {"n": PARTS.index(name)}

        healthy = {name: part(name, 0.5) for name in PARTS}
        elapsed, result = run(healthy, budget=3.0)
        if 1.0 <= elapsed < 1.4:  # faster than one after another (1.5 s): a busy moment
            elapsed, result = run(healthy, budget=3.0)
        expect(
            all(result[name] == body(name) for name in PARTS),
            f"with three healthy upstreams the page should have all three JSON bodies, got "
            f"{dict(result)!r}",
        )
        expect(
            elapsed < 1.0,
            f"three upstreams of 0.5 s each took {elapsed:.2f} s together: they ran one after "
            "another. The page's latency should be the slowest call, not the sum",
        )
        urls = {"profile": part("profile", 0.1), "orders": part("orders", 0.1)}
        urls["recs"] = f"{base}/hang"
        elapsed, result = run(urls, budget=0.5)
        expect(
            elapsed < 0.5 + 0.5,
            f"with one silent upstream dashboard() took {elapsed:.2f} s for a budget of 0.5 s: "
            "the budget is a promise to the caller; stop waiting when it is spent",
        )
        expect(
            result["recs"] is None
            and result["profile"] == body("profile")
            and result["orders"] == body("orders"),
            f"with recs silent, expected profile and orders and recs=None, got {dict(result)!r}",
        )
        urls = {name: part(name, 0.1) for name in PARTS}
        urls["orders"] = f"{base}/status/503"
        elapsed, result = run(urls, budget=1.0)
        expect(
            result["orders"] is None
            and result["profile"] == body("profile")
            and result["recs"] == body("recs"),
            f"with orders answering 503, expected profile and recs and orders=None, got "
            f"{dict(result)!r}: an error status is not a result",
        )
    return "concurrent calls, partial results within the budget, errors become None"
