"""Module 05 headline figures: what careless logging costs.

1. A dropped DEBUG line: `log.debug(f"cart {cart}")` against `log.debug("cart %s", cart)`,
   with DEBUG off (the f-string renders the cart anyway).
2. Request ids under 50 concurrent FastAPI requests: lines carrying another request's id
   with a module-level global against a ContextVar (set by a pure ASGI middleware).
3. uvicorn's access lines carrying their request's id: an HTTP middleware that resets the
   ContextVar in `finally` against the pure ASGI middleware, on a real server.
4. What a JSON line costs: a json.dumps formatter against a plain `%(message)s` one.
5. A slow handler (a log sink that takes 20 ms a line) on the event loop: 10 concurrent
   requests logging directly against through a QueueHandler.

Each timing is the median of 5 runs. Run: .venv/bin/python benchmarks/bench_logs.py
"""

from __future__ import annotations

import asyncio
import contextvars
import http.server
import io
import json
import logging
import logging.handlers
import queue
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

RUNS = 5
CALLS = 10_000
REQUESTS = 50


class Cart:
    def __init__(self, items: int) -> None:
        self.items = [{"sku": f"SKU-{i}", "qty": i, "price": "9.99"} for i in range(items)]

    def __str__(self) -> str:
        return json.dumps(self.items)


def median_seconds(run: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def quiet_logger(name: str, level: int, handler: logging.Handler | None = None) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers = [handler] if handler else []
    log.propagate = False
    log.setLevel(level)
    return log


def debug_cost() -> None:
    log = quiet_logger("bench.debug", logging.INFO)
    cart = Cart(50)

    def eager() -> None:
        for _ in range(CALLS):
            log.debug(f"cart {cart}")

    def lazy() -> None:
        for _ in range(CALLS):
            log.debug("cart %s", cart)

    f_string, percent_s = median_seconds(eager), median_seconds(lazy)
    print(
        f"dropped debug line, per call: f-string {f_string / CALLS * 1e6:.2f} µs, "
        f"%s arguments {percent_s / CALLS * 1e6:.3f} µs: {f_string / percent_s:.0f}x"
    )


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


Middleware = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]
REQUEST_ID = contextvars.ContextVar("request_id", default="-")


class RequestIdMiddleware:
    """Pure ASGI: the id stays current until the response's last send."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = REQUEST_ID.set(Headers(scope=scope).get("x-request-id") or "-")
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_ID.reset(token)


def install(app: FastAPI, middleware: Middleware | type[RequestIdMiddleware]) -> None:
    if isinstance(middleware, type):
        app.add_middleware(middleware)  # type: ignore[arg-type]
    else:
        app.middleware("http")(middleware)


async def wrong_ids(middleware: Any, current: Callable[[], str]) -> int:
    class Stamp(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.request_id = current()
            return True

    keep = Keep()
    keep.addFilter(Stamp())
    log = quiet_logger("bench.shop", logging.INFO, keep)
    app = FastAPI()
    install(app, middleware)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        await asyncio.sleep(0.01)
        log.info("loaded order %s", order_id)
        return {"order_id": order_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        await asyncio.gather(
            *(
                client.get(f"/orders/{n}", headers={"X-Request-ID": f"req-{n}"})
                for n in range(REQUESTS)
            )
        )
    return sum(getattr(r, "request_id") != f"req-{r.args[0]}" for r in keep.records)  # type: ignore[index]  # noqa: B009


def request_ids() -> None:
    state = {"current": "-"}

    async def global_mw(request: Request, call_next: Any) -> Response:
        state["current"] = request.headers["X-Request-ID"]
        response: Response = await call_next(request)
        return response

    globals_wrong = [
        asyncio.run(wrong_ids(global_mw, lambda: state["current"])) for _ in range(RUNS)
    ]
    context_wrong = [
        asyncio.run(wrong_ids(RequestIdMiddleware, REQUEST_ID.get)) for _ in range(RUNS)
    ]
    print(f"{REQUESTS} concurrent requests, lines with another request's id (median of {RUNS}): "
          f"global {statistics.median(globals_wrong):.0f}, ContextVar "
          f"{statistics.median(context_wrong):.0f}")  # fmt: skip


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                "order_id": getattr(record, "order_id", None),
            },
            default=str,
        )


def json_cost() -> None:
    results = {}
    for name, formatter in (("plain", logging.Formatter("%(message)s")), ("json", JsonFormatter())):
        handler = logging.StreamHandler(io.StringIO())
        handler.setFormatter(formatter)
        log = quiet_logger(f"bench.{name}", logging.INFO, handler)

        def write(log: logging.Logger = log) -> None:
            for n in range(CALLS):
                log.info("order %s paid", n, extra={"order_id": n})

        results[name] = median_seconds(write)
    plain, as_json = results["plain"], results["json"]
    print(f"one log line written: plain {plain / CALLS * 1e6:.2f} µs, JSON "
          f"{as_json / CALLS * 1e6:.2f} µs: {as_json / plain:.1f}x")  # fmt: skip


async def reset_in_finally(request: Request, call_next: Any) -> Response:
    token = REQUEST_ID.set(request.headers["X-Request-ID"])
    try:
        response: Response = await call_next(request)
    finally:
        REQUEST_ID.reset(token)  # before Starlette sends the response
    return response


def access_lines_with_their_id(middleware: Any) -> int:
    class Stamp(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.request_id = REQUEST_ID.get()
            return True

    keep = Keep()
    keep.addFilter(Stamp())
    app = FastAPI()
    install(app, middleware)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        return {"order_id": order_id}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    access = quiet_logger("uvicorn.access", logging.INFO, keep)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

    async def traffic() -> None:
        async with httpx.AsyncClient(base_url=url) as client:
            await asyncio.gather(
                *(client.get(f"/orders/{n}", headers={"X-Request-ID": f"req-{n}"})
                  for n in range(REQUESTS))
            )  # fmt: skip

    try:
        asyncio.run(traffic())
    finally:
        server.should_exit = True
        thread.join()
        access.handlers = []
    return sum(
        getattr(r, "request_id") == f"req-{str(r.args[2]).rsplit('/', 1)[-1]}"  # type: ignore[index]  # noqa: B009
        for r in keep.records
    )


def access_ids() -> None:
    reset, asgi = (
        access_lines_with_their_id(reset_in_finally),
        access_lines_with_their_id(RequestIdMiddleware),
    )
    print(f"uvicorn access lines carrying their request's id, of {REQUESTS}: "
          f"HTTP middleware resetting in finally {reset}, pure ASGI middleware {asgi}")  # fmt: skip


class SlowSink(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.02)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def queue_handler() -> None:
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    shipper = logging.handlers.HTTPHandler(
        f"127.0.0.1:{sink.server_address[1]}", "/logs", method="POST"
    )

    async def ten_requests(log: logging.Logger) -> float:
        async def request(n: int) -> None:
            log.info("order %s loaded", n)
            await asyncio.sleep(0.01)
            log.info("order %s paid", n)

        started = time.perf_counter()
        await asyncio.gather(*(request(n) for n in range(10)))
        return time.perf_counter() - started

    log = quiet_logger("bench.slow", logging.INFO, shipper)
    direct = statistics.median(asyncio.run(ten_requests(log)) for _ in range(RUNS))
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(lines, shipper)
    log.handlers = [logging.handlers.QueueHandler(lines)]
    listener.start()
    queued = statistics.median(asyncio.run(ten_requests(log)) for _ in range(RUNS))
    listener.stop()
    sink.shutdown()
    print(f"10 concurrent requests, a 20 ms log sink: direct handler {direct * 1000:.0f} ms, "
          f"QueueHandler {queued * 1000:.0f} ms: {direct / queued:.0f}x")  # fmt: skip


def main() -> None:
    debug_cost()
    request_ids()
    access_ids()
    json_cost()
    queue_handler()


if __name__ == "__main__":
    main()
