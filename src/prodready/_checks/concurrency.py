"""Checks for module 03: async versus sync (FastAPI, httpx, uvicorn).

Every check runs the learner's code against real servers on loopback (``_support.serve``),
one server per check, with independent probes running at the same time. The upstreams
sleep instead of computing. Where a verdict could hang on timing, it is measured in a way a
busy machine cannot blur: what overlapped is counted at the upstream (which holds
concurrent calls until they meet), a blocked event loop is a stall of the loop itself,
where CPU work ran is CPU seconds (compared with the check's own copy of the work), and
whether a call was cancelled is the upstream seeing its client leave. The checks' own
watchdog is ``within()``: it raises ``Overran``, never ``TimeoutError``, so a message
always tells the learner's timeout from ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import multiprocessing
import os
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import FastAPI

from .._check import Fail, checker, expect, run_in_fresh_loop
from ._support import SERVER_THREAD, Overran, gc_paused, serve, within

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# --- the upstream every check talks to ---------------------------------------------------


@dataclass
class Upstream:
    """A loopback upstream (plain ASGI, so it sees disconnects) that sleeps, counts, and
    answers 429 above ``limit`` requests in flight. Routes, under any prefix:

    - ``…/item/<n>?delay=<s>``: waits, then ``{"n": n}``; with ``&together=<k>`` it then
      also waits (for at most ``patience`` seconds) until ``k`` requests of its group have
      been in flight at once, so concurrent callers always overlap, however busy the machine;
    - ``…/hang``: accepts the request and never answers; records when the client left;
    - ``…/trickle?every=<s>&total=<s>``: a 200 whose body arrives one byte every ``every``
      seconds for ``total`` seconds; records when the client left, or that it finished;
    - ``…/status/<code>``: an empty answer with that status.
    """

    limit: int | None = None
    hits: Counter[str] = field(default_factory=Counter)  # by group: the path before its route
    in_flight: int = 0
    max_in_flight: int = 0
    group_in_flight: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)  # most requests of a group at once
    rejected: int = 0
    arrived: set[str] = field(default_factory=set)  # paths of the silent requests that arrived
    left: dict[str, float] = field(default_factory=dict)  # path -> seconds until the client left
    finished: dict[str, float] = field(default_factory=dict)  # trickles that reached their end
    closing: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path: str = scope["path"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        parts = path.strip("/").split("/")
        route = parts[-2] if len(parts) >= 2 and parts[-2] in ("item", "status") else parts[-1]
        group = "/".join(parts[: parts.index(route)])
        self.hits[group] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.group_in_flight[group] += 1
        self.peak[group] = max(self.peak[group], self.group_in_flight[group])
        try:
            await receive()  # the request (no body)
            if self.limit is not None and self.in_flight > self.limit:
                self.rejected += 1
                await _answer(send, 429)
            elif route == "item":
                await asyncio.sleep(float(query.get("delay", "0.05")))
                together, patience = (
                    int(query.get("together", "1")),
                    float(query.get("patience", "0")),
                )
                waited = time.perf_counter()
                while self.peak[group] < together and time.perf_counter() - waited < patience:
                    await asyncio.sleep(0.005)
                await _answer(send, 200, f'{{"n": {int(parts[-1])}}}'.encode())
            elif route == "status":
                await _answer(send, int(parts[-1]))
            elif route == "hang":
                await self._hang(path, receive, send)
            elif route == "trickle":
                await self._trickle(path, query, receive, send)
            else:
                await _answer(send, 404)
        finally:
            self.in_flight -= 1
            self.group_in_flight[group] -= 1

    def still_open(self, path: str) -> bool:
        """A silent request arrived and its client has not left yet."""
        return path in self.arrived and path not in self.left

    async def _hang(self, path: str, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        self.arrived.add(path)
        disconnect = asyncio.ensure_future(_disconnected(receive))
        while not self.closing:
            done, _ = await asyncio.wait({disconnect}, timeout=0.01)
            if done:
                self.left[path] = time.perf_counter() - started
                return
        disconnect.cancel()
        await _answer(send, 503)  # the check is over: let the server stop at once

    async def _trickle(
        self, path: str, query: Mapping[str, str], receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        self.arrived.add(path)
        every, total = float(query["every"]), float(query["total"])
        disconnect = asyncio.ensure_future(_disconnected(receive))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        while time.perf_counter() - started < total and not self.closing:
            await send({"type": "http.response.body", "body": b".", "more_body": True})
            done, _ = await asyncio.wait({disconnect}, timeout=every)
            if done:
                self.left[path] = time.perf_counter() - started
                return
        disconnect.cancel()
        self.finished[path] = time.perf_counter() - started
        await send({"type": "http.response.body", "body": b""})

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        with serve(self) as base:
            try:
                yield base
            finally:
                self.closing = True


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (uvicorn may repeat the empty request body first)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer(send: Send, status: int, body: bytes = b"") -> None:
    headers = [(b"content-type", b"application/json")] if body else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _refused_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/item/0"


def _still_running() -> list[asyncio.Task[Any]]:
    """Tasks on this loop, other than the caller, that have not finished."""
    me = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not me and not t.done()]


def _contains(error: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """``error`` is one of ``kinds``, or an exception group holding one."""
    if isinstance(error, kinds):
        return True
    inner: Sequence[BaseException] = getattr(error, "exceptions", ())
    return any(_contains(e, kinds) for e in inner)


# --- 1. a blocking call inside async def ------------------------------------------------

LOOKUP_SECONDS = 0.05  # legacy_price() sleeps this long (the workbook's setup cell)
BURST = 10
RETRIES = 2  # more bursts when the loop looked stalled: a busy machine, or a blocking call


@dataclass
class _Burst:
    started: float
    elapsed: float
    responses: list[httpx.Response]
    threads: set[threading.Thread]  # every thread alive at some point during the burst


async def _burst(client: httpx.AsyncClient, skus: list[str]) -> _Burst:
    seen: set[threading.Thread] = set()  # the objects themselves: no id is reused meanwhile
    started = time.perf_counter()
    requests = asyncio.gather(*(client.get(f"/price/{sku}") for sku in skus))
    while not requests.done():
        seen.update(threading.enumerate())
        await asyncio.wait({requests}, timeout=0.005)
    return _Burst(started, time.perf_counter() - started, requests.result(), seen)


@dataclass
class _LoopWatch:
    """The learner's app, plus a ticker on the server's event loop that records each time
    the loop could not run for a while: a blocking call shows up as a stall of its full
    length, on a quiet machine or a busy one."""

    app: Any
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds)
    ticker: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ticker is None:  # the first call is the lifespan, on the server's loop
            self.ticker = asyncio.ensure_future(self._tick())
        await self.app(scope, receive, send)

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            late = time.perf_counter() - before - 0.005
            if late > 0.03:
                self.stalls.append((before, late))

    def stalled(self, since: float, until: float) -> float:
        return sum(seconds for when, seconds in self.stalls if since <= when <= until)

    def stalled_during(self, burst: _Burst) -> float:
        return self.stalled(burst.started, burst.started + burst.elapsed)


@checker("concurrency.unblock_endpoint")
def _unblock_endpoint(price_app: Any) -> str:
    expect(isinstance(price_app, FastAPI), "price_app should be the FastAPI app from the task")
    # SKUs of different lengths have different prices: a made-up price cannot pass
    first_skus = [f"SKU-{'7' * (i + 1)}" for i in range(BURST)]
    second_skus = [f"B-{'3' * (i + 1)}" for i in range(BURST)]
    serial = LOOKUP_SECONDS * BURST
    before = set(threading.enumerate())
    watched = _LoopWatch(price_app)

    async def bursts(base: str) -> list[tuple[list[str], _Burst]]:
        """Two bursts, then up to two more while every burst so far had a stalled loop: a
        blocking call stalls the loop for its full length in every burst, however busy the
        machine, while a busy machine stalls a free loop only now and then. The least
        stalled burst is judged, so bad luck cannot fail a correct answer."""
        tried: list[tuple[list[str], _Burst]] = []
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for skus in (first_skus, second_skus):
                tried.append((skus, await within(20, _burst(client, skus))))
            for _ in range(RETRIES):
                if min(watched.stalled_during(burst) for _, burst in tried) < serial / 2:
                    break
                tried.append((first_skus, await within(20, _burst(client, first_skus))))
        return tried

    with gc_paused(), serve(watched) as base:
        try:
            tried = run_in_fresh_loop(lambda: bursts(base))
        except Overran:
            raise Fail("10 requests to /price were still unanswered after 20 s") from None
    for skus, burst in tried:  # every burst's answers, the judged one's included
        for sku, response in zip(skus, burst.responses, strict=True):
            expect(
                response.status_code == 200,
                f"GET /price/{sku} answered {response.status_code}: keep the route and its shape",
            )
            expect(
                response.json() == {"sku": sku, "cents": 100 * len(sku) + 99},
                f"GET /price/{sku} returned {response.json()!r}: the price must still come "
                "from legacy_price(), only the way you call it changes",
            )
    (_, first), (_, second) = tried[:2]
    least = min((burst for _, burst in tried), key=watched.stalled_during)
    started_anew = second.threads - first.threads - before
    expect(
        len(started_anew) < BURST // 2,
        f"the second burst of {BURST} requests started {len(started_anew)} new threads: "
        "your code makes a new thread pool (new threads) per request. Under a burst of "
        "1,000 requests that is 1,000 threads and 1,000 calls at once into the SDK, with "
        "nothing to bound them; run the call on threads the server keeps and reuses.",
    )
    blocked = watched.stalled_during(least)
    expect(
        blocked < serial / 2,
        f"10 concurrent requests took {least.elapsed:.2f} s, and for {blocked:.2f} s of it the "
        "event loop could not run at all: each request waited for the one before. "
        "legacy_price() blocks, and a blocking call inside `async def` freezes the event loop "
        "that serves every other request (a helper that calls it without handing it to a "
        "thread blocks just the same).",
    )
    return "10 concurrent requests overlap on the server's reused threads"


# --- 2. sync or async: decide with a measurement ----------------------------------------

ITEM_DELAY = 0.05
FAN_OUT = 6


@dataclass
class _Timing:
    figure: Any  # what the learner's timer returned
    wall: float
    hits: int


@checker("concurrency.sync_or_async")
def _sync_or_async(
    time_sync: Callable[[list[str]], float],
    time_async: Callable[[list[str]], Awaitable[float]],
    decisions: Mapping[str, str],
) -> str:
    expect(
        isinstance(decisions, Mapping)
        and set(decisions) == {"one_call", "fan_out"}
        and set(decisions.values()) <= {"sync", "async"},
        f'decisions should map "one_call" and "fan_out" to "sync" or "async", got {decisions!r}',
    )
    upstream = Upstream()
    with gc_paused(), upstream.serve() as base:

        def urls(way: str, count: int) -> list[str]:
            # the async calls are held until they overlap (if they ever do), for honest figures
            together = f"&together={count}&patience=0.3" if way == "async" else ""
            return [f"{base}/{way}/item/{i}?delay={ITEM_DELAY}{together}" for i in range(count)]

        def sync_timings() -> list[_Timing]:
            timings = []
            for count in (1, FAN_OUT):
                before, started = upstream.hits["sync"], time.perf_counter()
                figure = time_sync(urls("sync", count))
                wall = time.perf_counter() - started
                timings.append(_Timing(figure, wall, upstream.hits["sync"] - before))
            return timings

        async def async_timings() -> list[_Timing]:
            timings = []
            for count in (1, FAN_OUT):
                before, started = upstream.hits["async"], time.perf_counter()
                figure = await within(10, time_async(urls("async", count)))
                wall = time.perf_counter() - started
                timings.append(_Timing(figure, wall, upstream.hits["async"] - before))
            return timings

        # Both timers at once: they share only the upstream, which sleeps.
        with ThreadPoolExecutor(1, thread_name_prefix="prodready-check-sync") as pool:
            sync_future = pool.submit(sync_timings)
            try:
                async_figures = run_in_fresh_loop(async_timings)
            except Overran:
                raise Fail(
                    f"time_async() was still running after 10 s for {FAN_OUT} URLs"
                ) from None
            sync_figures = sync_future.result()
    figures: dict[tuple[str, int], float] = {}
    for way, timings in (("sync", sync_figures), ("async", async_figures)):
        for count, timing in zip((1, FAN_OUT), timings, strict=True):
            expect(
                timing.hits == count,
                f"time_{way}() on {count} URL(s) made {timing.hits} requests: it should "
                "request every URL once, that is what it measures",
            )
            # the upstream sleeps ITEM_DELAY per call: no honest figure is below that
            expect(
                isinstance(timing.figure, float | int)
                and not isinstance(timing.figure, bool)
                and ITEM_DELAY * 0.9 <= timing.figure <= timing.wall + 0.05,
                f"time_{way}() returned {timing.figure!r}, but the call took {timing.wall:.2f} s "
                f"and each request waits {ITEM_DELAY} s: return the seconds you measured "
                "around the requests",
            )
            figures[(way, count)] = float(timing.figure)
    sync_n, async_n = figures[("sync", FAN_OUT)], figures[("async", FAN_OUT)]
    # What overlapped is counted at the upstream, not inferred from timings on a busy machine.
    expect(
        upstream.peak["sync"] == 1,
        f"time_sync() had {upstream.peak['sync']} requests in flight at once: the sync way is "
        "one call after another with a plain httpx.Client, nothing concurrent",
    )
    expect(
        upstream.peak["async"] >= FAN_OUT // 2,
        f"time_async() had at most {upstream.peak['async']} of its {FAN_OUT} requests in flight "
        f"at once, and took {async_n:.2f} s: the calls ran one after another. Awaiting each "
        "call in a loop is sequential, and so is a sync client inside `async def`: start them "
        "all on the async client, then wait",
    )
    expect(
        decisions["fan_out"] == "async",
        f"your own figures for {FAN_OUT} calls: sync {sync_n:.2f} s, async {async_n:.2f} s. "
        "For independent I/O waits, overlapping them is the whole win",
    )
    expect(
        decisions["one_call"] == "sync",
        f"your own figures for one call: sync {figures[('sync', 1)]:.2f} s, async "
        f"{figures[('async', 1)]:.2f} s, the same. Async buys nothing when nothing overlaps, "
        "and costs an event loop and async-only libraries: pick the simpler code",
    )
    return "measured both ways; sync for one call, async for the fan-out"


# --- 3. bounded fan-out with deadlines ---------------------------------------------------

FETCH_LIMIT, FETCH_TIMEOUT = 4, 0.5  # ten times what a fast URL needs, on a busy machine too
FAST, FAST_URLS = 0.05, 32
TRICKLE_EVERY, TRICKLE_TOTAL = 0.1, 1.5  # a byte every fifth of the timeout, for 3x it
FETCH_WATCHDOG = 2.5


@checker("concurrency.fetch_all")
def _fetch_all(fetch_all: Callable[..., Awaitable[Mapping[str, int | None]]]) -> str:
    expect(callable(fetch_all), "fetch_all should be the async function from the task")
    upstream = Upstream(limit=FETCH_LIMIT)
    with gc_paused(), upstream.serve() as base:
        fast = [f"{base}/item/{i}?delay={FAST}" for i in range(FAST_URLS)]
        hang, trickle = (
            f"{base}/hang",
            f"{base}/trickle?every={TRICKLE_EVERY}&total={TRICKLE_TOTAL}",
        )
        # The silent two first: while they hold two slots the rest queue for the other two,
        # and a clock that starts before a URL's turn runs out for the back of the queue.
        urls = [hang, trickle, *fast]
        refused = _refused_url()
        # a second, small batch: requests still in flight when the refused one fails
        mixed = [f"{base}/mixed/item/{i}?delay=0.2" for i in range(3)] + [refused]

        async def batch(
            these: list[str], timeout: float
        ) -> tuple[float, Mapping[str, int | None] | BaseException, int]:
            started = time.perf_counter()
            try:
                outcome: Any = await within(
                    FETCH_WATCHDOG, fetch_all(these, limit=FETCH_LIMIT, timeout=timeout)
                )
            except Overran:
                raise
            except Exception as e:  # judged below, with what was left running
                outcome = e
            elapsed = time.perf_counter() - started
            return elapsed, outcome, len(_still_running())

        async def both() -> tuple[tuple[float, Any, int], tuple[float, Any, int]]:
            return await batch(urls, FETCH_TIMEOUT), await batch(mixed, 0.5)

        try:
            (elapsed, result, left_running), (_, mixed_outcome, mixed_left) = run_in_fresh_loop(
                both
            )
        except Overran:
            raise Fail(
                f"fetch_all() was still waiting after {FETCH_WATCHDOG:g} s for URLs that take "
                "well under a second in all: one of them never answers, and a request without "
                "a timeout (or with one that never fires) waits forever and holds a slot"
            ) from None
    if isinstance(result, BaseException):
        if _contains(result, (TimeoutError, httpx.TimeoutException)):
            raise Fail(
                f"fetch_all() raised {type(result).__name__} after {elapsed:.2f} s: a URL timed "
                "out and the exception escaped. One silent upstream must not sink the batch: "
                "catch the timeout and record None for that URL"
            )
        raise result
    expect(
        isinstance(result, Mapping) and set(result) == set(urls),
        "fetch_all() should return a dict with one entry per URL",
    )
    expect(
        upstream.rejected == 0,
        f"{upstream.rejected} requests got 429 Too Many Requests: the upstream accepts "
        f"{FETCH_LIMIT} in flight and you had up to {upstream.max_in_flight} at once. Unbounded "
        "fan-out is a self-inflicted outage; never have more than `limit` in flight (a bound "
        "created anew for each URL bounds nothing)",
    )
    expect(
        result[hang] is None,
        f"the URL that never answers came back as {result[hang]!r}: a URL that gives no "
        "answer within `timeout` should map to None",
    )
    trickled = upstream.finished.get("/trickle")
    expect(
        result[trickle] is None,
        f"the URL that trickles a byte every {TRICKLE_EVERY} s came back as {result[trickle]!r}"
        + (f" after {trickled:.2f} s" if trickled else "")
        + f", though timeout={FETCH_TIMEOUT}: httpx's timeout limits each read and write, "
        "and a server that keeps sending never trips it. Give each URL one deadline for "
        "its whole request",
    )
    late = {
        path: round(seconds, 2)
        for path, seconds in upstream.left.items()
        if seconds > 2 * FETCH_TIMEOUT + 0.15
    }
    expect(
        not late,
        f"fetch_all() gave up on the silent URLs only after {late} s, for timeout="
        f"{FETCH_TIMEOUT}: the timeout you were given must reach every request",
    )
    fast_statuses = [result[u] for u in fast]
    queued_out = fast_statuses.count(None)
    expect(
        queued_out == 0,
        f"{queued_out} URLs that answer in {FAST} s came back as None: they timed out while "
        "waiting their turn. `timeout` is per URL and starts when its request does: a clock "
        "started before the request got its slot, or one clock for the whole batch, runs "
        "out for the URLs at the back of the queue",
    )
    expect(
        fast_statuses == [200] * len(fast),
        f"expected status 200 for every URL that answers, got {sorted(set(fast_statuses))!r}",
    )
    expect(
        elapsed < 2.0,
        f"fetch_all() took {elapsed:.2f} s; {len(urls)} calls with {FETCH_LIMIT} in flight "
        f"take well under a second, and the silent ones should give up after timeout="
        f"{FETCH_TIMEOUT} s. Do the requests run concurrently, `limit` at a time?",
    )
    expect(
        left_running == 0,
        f"fetch_all() returned while {left_running} of its tasks were still running: "
        "nobody will read their results, and they hold connections and slots meanwhile",
    )
    if not isinstance(mixed_outcome, BaseException):
        got = (
            mixed_outcome.get(refused, "nothing")
            if isinstance(mixed_outcome, Mapping)
            else mixed_outcome
        )
        raise Fail(
            f"a URL whose connection is refused came back as {got!r}. None means 'too slow, "
            "try later'; a refused connection is an outage or a wrong URL, and an answer that "
            "hides it behind None hides your bugs too. Let failures other than timeouts raise"
        )
    expect(
        mixed_left == 0,
        f"when one request failed ({type(mixed_outcome).__name__}), fetch_all() raised while "
        f"{mixed_left} of its other requests were still running, for nobody: when one fails, "
        "cancel the others (and wait for them) before the error leaves fetch_all()",
    )
    return f"at most {FETCH_LIMIT} in flight, one deadline per URL, other failures raise"


# --- 4. CPU work off the event loop, in parallel ------------------------------------------

CRUNCH_N = 1_000_000  # about 0.1 s of CPU here; the check measures its own copy


def _checksum(n: int) -> int:
    """``sum(i * i % 7 for i in range(n))`` without the CPU: the residues repeat every 7."""
    cycle = [i * i % 7 for i in range(7)]
    return sum(cycle) * (n // 7) + sum(cycle[: n % 7])


def _report_cpu_seconds() -> float:
    """CPU seconds of one report, from a tenth of the check's own copy of the work."""
    started = time.thread_time()
    sum(i * i % 7 for i in range(CRUNCH_N // 10))
    return 10 * (time.thread_time() - started)


def _children() -> set[int]:
    """Live child processes of this process (any kind, not only multiprocessing's)."""
    helpers: set[int | None] = set()
    with contextlib.suppress(Exception):  # Python's own helpers live as long as the kernel
        from multiprocessing import forkserver, resource_tracker

        helpers.add(getattr(resource_tracker._resource_tracker, "_pid", None))
        helpers.add(getattr(forkserver._forkserver, "_forkserver_pid", None))
    if not Path("/proc/self/stat").is_file():  # not Linux: what multiprocessing started
        return {p.pid for p in multiprocessing.active_children() if p.pid} - helpers
    # Every process whose parent is this one, whichever thread started it. (Each thread's
    # /proc/self/task/*/children would miss a child for a moment when the thread that
    # started it has just exited, as a server thread has after `serve`: the kernel is still
    # moving its children to another thread. Their parent process stays this one.)
    me, alive = os.getpid(), set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, parent = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[:2]
            if int(parent) == me and state != "Z":
                alive.add(int(entry.name))
    return alive - helpers


def _thread_cpu(thread: threading.Thread | None) -> float | None:
    """CPU seconds one thread has used, where the OS can tell (Linux); else None."""
    if thread is None or thread.ident is None or not hasattr(time, "pthread_getcpuclockid"):
        return None
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except OSError:
        return None


def _endpoint_code(app: FastAPI, path: str) -> CodeType | None:
    """The code of the function that serves `path`, under any decorators."""
    for route in app.routes:
        if getattr(route, "path", None) == path:
            endpoint = getattr(route, "endpoint", None)
            code = (
                getattr(inspect.unwrap(endpoint), "__code__", None) if callable(endpoint) else None
            )
            return code if isinstance(code, CodeType) else None
    return None


class _LoopSampler:
    """Looks at the server's event-loop thread every millisecond, from a thread of its own:
    is the endpoint's code on that thread's stack? An endpoint that awaits is suspended
    (its frame is off the stack) while the work runs elsewhere; one that blocks, on a
    future's .result(), a lock, a sleep or its own CPU, stays on it the whole time. This
    sees which, whatever the blocking call is and however busy the machine is."""

    def __init__(self, loop: threading.Thread | None, endpoint: CodeType | None) -> None:
        self.loop, self.endpoint = loop, endpoint
        self.samples = self.holding = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prodready-sampler", daemon=True)

    def _run(self) -> None:
        ident = self.loop.ident if self.loop else None
        while not self._done.wait(0.001):
            frame = sys._current_frames().get(ident) if ident else None
            self.samples += 1
            while frame is not None:
                if frame.f_code is self.endpoint:
                    self.holding += 1
                    break
                frame = frame.f_back

    def __enter__(self) -> _LoopSampler:
        if self.loop is not None and self.endpoint is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def held(self) -> float | None:
        """The share of the samples with the endpoint on the loop's stack (None: unknown)."""
        return self.holding / self.samples if self.samples >= 10 else None


@dataclass
class _Wave:
    responses: list[httpx.Response]
    fastest: float  # seconds of the quickest report in the wave
    children: set[int]  # child processes seen while the wave ran
    worst_health: float = 0.0
    server_cpu: float = 0.0  # CPU seconds this process spent outside the check's thread
    loop_cpu: float | None = None  # of which the server's event-loop thread (if known)
    held: float | None = None  # the share of the wave the endpoint held the loop (if known)


async def _wave(
    client: httpx.AsyncClient,
    ns: list[int],
    *,
    probe_health: bool,
    endpoint: CodeType | None = None,
) -> _Wave:
    async def timed(n: int) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = await client.get(f"/report/{n}")
        return time.perf_counter() - started, response

    loop = next((t for t in threading.enumerate() if t.name == SERVER_THREAD), None)
    cpu_before, mine_before, loop_before = (
        time.process_time(),
        time.thread_time(),
        _thread_cpu(loop),
    )
    with _LoopSampler(loop, endpoint) as sampler:
        reports = asyncio.gather(*(timed(n) for n in ns))
        seen, worst = _children(), 0.0
        while not reports.done():
            if probe_health:
                started = time.perf_counter()
                health = await client.get("/health")
                worst = max(worst, time.perf_counter() - started)
                expect(health.status_code == 200, "GET /health should answer 200")
            await asyncio.wait({reports}, timeout=0.03 if probe_health else 0.005)
            seen |= _children()
    server_cpu = time.process_time() - cpu_before - (time.thread_time() - mine_before)
    loop_after = _thread_cpu(loop)
    loop_cpu = None if loop_before is None or loop_after is None else loop_after - loop_before
    timings = reports.result()
    return _Wave(
        [response for _, response in timings],
        min(seconds for seconds, _ in timings),
        seen,
        worst,
        server_cpu,
        loop_cpu,
        sampler.held,
    )


@checker("concurrency.cpu_offload")
def _cpu_offload(report_app: Any) -> str:
    expect(isinstance(report_app, FastAPI), "report_app should be the FastAPI app from the task")
    report_cpu = _report_cpu_seconds()
    endpoint = _endpoint_code(report_app, "/report/{n}")
    before = _children()

    async def three_waves(base: str) -> list[_Wave]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await client.get("/health")  # the server is up and the connection is open
            # 1: two tiny reports, so whatever pool the app uses has started its workers;
            # 2: two real reports, while /health is probed; 3: one more tiny report.
            warm = await _wave(client, [7, 8], probe_health=False)
            work = await _wave(
                client, [CRUNCH_N, CRUNCH_N + 1], probe_health=True, endpoint=endpoint
            )
            return [warm, work, await _wave(client, [9], probe_health=False)]

    with gc_paused(), serve(report_app) as base:
        try:
            warm, work, again = run_in_fresh_loop(lambda: within(30, three_waves(base)))
        except Overran:
            raise Fail("the reports were still unanswered after 30 s") from None
    left_over = _children() - before
    asked = [7, 8, CRUNCH_N, CRUNCH_N + 1, 9]
    for n, response in zip(asked, warm.responses + work.responses + again.responses, strict=True):
        expect(
            response.status_code == 200 and response.json() == {"n": n, "checksum": _checksum(n)},
            f"GET /report/{n} answered {response.status_code} {response.text[:120]!r}: the "
            "report must still be checksum(n)",
        )
    workers = (warm.children | work.children) - before
    started_anew = (work.children | again.children) - warm.children - before
    expect(
        not started_anew,
        f"the later reports started {len(started_anew)} new process(es): your code makes a "
        "pool (new processes) per request. Starting a process costs more than many reports, "
        "and nothing bounds how many run at once; one pool lives as long as the app",
    )
    # CPU seconds are not stretched by other load: compare them with the check's own copy
    # of the work. Where did the reports' CPU go: this process? its event-loop thread?
    in_process = work.server_cpu / (2 * report_cpu) >= 0.5
    # Held, the endpoint sits on the loop's stack for most of the wave; awaiting, hardly
    # ever. Where that cannot be seen, /health tells: on a held loop it waits for a report;
    # on a free one, a small fraction of one (relative, so a busy machine slows both alike).
    holds_loop = work.worst_health >= 0.5 * work.fastest if work.held is None else work.held >= 0.5
    on_loop = holds_loop if work.loop_cpu is None else work.loop_cpu / (2 * report_cpu) >= 0.5
    expect(
        not (in_process and on_loop),
        f"while two reports were computing (the faster took {work.fastest:.2f} s), GET /health "
        f"took up to {work.worst_health:.2f} s: the CPU-bound work runs on the event loop, so "
        "nothing else is served until it ends. A load balancer reads that as a dead server",
    )
    expect(
        not in_process,
        "the event loop stayed free, but the reports' CPU ran inside the server's process, in "
        "a thread: Python code in threads takes turns under one GIL, so two reports share one "
        "core and compete with the server for it. Move the work to other processes",
    )
    expect(
        not holds_loop,
        "the reports ran in other processes, but the endpoint held the event loop "
        + ("" if work.held is None else f"for {work.held:.0%} of the time ")
        + "while they computed, so GET /health and every other request waited behind it: it "
        "holds the event loop while it waits for the result (a blocking wait on a future, "
        "instead of an await?)",
    )
    expect(
        len(workers) >= 2 or (os.cpu_count() or 1) < 2 or not workers,
        f"two reports were requested at once but only {len(workers)} worker process ran "
        "them: they computed one after the other. Give the pool a worker per core",
    )
    expect(
        not left_over,
        f"{len(left_over)} worker process(es) were still alive after the server stopped: a "
        "pool created outside the app's lifespan is never shut down with it",
    )
    return (
        "/health stays fast, reports run in parallel in one app-owned pool, no worker outlives it"
    )


# --- 5. an aggregator with a latency budget --------------------------------------------

PARTS = ("profile", "orders", "recs")
HEALTHY_DELAY = 0.2
SILENT_BUDGET = 0.5  # ten times what the two answering services need
# How long past its budget a page may run before the check stops waiting: a page later
# than its budget plus 0.3 s fails anyway, so a longer wait tells nothing more (and the
# grader waits it out again on the starting code, the canary, after every pass).
OVERRUN_GRACE = 1.5


@checker("concurrency.aggregate")
def _aggregate(dashboard: Callable[..., Awaitable[Mapping[str, Any]]]) -> str:
    expect(callable(dashboard), "dashboard should be the async function from the task")
    upstream = Upstream()
    refused = _refused_url()

    def body(name: str) -> dict[str, int]:
        return {"n": PARTS.index(name)}

    with gc_paused(), upstream.serve() as base:

        def part(scenario: str, name: str, delay: float, together: str = "") -> str:
            return f"{base}/{scenario}/item/{PARTS.index(name)}?delay={delay}{together}"

        # held until all three are in flight (0.5 s at most): concurrent calls always overlap
        healthy = {
            name: part("healthy", name, HEALTHY_DELAY, "&together=3&patience=0.5") for name in PARTS
        }
        silent = {name: part("silent", name, 0.05) for name in ("profile", "orders")}
        silent["recs"] = f"{base}/silent/hang"
        failing = {"profile": part("failing", "profile", 0.05)}
        failing["orders"], failing["recs"] = f"{base}/failing/status/503", refused
        outer = {name: part("outer", name, 0.05) for name in ("profile", "orders")}
        outer["recs"] = f"{base}/outer/hang"
        left_open: set[str] = set()  # silent calls still open after the page was done

        async def page(
            client: httpx.AsyncClient, urls: dict[str, str], budget: float
        ) -> tuple[float, Mapping[str, Any]]:
            started = time.perf_counter()
            try:
                result = await within(
                    budget + OVERRUN_GRACE, dashboard(client, urls, budget=budget)
                )
            except Overran:
                raise Fail(
                    f"dashboard() was still waiting {budget + OVERRUN_GRACE:g} s after a budget of "
                    f"{budget:g} s: the slow upstream held the whole page (or something "
                    "swallowed the cancellation of a call you stopped waiting for)"
                ) from None
            except (TimeoutError, httpx.HTTPError, ExceptionGroup) as e:
                if _contains(e, (TimeoutError, httpx.TimeoutException)):
                    raise Fail(
                        f"dashboard() raised {type(e).__name__} when the budget of {budget:g} s "
                        "ran out: the budget is yours to keep, not your caller's problem. "
                        "Serve the page with what arrived in time and None for the rest"
                    ) from None
                raise Fail(
                    f"one upstream failed and dashboard() raised {type(e).__name__}: the "
                    "page should show what it has and None for the part that failed"
                ) from None
            elapsed = time.perf_counter() - started
            await _left_by(upstream, urls, seconds=0.3)  # judged now: closing the client ends it
            left_open.update(p for p in _silent_paths(urls) if upstream.still_open(p))
            expect(
                isinstance(result, Mapping) and set(result) == set(urls),
                f"dashboard() should return one key per upstream {sorted(urls)}, got "
                f"{sorted(result) if isinstance(result, Mapping) else result!r}",
            )
            return elapsed, result

        async def cancelled_by_caller(client: httpx.AsyncClient, urls: dict[str, str]) -> str:
            """The page request itself is cancelled mid-flight: what does dashboard() do?"""
            task = asyncio.ensure_future(dashboard(client, urls, budget=2.0))
            arrival = time.perf_counter() + 1.0  # cancel once the silent call is in flight
            while (
                "/outer/hang" not in upstream.arrived
                and not task.done()
                and time.perf_counter() < arrival
            ):
                await asyncio.wait({task}, timeout=0.01)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if not done:
                with contextlib.suppress(Overran):
                    await within(1.0, asyncio.gather(task, return_exceptions=True))
                return "kept running"
            await _left_by(upstream, urls, seconds=0.3)
            left_open.update(p for p in _silent_paths(urls) if upstream.still_open(p))
            if task.cancelled():
                return "cancelled"
            error = task.exception()
            return "returned a page" if error is None else f"raised {type(error).__name__}"

        async def scenarios() -> list[Any]:
            # Independent, so at the same time, through one shared client; each scenario has
            # its own paths on the upstream, which counts and watches them separately.
            async with httpx.AsyncClient() as client:
                # open the connections first: the budgets are for the services, not for TCP
                await asyncio.gather(
                    *(client.get(f"{base}/warm/item/{i}?delay=0") for i in range(10))
                )
                outcomes: list[Any] = await asyncio.gather(
                    page(client, healthy, 1.0),
                    page(client, silent, SILENT_BUDGET),
                    page(client, failing, 1.0),
                    cancelled_by_caller(client, outer),
                    return_exceptions=True,
                )
            for outcome in outcomes:  # the first failure in a fixed order, not by timing
                if isinstance(outcome, BaseException):
                    raise outcome
            return outcomes

        (_, h_page), (s_elapsed, s_page), (_, f_page), outcome = run_in_fresh_loop(scenarios)
    expect(
        all(h_page[name] == body(name) for name in PARTS),
        "with three healthy upstreams the page should have all three JSON bodies, got "
        f"{dict(h_page)!r}",
    )
    # what overlapped is counted at the upstream, not inferred from timings
    expect(
        upstream.peak["healthy"] == len(PARTS),
        f"with three healthy upstreams of {HEALTHY_DELAY} s, at most "
        f"{upstream.peak['healthy']} of the calls were in flight at once: they ran one after "
        "another. The page's latency should be the slowest call, not the sum",
    )
    expect(
        s_elapsed < SILENT_BUDGET + 0.3,
        f"with one silent upstream dashboard() took {s_elapsed:.2f} s for a budget of "
        f"{SILENT_BUDGET} s: "
        "the budget is a promise to the caller; stop waiting when it is spent",
    )
    expect(
        s_page["recs"] is None
        and s_page["profile"] == body("profile")
        and s_page["orders"] == body("orders"),
        f"with recs silent, expected profile and orders and recs=None, got {dict(s_page)!r}",
    )
    expect(
        "/silent/hang" not in left_open,
        "the page was served, but the call to the silent recs service was still open 0.3 s "
        "later: a call you stopped waiting for must be cancelled. Left running, it holds a "
        "connection and the service's capacity for nobody, and under load those pile up",
    )
    expect(
        f_page["orders"] is None
        and f_page["recs"] is None
        and f_page["profile"] == body("profile"),
        f"with orders answering 503 and recs refusing connections, expected profile, and None "
        f"for the two that failed, got {dict(f_page)!r}: an error status is not a result, "
        "and one failed service must not take the others down with it",
    )
    expect(
        outcome != "returned a page",
        "the page request was cancelled (its caller gave up), yet dashboard() returned a page "
        "as if nothing happened: something swallowed the CancelledError (a bare `except:` or "
        "`except BaseException`). A cancelled coroutine must stop and let the cancellation "
        "through, or timeouts and shutdowns stop working",
    )
    expect(
        outcome != "kept running",
        "the page request was cancelled, and dashboard() was still running 1 s later: "
        "something caught the cancellation and carried on",
    )
    expect(
        outcome == "cancelled",
        f"the page request was cancelled and dashboard() {outcome} instead of letting the "
        "CancelledError through",
    )
    expect(
        "/outer/hang" not in left_open,
        "the page request was cancelled, but its call to the silent recs service was still "
        "open 0.3 s later: the calls it started outlived it. Cancelling the page must cancel "
        "every call it started, and tasks you create yourself you must cancel yourself",
    )
    return "concurrent calls, partial page within the budget, no call left running"


def _silent_paths(urls: Mapping[str, str]) -> list[str]:
    return [httpx.URL(u).path for u in urls.values() if u.endswith("/hang")]


async def _left_by(upstream: Upstream, urls: Mapping[str, str], *, seconds: float) -> None:
    """Wait up to ``seconds`` for the client to leave the silent URLs among ``urls``."""
    silent = _silent_paths(urls)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and any(upstream.still_open(p) for p in silent):
        await asyncio.sleep(0.01)
