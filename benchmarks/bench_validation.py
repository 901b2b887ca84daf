"""Module 01 headline figures: what validation at the boundary costs, and what a body limit saves.

1. Microseconds per row to validate CSV rows with a constrained Pydantic model (valid and
   dirty rows mixed), and rows per second for a whole import that keeps the good rows and
   reports every bad one with the line it starts on.
2. Milliseconds to answer an oversized JSON body (a 10,000-line cart, about 310 KB) without a
   body limit (FastAPI reads, parses and validates it, then echoes it in the 422) and with
   `FastAPI(max_body_size=64_000)` (413 before the body is read).

Each figure is the median of 5 runs. Run: .venv/bin/python benchmarks/bench_validation.py
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, Field, StrictInt, ValidationError

from prodready._checks.validation import _generated_orders

RUNS = 5
ROWS = 20_000


class OrderRow(BaseModel):
    order_id: int = Field(gt=0)
    sku: str = Field(pattern=r"^[A-Z]{3}-[0-9]{4}$")
    qty: int = Field(ge=1, le=100)
    unit_price: Decimal = Field(gt=0, le=Decimal("9999.99"), decimal_places=2)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
    note: str = Field(default="", max_length=200)


def import_orders(path: Path) -> tuple[int, int]:
    """The module's reference import: (rows kept, rows rejected)."""
    kept = rejected = 0
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        ended = reader.line_num
        for cells in reader:
            _line, ended = ended + 1, reader.line_num
            if not cells:
                continue
            if len(cells) != len(header):
                rejected += 1
                continue
            try:
                OrderRow.model_validate(dict(zip(header, cells, strict=True)))
                kept += 1
            except ValidationError:
                rejected += 1
    return kept, rejected


def median_seconds(work: Any) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class CartLine(BaseModel):
    sku: str
    qty: StrictInt = Field(ge=1, le=100)


class Cart(BaseModel):
    lines: list[CartLine] = Field(min_length=1, max_length=100)


def cart_app(**settings: Any) -> FastAPI:
    app = FastAPI(**settings)

    @app.post("/carts", status_code=201)
    def create_cart(cart: Cart) -> dict[str, int]:
        return {"lines": len(cart.lines)}

    return app


async def answer_seconds(app: FastAPI, body: bytes) -> tuple[float, int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        times, status = [], 0
        for _ in range(RUNS):
            started = time.perf_counter()
            response = await client.post(
                "/carts", content=body, headers={"content-type": "application/json"}
            )
            times.append(time.perf_counter() - started)
            status = response.status_code
    return statistics.median(times), status


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        path = _generated_orders(Path(tmp) / "orders.csv", ROWS, seed=2026)
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        complete = [row for row in rows if None not in row and None not in row.values()]

        def validate_all() -> None:
            for row in complete:
                with contextlib.suppress(ValidationError):
                    OrderRow.model_validate(row)

        per_row = median_seconds(validate_all) / len(complete)
        whole = median_seconds(lambda: import_orders(path))
        kept, rejected = import_orders(path)
    print(
        f"validate one CSV row: {per_row * 1e6:.1f} µs (median of {RUNS}, {len(complete):,} rows)"
    )
    print(
        f"import {ROWS:,} rows ({kept:,} kept, {rejected:,} rejected): {whole:.2f} s, "
        f"{ROWS / whole:,.0f} rows/s"
    )

    body = json.dumps({"lines": [{"sku": "ABC-0001", "qty": 1}] * 10_000}).encode()
    unlimited, status_a = asyncio.run(answer_seconds(cart_app(), body))
    limited, status_b = asyncio.run(answer_seconds(cart_app(max_body_size=64_000), body))
    print(f"a {len(body) // 1000} KB cart, no body limit: {status_a} in {unlimited * 1000:.1f} ms")
    print(f"the same cart, max_body_size=64_000: {status_b} in {limited * 1000:.2f} ms")
    print(f"the limit answers {unlimited / limited:.0f}x faster")


if __name__ == "__main__":
    main()
