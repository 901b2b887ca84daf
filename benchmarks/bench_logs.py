"""Module 05 headline figures: what careless logging costs.

1. A dropped DEBUG line: `log.debug(f"cart {cart}")` against `log.debug("cart %s", cart)`,
   with DEBUG off (the f-string renders the cart anyway).
2. Request ids under 50 concurrent FastAPI requests: lines carrying another request's id
   with a module-level global against a ContextVar.
3. What a JSON line costs: a json.dumps formatter against a plain `%(message)s` one.

Each timing is the median of 5 runs. Run: .venv/bin/python benchmarks/bench_logs.py
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

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


async def wrong_ids(middleware: Middleware, current: Callable[[], str]) -> int:
    class Stamp(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.request_id = current()
            return True

    keep = Keep()
    keep.addFilter(Stamp())
    log = quiet_logger("bench.shop", logging.INFO, keep)
    app = FastAPI()
    app.middleware("http")(middleware)

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
    var = contextvars.ContextVar("request_id", default="-")

    async def global_mw(request: Request, call_next: Any) -> Response:
        state["current"] = request.headers["X-Request-ID"]
        response: Response = await call_next(request)
        return response

    async def context_mw(request: Request, call_next: Any) -> Response:
        token = var.set(request.headers["X-Request-ID"])
        try:
            response: Response = await call_next(request)
        finally:
            var.reset(token)
        return response

    globals_wrong = [
        asyncio.run(wrong_ids(global_mw, lambda: state["current"])) for _ in range(RUNS)
    ]
    context_wrong = [asyncio.run(wrong_ids(context_mw, var.get)) for _ in range(RUNS)]
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


def main() -> None:
    debug_cost()
    request_ids()
    json_cost()


if __name__ == "__main__":
    main()
