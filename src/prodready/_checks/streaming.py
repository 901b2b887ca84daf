"""Checks for module 04: generators and streaming, constant memory for data of any size.

Memory is measured with ``tracemalloc`` (what Python allocates, the same on every OS).
A claim of constant memory is judged by *growth*: the same code runs on two inputs of
the check's own making, far enough apart in size that even compact per-item storage
(an ``array``, a heap of the slowest 5%, a list of floats) adds several times the
allowance, while a structure bounded by the answer (a histogram, one batch, one chunk)
adds nothing. Inputs are kept small, because tracing slows Python down 5-10x.

HTTP checks call the app straight through ASGI with the check's own ``receive`` and
``send``: ``send`` keeps the size and a hash of each body message and drops the bytes,
so what is measured is the app's memory alone (``httpx.ASGITransport`` would buffer the
body; a real server and client would add their own buffers to the trace).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import math
import random
import re
import tempfile
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from numbers import Real
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import Table, create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from .._check import Fail, checker, expect, run_in_fresh_loop
from .._course import data_path
from .._datagen import generate
from ._support import Overran, within

T = TypeVar("T")
KB = 1_000
MB = 1_000_000
KIB = 1024
MIB = 1024 * 1024
WATCHDOG = 20.0  # seconds: the check's own limit for one HTTP exchange

ORDERS_SAMPLE = "streaming_orders_sample.csv"
ACCESS_SAMPLE = "streaming_access_sample.log"
# What the committed orders sample holds (tests/test_datagen.py keeps it unchanged).
SAMPLE_BAD_LINES = [659, 1432, 1544, 1620, 1749]
SAMPLE_VALID = 1995
SAMPLE_REVENUE = Decimal("3184969.64")


class _Counted(Generic[T]):
    """An iterator that counts how many items were taken from it (and has no len())."""

    def __init__(self, items: Iterable[T]) -> None:
        self._items = iter(items)
        self.taken = 0

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        item = next(self._items)
        self.taken += 1
        return item


def _peak_bytes(call: Callable[[], T]) -> tuple[T, int]:
    """``call()``'s result and the peak memory Python allocated while it ran."""
    already = tracemalloc.is_tracing()
    if already:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
    else:
        tracemalloc.start()
        base = 0
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        if not already:
            tracemalloc.stop()


def _kb(size: int) -> str:
    return f"{size / KB:,.0f} KB"


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


# --- streaming.read_valid_rows -------------------------------------------------------

# A partner's file as csv reads it (an open file yields these lines): a blank line, and a
# customer name with a line break inside its quotes. Rows and lines part company here.
TRICKY_LINES = [
    "order_id,customer,sku,qty,unit_price,created_at\n",  # line 1
    "1,C00001,ABC-0001,2,9.99,2026-11-01T10:00:00Z\n",  # line 2
    "\n",  # line 3: a blank line (csv skips it; it is still a line of the file)
    "2,C00002,ABC-0002,zero,9.99,2026-11-01T10:01:00Z\n",  # line 4: bad qty
    '3,"ACME Ltd\n',  # lines 5-6: one row, a quoted field with a line break
    'Billing dept",ABC-0003,1,5.00,2026-11-01T10:02:00Z\n',
    "4,C00004,ABC0004,1,5.00,2026-11-01T10:03:00Z\n",  # line 7: bad sku
    "5,C00005,ABC-0005,1,,2026-11-01T10:04:00Z\n",  # line 8: no price
    "6,C00006,ABC-0006,3,1.50,2026-11-01T10:05:00Z\n",  # line 9
]
TRICKY_BAD_LINES = [4, 7, 8]
TRICKY_ROW_COUNTS = [3, 5, 6]  # what counting rows from 2 says instead
TRICKY_IDS = [1, 3, 6]


def _error_lines(errors: list[Any]) -> list[Any]:
    lines: list[Any] = []
    for error in errors:
        ok = isinstance(error, tuple) and len(error) == 2 and isinstance(error[1], str)
        expect(ok and bool(error[1]), f"each error is a (line number, reason) pair; got {error!r}")
        lines.append(error[0])
    return lines


@checker("streaming.read_valid_rows")
def read_valid_rows(read_valid_orders: Callable[..., Iterable[Any]]) -> str:
    with data_path(ORDERS_SAMPLE).open(newline="", encoding="utf-8") as f:
        lines = _Counted(f)
        errors: list[Any] = []
        try:
            orders = iter(read_valid_orders(lines, errors))
            first = next(orders, None)
            taken_for_first = lines.taken
            valid = [first, *orders] if first is not None else []
        except ValueError as e:
            raise Fail(
                f"the import stopped with ValueError ({e}): one bad row cost every row after "
                "it. Catch the error of each row, record it in errors, and carry on with the "
                "next row."
            ) from None
    expect(
        taken_for_first <= 5,
        f"the first order came out only after {taken_for_first:,} lines were read: the "
        "reader reads the whole file before it yields anything, so a 10 GB file needs 10 GB "
        "of memory and a long wait before the first row. Yield each order as soon as it is "
        "parsed, without a list in between.",
    )
    expect(
        bool(valid) and getattr(valid[0], "order_id", None) == 100000,
        "yield the Order objects that parse_order() returns (the first one has order_id 100000)",
    )
    reported = _error_lines(errors)
    if reported == [line - 1 for line in SAMPLE_BAD_LINES]:
        raise Fail(
            f"errors name lines {reported}, one less than the file's own line numbers: the "
            "header is line 1, so the first data row is line 2. Whoever fixes the file "
            "opens it at the line you report."
        )
    expect(
        reported == SAMPLE_BAD_LINES,
        f"errors name lines {reported}; the sample's bad rows are on lines {SAMPLE_BAD_LINES} "
        "(the header is line 1). Record one (line number, reason) for each bad row.",
    )
    expect(
        len(valid) == SAMPLE_VALID,
        f"{len(valid):,} orders came out; the sample holds {SAMPLE_VALID:,} valid ones",
    )
    errors = []
    ids = [getattr(o, "order_id", None) for o in read_valid_orders(iter(TRICKY_LINES), errors)]
    reported = _error_lines(errors)
    if reported == TRICKY_ROW_COUNTS:
        raise Fail(
            f"in a 9-line file with a blank line (line 3) and a quoted name that runs over two "
            f"lines (5 and 6), errors name lines {reported}; the bad rows are on lines "
            f"{TRICKY_BAD_LINES}. Counting rows is not counting lines: every row after a blank "
            "line or a line break inside quotes is reported too early, and the person fixing "
            "the file looks at the wrong row. The csv reader itself knows how many lines it "
            "has read."
        )
    expect(
        ids == TRICKY_IDS and reported == TRICKY_BAD_LINES,
        f"in a 9-line file with a blank line and a quoted name over two lines, the reader "
        f"yielded order ids {ids} and reported lines {reported} (expected {TRICKY_IDS} and "
        f"{TRICKY_BAD_LINES}, the file's own line numbers)",
    )
    return "yields each valid order at once, and records the line and reason of every bad row"


# --- streaming.batched_writer --------------------------------------------------------


def _export_rows(count: int) -> list[dict[str, Any]]:
    return [
        {"order_id": i, "customer": f"C{i:05d}", "qty": 1 + i % 5, "amount_cents": 100 + i}
        for i in range(1, count + 1)
    ]


class _InsertLog:
    """Every INSERT the engine runs: how many rows it wrote, and how far the input had
    been read when the first one started. Rows are counted by the database (the
    cursor's rowcount), so executemany and a multi-row VALUES count alike."""

    def __init__(self, engine: Engine, rows: _Counted[dict[str, Any]] | None) -> None:
        self.batches: list[int] = []
        self.taken_at_first: int | None = None
        self._rows = rows

        @event.listens_for(engine, "before_cursor_execute")
        def started(
            conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
        ) -> None:
            if _is_insert(statement) and self.taken_at_first is None and self._rows is not None:
                self.taken_at_first = self._rows.taken

        @event.listens_for(engine, "after_cursor_execute")
        def finished(
            conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
        ) -> None:
            if _is_insert(statement):
                self.batches.append(int(cursor.rowcount))


def _is_insert(statement: str) -> bool:
    return statement.lstrip().upper().startswith("INSERT")


def _fresh_db(table: Table) -> Engine:
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    return engine


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _write(write_orders: Callable[..., Any], rows: Iterable[Any], engine: Engine, size: int) -> Any:
    try:
        return write_orders(rows, engine, batch_size=size)
    except Exception as e:
        if "DEFAULT VALUES" in str(e):
            raise Fail(
                "an empty batch reached the database: SQLAlchemy runs execute(insert(table), "
                "[]) as INSERT ... DEFAULT VALUES, one row of NULLs, which fails here and "
                "corrupts a table without NOT NULL columns. Never yield an empty batch."
            ) from None
        raise


@checker("streaming.batched_writer")
def batched_writer(write_orders: Callable[..., Any], orders_table: Table) -> str:
    engine = _fresh_db(orders_table)
    rows = _Counted(_export_rows(1234))
    inserts = _InsertLog(engine, rows)
    written = _write(write_orders, rows, engine, 500)
    stored = _count(engine, orders_table)
    if stored == 1000:
        raise Fail(
            "1,000 of 1,234 rows reached the table: the last, partial batch (234 rows) was "
            "never written. A batching loop must hand over what is left when the input ends."
        )
    if stored == 0 and inserts.batches:
        raise Fail(
            f"{len(inserts.batches)} INSERT(s) ran, but the table is empty: nothing was "
            "committed. engine.connect() rolls back what is left uncommitted when its block "
            "ends; engine.begin() commits."
        )
    expect(stored == 1234, f"{stored:,} of 1,234 rows reached the table")
    if len(inserts.batches) >= 1234:
        raise Fail(
            f"{len(inserts.batches):,} INSERT statements for 1,234 rows: one round trip per "
            "row is what makes imports take hours. Send each batch in one statement."
        )
    expect(
        inserts.batches == [500, 500, 234],
        f"with batch_size=500 the INSERTs carried {inserts.batches} rows; expected "
        "[500, 500, 234]: one statement per batch of batch_size rows",
    )
    expect(
        inserts.taken_at_first is not None and inserts.taken_at_first <= 501,
        f"all {inserts.taken_at_first or 0:,} rows were read before the first INSERT: the "
        "batches were cut from a list holding the whole input. Take batch_size rows at a "
        "time from the iterator instead.",
    )
    expect(written == 1234, f"write_orders returned {written!r}; return how many rows it wrote")
    engine = _fresh_db(orders_table)
    exact = _InsertLog(engine, None)
    try:  # a plain list this time: any iterable will do, not only an iterator
        _write(write_orders, _export_rows(300), engine, 100)
    except IntegrityError:
        raise Fail(
            "given a list of 300 rows, the same rows were inserted twice (UNIQUE constraint "
            "failed): each batch started again from the top of the list. Take every batch "
            "from one iterator over the input."
        ) from None
    expect(
        exact.batches == [100, 100, 100] and _count(engine, orders_table) == 300,
        f"300 rows with batch_size=100 gave INSERTs of {exact.batches} rows; expected three "
        "of 100 and no more",
    )
    engine = _fresh_db(orders_table)
    nothing = _InsertLog(engine, None)
    written = _write(write_orders, iter([]), engine, 100)
    expect(
        not nothing.batches and written == 0,
        f"no rows gave {len(nothing.batches)} INSERT(s) and returned {written!r} (expected 0)",
    )
    return (
        "one INSERT per batch, the last partial batch included, no empty batch, input read lazily"
    )


# --- streaming.exhaustion ------------------------------------------------------------

REPORT_TRACED = (1_000, 4_000)  # rows in the two traced files (prefixes of the orders data)
REPORT_GROWTH = 40 * KB  # one float kept per order adds ~100 KB from 1,000 to 4,000 orders


def _report(nightly_report: Callable[[Path], Any], path: Path) -> tuple[Any, Any, Any]:
    report = nightly_report(path)
    try:
        return report["orders"], report["revenue"], report["average"]
    except (KeyError, TypeError):
        raise Fail(
            f"nightly_report returned {report!r}; keep its shape: a dict with the keys "
            "'orders', 'revenue' and 'average'"
        ) from None


def _close(value: Any, expected: Decimal) -> bool:
    try:
        return abs(Decimal(str(value)) - expected) <= Decimal("0.01")
    except ArithmeticError:
        return False


def _money(name: str, value: Any) -> None:
    expect(
        not isinstance(value, float),
        f"the report's {name} is a float ({value!r}): binary floats cannot hold most cents "
        "exactly, and a sum over millions of orders drifts. Keep money in Decimal, as "
        "unit_price is.",
    )


def _one_pass_report(path: Path) -> tuple[int, Decimal]:
    """The check's own count and revenue, with its own strict parsing of each row."""
    count, revenue = 0, Decimal(0)
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            qty, price = row["qty"], row["unit_price"]
            try:
                valid = bool(
                    row["customer"]
                    and re.fullmatch(r"[A-Z]{3}-\d{4}", row["sku"])
                    and qty.isdigit()
                    and int(qty) >= 1
                    and Decimal(price) > 0
                )
            except ArithmeticError:
                valid = False
            if valid:
                count += 1
                revenue += int(qty) * Decimal(price)
    return count, revenue


@checker("streaming.exhaustion")
def exhaustion(nightly_report: Callable[[Path], Any]) -> str:
    sample = data_path(ORDERS_SAMPLE)
    orders, revenue, average = _report(nightly_report, sample)
    if orders == SAMPLE_VALID and not revenue:
        raise Fail(
            f"the report says {orders:,} orders and a revenue of {revenue!r}: the first loop "
            "used the generator up, so the second loop over it silently saw no orders. A "
            "generator can be read once."
        )
    expect(orders == SAMPLE_VALID, f"the report counted {orders!r} orders; the sample holds 1,995")
    _money("revenue", revenue)
    _money("average", average)
    expect(
        _close(revenue, SAMPLE_REVENUE),
        f"the report's revenue is {revenue!r}; the sample's is {SAMPLE_REVENUE}",
    )
    expected_average = SAMPLE_REVENUE / SAMPLE_VALID
    expect(
        _close(average, expected_average),
        f"the average order value is {average!r}; expected about {expected_average:.2f}",
    )
    with tempfile.TemporaryDirectory(prefix="prodready-check-") as tmp:
        empty = Path(tmp) / "no_orders.csv"
        empty.write_text("order_id,customer,sku,qty,unit_price,created_at\n", encoding="utf-8")
        try:
            orders, revenue, average = _report(nightly_report, empty)
        except ArithmeticError as e:  # ZeroDivisionError, or decimal's DivisionUndefined
            raise Fail(
                f"a file with no orders raised {type(e).__name__}: on a quiet night the report "
                "crashes instead of saying 0 orders. Give 'average' as None when there are none."
            ) from None
        expect(
            orders == 0 and revenue == 0 and average is None,
            f"a file with no orders gave orders={orders!r}, revenue={revenue!r}, "
            f"average={average!r}; expected 0, 0 and None",
        )
        peaks = []
        for rows in REPORT_TRACED:
            path = generate("orders", Path(tmp) / str(rows), rows=rows)
            (orders, revenue, _), peak = _peak_bytes(partial(_report, nightly_report, path))
            valid, total = _one_pass_report(path)
            expect(
                orders == valid and _close(revenue, total),
                f"on {rows:,} rows the report said {orders!r} orders and {revenue!r}; expected "
                f"{valid:,} and {total}",
            )
            peaks.append(peak)
    growth = peaks[1] - peaks[0]
    small, large = REPORT_TRACED
    expect(
        growth <= REPORT_GROWTH,
        f"the report's memory grows with the file: its peak rose by {_kb(growth)} from "
        f"{small:,} to {large:,} orders (about {growth / (large - small):.0f} bytes per order; "
        f"allowed: flat, within {_kb(REPORT_GROWTH)}). Something keeps every order or a "
        "number per order (a list, a tee), so the nightly file of 10 million orders needs "
        "gigabytes. Get the numbers in one pass, or make a source that opens the file again "
        "for each pass, instead of keeping anything per order.",
    )
    return "right numbers from a generator, None on an empty night, and no order kept in memory"


# --- HTTP straight through ASGI ------------------------------------------------------


@dataclass
class _Exchange:
    """What the client saw: status, headers, the size and hash of each body message."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunk_sizes: list[int] = field(default_factory=list)
    body: list[bytes] | None = None  # kept only when asked for
    sha256: Any = field(default_factory=hashlib.sha256)
    pulled: int = 0  # request body bytes the app took from receive()
    _cr: bool = False  # a body chunk ended in "\r": its "\n" may start the next one

    def take(self, chunk: bytes) -> None:
        self.chunk_sizes.append(len(chunk))
        if self.body is not None:
            self.body.append(chunk)
        # Hash with CRLF read as LF: csv.writer ends lines with "\r\n", csv_line with "\n".
        if self._cr and not chunk.startswith(b"\n"):
            self.sha256.update(b"\r")
        self._cr = chunk.endswith(b"\r")
        self.sha256.update((chunk[:-1] if self._cr else chunk).replace(b"\r\n", b"\n"))

    @property
    def text(self) -> str:
        return b"".join(self.body or []).decode()


async def _asgi(
    app: Any,
    method: str,
    path: str,
    query: str = "",
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: Iterable[bytes] = (),
    disconnect_after: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    keep_body: bool = False,
) -> _Exchange:
    """One request straight through the ASGI interface.

    ``body`` is sent one message per item, as the app asks for them; after
    ``disconnect_after`` messages the client hangs up instead. Response bodies are
    hashed and measured, and kept only with ``keep_body``."""
    exchange = _Exchange(body=[] if keep_body else None)
    finished = asyncio.Event()
    chunks = iter(body)
    upcoming = next(chunks, None)
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal upcoming, sent
        if disconnect_after is not None and sent >= disconnect_after:
            return {"type": "http.disconnect"}
        if upcoming is None and sent > 0:
            await finished.wait()
            return {"type": "http.disconnect"}
        chunk, upcoming = upcoming or b"", next(chunks, None)
        sent += 1
        exchange.pulled += len(chunk)
        if on_chunk is not None:
            on_chunk(sent)
        return {"type": "http.request", "body": chunk, "more_body": upcoming is not None}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            exchange.status = int(message["status"])
            for key, value in message.get("headers", []):
                exchange.headers[key.decode().lower()] = value.decode()
        elif message["type"] == "http.response.body" and message.get("body"):
            exchange.take(bytes(message["body"]))

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": [(b"host", b"check"), *(headers or [])],
        "client": ("127.0.0.1", 50000), "server": ("check", 80),
    }  # fmt: skip
    try:
        await app(scope, receive, send)
    finally:
        finished.set()
    return exchange


def _exchange(make: Callable[[], Awaitable[_Exchange]], what: str) -> _Exchange:
    try:
        result: _Exchange = run_in_fresh_loop(lambda: within(WATCHDOG, make()))
    except Overran:
        raise Fail(
            f"{what} was still running after {WATCHDOG:g} s: something waits forever or "
            "never stops producing (a loop without an end, a read that never returns)"
        ) from None
    return result


# --- streaming.export_endpoint -------------------------------------------------------

EXPORT_HEADER = "order_id,customer,qty,amount"
EXPORT_SMALL = 2_500  # the whole body fits in one 64 KiB buffer: any chunking is fine
EXPORT_LARGE = 45_000  # ~1 MB of CSV, untraced: the chunks are judged here
EXPORT_GAP = 6_000  # rows between the two traced exports (~130 KB of CSV)
EXPORT_GROWTH = 48 * KB  # keeping even one byte per byte of CSV adds ~130 KB
CHUNK_MIN = 1_000  # bytes, the median chunk: one line is ~22
CHUNK_MAX = 128 * KIB  # bytes, the largest chunk: about 6,000 lines


def _expected_lines(n: int) -> Iterator[str]:
    """The export as the check knows it: its own rendering, not the learner's helpers."""
    yield EXPORT_HEADER + "\n"
    for i in range(n):
        cents = 199 + i % 49_800
        yield f"{100_000 + i},C{i % 50_000:05d},{1 + i % 12},{cents // 100}.{cents % 100:02d}\n"


def _expected_sha256(n: int) -> str:
    digest = hashlib.sha256()
    lines = _expected_lines(n)
    while block := "".join(next(lines, "") for _ in range(10_000)):
        digest.update(block.encode())
    return digest.hexdigest()


def _download(app: Any, n: int, keep_body: bool = False) -> _Exchange:
    return _exchange(
        lambda: _asgi(app, "GET", "/orders.csv", f"n={n}", keep_body=keep_body),
        f"GET /orders.csv?n={n}",
    )


def _first_difference(got: str, n: int) -> str:
    lines = got.splitlines()
    for number, want in enumerate(_expected_lines(n), start=1):
        have = lines[number - 1] if number <= len(lines) else None
        if have != want.rstrip("\n"):
            return f"line {number} is {have!r}; expected {want.rstrip()!r}"
    return f"there are {len(lines):,} lines; expected {n + 1:,}"


def _same_export(app: Any, got: _Exchange, n: int) -> None:
    if got.status == 200 and got.sha256.hexdigest() == _expected_sha256(n):
        return
    full = _download(app, n, keep_body=True)
    raise Fail(
        f"?n={n:,} answered {full.status} and did not give the header and one line per order, "
        "in order: "
        + _first_difference(full.text.replace("\r\n", "\n"), n)
        + ". Is a buffer emptied after each chunk is sent?"
    )


def _upper_median(values: list[int]) -> int:
    return sorted(values)[len(values) // 2]


@checker("streaming.export_endpoint")
def export_endpoint(app: Any) -> str:
    expect(callable(app), "app must stay the FastAPI application")
    small = _download(app, EXPORT_SMALL, keep_body=True)
    expect(
        small.status == 200,
        f"GET /orders.csv?n={EXPORT_SMALL} answered {small.status}; expected 200",
    )
    content_type = small.headers.get("content-type", "")
    expect(
        content_type.startswith("text/csv"),
        f"the content type is {content_type!r}: say text/csv so browsers save a file",
    )
    expect(
        small.sha256.hexdigest() == _expected_sha256(EXPORT_SMALL),
        f"?n={EXPORT_SMALL} did not give the header and one line per order, in order: "
        + _first_difference(small.text.replace("\r\n", "\n"), EXPORT_SMALL),
    )
    if _upper_median(small.chunk_sizes) < CHUNK_MIN:
        raise Fail(
            f"{len(small.chunk_sizes):,} chunks for {EXPORT_SMALL + 1:,} lines: one tiny chunk "
            "per line costs a send (and, for a sync generator, a threadpool hop) per line, "
            "which turns a 1-second download into minutes. Put a thousand lines or so into "
            "each chunk."
        )
    large = _download(app, EXPORT_LARGE)
    _same_export(app, large, EXPORT_LARGE)
    size, chunks, biggest = sum(large.chunk_sizes), len(large.chunk_sizes), max(large.chunk_sizes)
    if chunks == 1:
        raise Fail(
            f"the whole {_mb(size)} CSV of ?n={EXPORT_LARGE:,} left in one piece: the server "
            "built the entire body in memory before sending its first byte, and the client "
            "waited for nothing. Stream it: a StreamingResponse over a generator."
        )
    expect(
        biggest <= CHUNK_MAX,
        f"?n={EXPORT_LARGE:,} ({_mb(size)}) went out in {chunks} chunks, the largest "
        f"{biggest:,} bytes: each chunk is built in memory before it is sent, so chunks this "
        "big cost memory per download. Keep them to tens of kilobytes (a thousand lines "
        "or so).",
    )
    expect(
        _upper_median(large.chunk_sizes) >= CHUNK_MIN,
        f"{chunks:,} chunks for {EXPORT_LARGE + 1:,} lines: most are tiny, a send per line or "
        "two. Put a thousand lines or so into each chunk.",
    )
    # The smaller traced export holds three and a half of the answer's largest chunks, so a
    # streaming answer already reaches its steady peak there (a chunk being sent, the rows
    # of the last one not yet freed, the next being built); the larger one adds
    # EXPORT_GAP rows, which only an answer that keeps rows or bytes pays for.
    bytes_per_row = size / (EXPORT_LARGE + 1)
    small_n = max(3_000, math.ceil(3.5 * biggest / bytes_per_row))
    peaks = []
    for n in (small_n, small_n + EXPORT_GAP):
        got, peak = _peak_bytes(partial(_download, app, n))
        _same_export(app, got, n)
        peaks.append(peak)
    growth = peaks[1] - peaks[0]
    expect(
        growth <= EXPORT_GROWTH,
        f"server memory grows with the export: its peak rose by {_kb(growth)} from "
        f"{small_n:,} to {small_n + EXPORT_GAP:,} orders (allowed: flat, within "
        f"{_kb(EXPORT_GROWTH)}). Something holds the whole export (a list of orders or lines, "
        "a buffer that is never emptied, a tee), so ten users downloading ten million rows "
        "take the server down. Each chunk should be built from the rows it needs, then let go.",
    )
    return "the CSV streams in chunks of bounded size, and server memory stays flat whatever n is"


# --- streaming.upload_limit ----------------------------------------------------------

UPLOAD_CHUNK = 64 * KIB  # what a server hands the app per message, about
UPLOAD_LIMIT = 256 * KIB  # for the limit tests
UPLOAD_TRACED = (1 * MIB, 8 * MIB)  # for the memory test, under a 16 MiB limit
UPLOAD_GROWTH = 512 * KB  # holding the body adds 7 MiB or more


def _upload_chunks(size: int) -> Iterator[bytes]:
    """``size`` bytes of CSV-looking data in 64 KiB messages, from a few prebuilt blocks
    (the check allocates nothing per message)."""
    blocks = _BLOCKS
    sent = 0
    while sent < size:
        block = blocks[(sent // UPLOAD_CHUNK) % len(blocks)]
        piece = block if size - sent >= len(block) else block[: size - sent]
        sent += len(piece)
        yield piece


def _make_blocks() -> list[bytes]:
    rng = random.Random(404)
    blocks = []
    for b in range(7):
        lines, size = [], 0
        while size < UPLOAD_CHUNK:
            order_id, customer = int(rng.random() * 10**9), int(rng.random() * 99_999)
            line = f"{b}{order_id:09d},C{customer:05d},ABC-0001,1,9.99\n"
            lines.append(line)
            size += len(line)
        blocks.append("".join(lines).encode()[:UPLOAD_CHUNK])
    return blocks


_BLOCKS = _make_blocks()


def _upload_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for piece in _upload_chunks(size):
        digest.update(piece)
    return digest.hexdigest()


@dataclass
class _Upload:
    exchange: _Exchange
    answer: Any
    files: list[Path]
    raised: BaseException | None = None
    seen_midway: list[str] = field(default_factory=list)


def _upload(
    app: Any,
    folder: Path,
    size: int,
    *,
    declare_length: bool = True,
    disconnect_after: int | None = None,
    watch_midway: bool = False,
) -> _Upload:
    headers = [(b"content-type", b"text/csv")]
    if declare_length:
        headers.append((b"content-length", str(size).encode()))
    seen: list[str] = []

    def look(sent: int) -> None:  # between two messages: what can the importer see?
        if watch_midway and sent == 3:
            seen.extend(p.name for p in folder.glob("*.csv"))

    raised: BaseException | None = None

    async def exchange() -> _Exchange:
        nonlocal raised
        try:
            return await _asgi(
                app, "POST", "/imports", headers=headers, body=_upload_chunks(size),
                disconnect_after=disconnect_after, on_chunk=look, keep_body=True,
            )  # fmt: skip
        except Exception as e:  # a client that hung up gets no answer: what counts is the disk
            if disconnect_after is None:
                raise
            raised = e
            return _Exchange()

    got = _exchange(exchange, f"an upload of {size:,} bytes")
    answer: Any = None
    if got.body:
        try:
            answer = json.loads(got.text)
        except ValueError:
            answer = got.text
    return _Upload(got, answer, _files(folder), raised, seen)


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder``: a staging subfolder is fine, what is in it counts."""
    return sorted(path for path in folder.rglob("*") if path.is_file())


def _empty(folder: Path) -> None:
    for path in _files(folder):
        path.unlink()


def _leftovers(upload: _Upload) -> str:
    return ", ".join(f"{p.name} ({p.stat().st_size:,} bytes)" for p in upload.files if p.exists())


def _stored(upload: _Upload, folder: Path, size: int, what: str) -> None:
    status, answer = upload.exchange.status, upload.answer
    expect(
        status == 201,
        f"{what} answered {status} {answer!r}; expected 201 with the id and size of the file",
    )
    expect(
        isinstance(answer, dict) and answer.get("bytes") == size and "id" in answer,
        f"{what} answered {answer!r}; expected {{'id': ..., 'bytes': {size}}}",
    )
    final = folder / f"{answer['id']}.csv"
    expect(
        final.is_file(),
        f"{what} answered id {answer['id']!r}, but {final.name} is not in upload_dir; the "
        f"folder holds: {_leftovers(upload) or 'nothing'}",
    )
    expect(
        _sha256_of(final) == _upload_sha256(size),
        f"{what}: {final.name} holds {final.stat().st_size:,} bytes that differ from what was "
        "sent. Write every chunk, in order, as bytes.",
    )
    others = [p for p in upload.files if p != final]
    expect(
        not others,
        f"after {what}, upload_dir also holds {', '.join(p.name for p in others)}: leave only "
        "the finished file",
    )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def _refused(upload: _Upload, size: int, limit: int, what: str) -> None:
    status = upload.exchange.status
    if status == 201:
        advice = (
            "A client can send a body without Content-Length (chunked transfer): count the "
            "bytes as they arrive; the header alone proves nothing."
            if "without" in what
            else "Refuse a body over the limit with 413."
        )
        raise Fail(
            f"{what} of {size:,} bytes, with max_upload_bytes={limit:,}, was stored (201): "
            f"nothing stops a client from filling the disk. {advice}"
        )
    expect(
        status == 413,
        f"{what} of {size:,} bytes, over max_upload_bytes={limit:,}, answered {status}; "
        "expected 413 (Content Too Large)",
    )
    expect(
        upload.exchange.pulled <= limit + UPLOAD_CHUNK,
        f"{what} of {size:,} bytes was refused with 413, but only after reading "
        f"{upload.exchange.pulled:,} bytes of it: a 10 GB upload is read to the end before "
        "the client hears no. Stop reading as soon as the count passes the limit.",
    )
    expect(
        not upload.files,
        f"after refusing {what}, upload_dir holds {_leftovers(upload)}: a refused upload "
        "must leave nothing behind, or the disk fills with half files. Delete what you "
        "wrote when the upload fails.",
    )


def _judge_uploads(app: Any, state: Any) -> list[int]:
    """Every rule of the task, in order; the peak memory of a small and a large upload."""
    with tempfile.TemporaryDirectory(prefix="prodready-check-") as tmp:
        folder = Path(tmp)
        state.upload_dir, state.max_upload_bytes = folder, UPLOAD_LIMIT
        small = _upload(app, folder, 200 * KIB + 17, watch_midway=True)
        _stored(small, folder, 200 * KIB + 17, "an upload of 200 KiB")
        expect(
            not small.seen_midway,
            f"while an upload was still arriving, the folder already held "
            f"{', '.join(small.seen_midway)}: the nightly import picks up every .csv it finds, "
            "and would load half a file. Write under another name and rename the file when "
            "it is complete.",
        )
        _empty(folder)
        exact = _upload(app, folder, UPLOAD_LIMIT)
        if exact.exchange.status == 413:
            raise Fail(
                f"an upload of exactly max_upload_bytes ({UPLOAD_LIMIT:,} bytes) was refused: "
                "the limit is the largest size allowed, not the first one refused"
            )
        _stored(exact, folder, UPLOAD_LIMIT, "an upload of exactly max_upload_bytes")
        _empty(folder)
        over = UPLOAD_LIMIT * 8
        declared = _upload(app, folder, over)
        _refused(declared, over, UPLOAD_LIMIT, "an upload with a Content-Length")
        chunked = _upload(app, folder, over, declare_length=False)
        _refused(chunked, over, UPLOAD_LIMIT, "an upload without Content-Length")
        hung_up = _upload(app, folder, 200 * KIB, disconnect_after=2)
        expect(
            not hung_up.files,
            "a client that hung up halfway left "
            f"{_leftovers(hung_up)} in upload_dir: the upload ended with an exception "
            f"({type(hung_up.raised).__name__ if hung_up.raised else 'none'}) and nothing "
            "cleaned up. Delete the partial file whatever ends the upload.",
        )
        state.max_upload_bytes = 2 * UPLOAD_TRACED[1]
        peaks: list[int] = []
        for size in UPLOAD_TRACED:
            upload, peak = _peak_bytes(partial(_upload, app, folder, size))
            _stored(upload, folder, size, f"an upload of {size // MIB} MiB")
            _empty(folder)
            peaks.append(peak)
    return peaks


@checker("streaming.upload_limit")
def upload_limit(app: Any) -> str:
    expect(
        callable(app) and hasattr(app, "state"),
        "imports must stay the FastAPI application",
    )
    state = app.state
    settings = {name: getattr(state, name, None) for name in ("upload_dir", "max_upload_bytes")}
    try:
        peaks = _judge_uploads(app, state)
    finally:  # the learner's app goes back to its own folder and limit
        for name, value in settings.items():
            setattr(state, name, value)
    growth = peaks[1] - peaks[0]
    expect(
        growth <= UPLOAD_GROWTH,
        f"server memory grows with the upload: its peak rose by {_mb(growth)} from a 1 MiB "
        f"to an 8 MiB upload (allowed: flat, within {_kb(UPLOAD_GROWTH)}). The body is held "
        "in memory before it reaches the disk (request.body(), or chunks collected first): "
        "ten users uploading 2 GB at once take the server down. Write each chunk as it "
        "arrives.",
    )
    return "uploads stream to disk, appear whole or not at all, and stop at the size limit"


# --- streaming.p95_latency -----------------------------------------------------------


def _nearest_rank(counts: Mapping[Any, int], fraction: float) -> Any:
    rank = math.ceil(fraction * sum(counts.values()))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    raise ValueError("no values")


def reference_p95(path: Path) -> dict[str, float]:
    """The reference answer: a histogram of latencies per endpoint, nearest-rank p95."""
    histograms: defaultdict[str, Counter[float]] = defaultdict(Counter)
    with path.open(encoding="utf-8") as log:
        for line in log:
            _, _, method, route, _, _, seconds = line.split()
            if seconds != "-":
                histograms[f"{method} {route}"][float(seconds)] += 1
    return {endpoint: _nearest_rank(c, 0.95) for endpoint, c in sorted(histograms.items())}


# Nearest-rank p95 in seconds per endpoint over the generated 1,000,000-line log
# (tests/test_datagen.py recomputes it from the generator; the workbook prints it).
ACCESS_LOG_P95 = {
    "GET /api/cart": 0.081,
    "GET /api/orders": 0.292,
    "GET /api/products": 0.128,
    "GET /api/reports/daily": 4.646,
    "GET /api/search": 0.802,
    "GET /health": 0.013,
    "POST /api/login": 0.593,
    "POST /api/orders": 0.515,
}


def _log_line(method: str, path: str, status: int, seconds: str, n: int = 0) -> str:
    return (
        f"2026-12-01T09:{n // 60 % 60:02d}:{n % 60:02d}.{n % 997:03d}Z 10.2.{n % 7}.{1 + n % 250} "
        f"{method} {path} {status} {300 + n % 4000} {seconds}\n"
    )


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


SLOW_EXPORTS_MS = (
    2_500, 3_100, 4_000, 7_250, 8_000, 9_999, 10_001, 12_000, 15_500, 19_000,
    25_000, 31_000, 44_000, 58_000, 65_535, 65_536, 71_000, 99_999, 130_004, 3_600_000,
)  # fmt: skip


def _rules_log() -> tuple[list[str], dict[str, float]]:
    """A small log where each rule of the task changes an answer: nearest rank (not an
    interpolation, not one rank off), every status counts, '-' lines skipped, latencies
    of minutes (past 65.535 s, and past 10 s where text sorts wrongly), methods apart."""
    latencies: dict[tuple[str, str], list[tuple[int, int]]] = {
        # 20 requests: the p95 is the 19th smallest exactly; linear interpolation is 5 ms off
        ("GET", "/api/rank20"): [(200, 100 * i) for i in range(1, 21)],
        # 30 requests: 0.95 x 30 = 28.5, so the 29th smallest
        ("GET", "/api/rank30"): [(200, 10 * i + 7) for i in range(1, 31)],
        # the same path with another method is another endpoint
        ("POST", "/api/rank30"): [(201, 3 + i) for i in range(1, 11)],
        # the slow requests are the ones that failed: they count
        ("GET", "/api/flaky"): [(200, 40 + i) for i in range(1, 19)]
        + [(500, 30_000), (504, 60_001)],
        # minutes: past what 16 bits of milliseconds hold, and past 10 s ("10.5" < "9.0")
        ("GET", "/api/export"): [(200, ms) for ms in SLOW_EXPORTS_MS],
        ("POST", "/api/once"): [(201, 42)],
        # a stream that most clients leave early: the '-' lines are no time, not 0 s
        ("GET", "/api/live"): [(200, 50 * i) for i in range(1, 21)],
    }
    hang_ups = {("GET", "/api/live"): 40}  # every other endpoint has one
    lines: list[str] = []
    expected: dict[str, float] = {}
    for (method, path), requests in latencies.items():
        counts = Counter(ms for _, ms in requests)
        expected[f"{method} {path}"] = _nearest_rank(counts, 0.95) / 1000
        for status, ms in requests:
            lines.append(_log_line(method, path, status, _seconds(ms), len(lines)))
        for _ in range(hang_ups.get((method, path), 1)):  # clients that hung up
            lines.append(_log_line(method, path, 499, "-", len(lines)))
    random.Random(95).shuffle(lines)
    return lines, expected


# The memory logs: five endpoints with 400 distinct latencies each. The first part holds
# every (endpoint, latency) once, so any histogram is full after it; the rest only
# repeats them, a calm half then a busy half (a window or a sample gets the p95 wrong).
P95_ENDPOINTS = (
    ("GET", "/v2/items", 2, 1),  # method, path, first latency (ms), step (ms)
    ("POST", "/v2/items", 25, 2),
    ("GET", "/v2/search", 30, 3),
    ("DELETE", "/v2/items", 8, 1),
    ("GET", "/v2/reports", 900, 37),
)
P95_VALUES = 400
P95_TRACED = (3_000, 33_000)  # lines in the two traced logs
P95_GROWTH = 16 * KB  # the slowest 5% kept in a heap adds ~45 KB; 2 bytes a line, ~60 KB
P95_CEILING = 32 * MB  # a fixed structure may be large, not this large


def _memory_logs(folder: Path) -> tuple[list[Path], list[dict[str, float]]]:
    rng = random.Random(2026)
    templates = [
        [
            [_log_line(m, p, status, _seconds(first + step * v), v) for status in (200, 404, 500)]
            for v in range(P95_VALUES)
        ]
        for m, p, first, step in P95_ENDPOINTS
    ]
    hung_up = [_log_line(m, p, 499, "-", 1) for m, p, _, _ in P95_ENDPOINTS]
    counts = [Counter[int]() for _ in P95_ENDPOINTS]
    lines: list[str] = []

    def add(e: int, v: int) -> None:
        counts[e][v] += 1
        lines.append(templates[e][v][int(rng.random() * 3)])

    every = [(e, v) for e in range(len(P95_ENDPOINTS)) for v in range(P95_VALUES)]
    rng.shuffle(every)
    for e, v in every:
        add(e, v)
    paths, expected = [], []
    for target in P95_TRACED:
        start = len(lines)
        while len(lines) < target:
            e = int(rng.random() * len(P95_ENDPOINTS))
            if rng.random() < 0.002:
                lines.append(hung_up[e])
                continue
            busy = len(lines) > (start + target) // 2
            v = int(rng.random() * 300) + (100 if busy else 0)
            add(e, v)
        path = folder / f"access_{target}.log"
        path.write_text("".join(lines), encoding="utf-8")
        paths.append(path)
        expected.append(
            {
                f"{m} {p}": (first + step * _nearest_rank(c, 0.95)) / 1000
                for (m, p, first, step), c in zip(P95_ENDPOINTS, counts, strict=True)
            }
        )
    return paths, expected


def _compare(got: Any, expected: Mapping[str, float], where: str, show: bool = False) -> None:
    expect(
        isinstance(got, Mapping), f"p95_by_endpoint returned {type(got).__name__}; return a dict"
    )
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    expect(
        not missing and not extra,
        f"on {where} the endpoints should be {sorted(expected)} (method, a space, the path); "
        f"missing {missing}, unexpected {extra}",
    )
    for endpoint, want in expected.items():
        value = got[endpoint]
        if isinstance(value, bool) or not isinstance(value, Real | Decimal):
            raise Fail(f"p95 of {endpoint!r} is {value!r}; give it as a number of seconds")
        if want and math.isclose(float(value), want * 1000, rel_tol=0.001):
            raise Fail(
                f"p95 of {endpoint!r} is {value!r}: that looks like milliseconds; the log "
                "and the answer are in seconds"
            )
        if abs(float(value) - want) >= 0.0005:
            shown = f"; the exact nearest-rank p95 is {want:g}" if show else ""
            raise Fail(
                f"on {where}, p95 of {endpoint!r} came out as {value!r}, which is not its "
                f"exact 95th percentile{shown}. The p95 is the smallest latency that at least "
                "95% of that endpoint's requests did not exceed, to the millisecond: every "
                "request with a time counts, whatever its status, and the '-' lines of "
                "clients that hung up have no time."
            )


@checker("streaming.p95_latency")
def p95_latency(p95_by_endpoint: Callable[[Path], Any]) -> str:
    sample = data_path(ACCESS_SAMPLE)
    try:
        got = p95_by_endpoint(sample)
    except ValueError as e:
        raise Fail(
            f"ValueError on the sample ({e}): some lines end in '-' (the client hung up, so "
            "there is no time); skip them"
        ) from None
    _compare(got, reference_p95(sample), "the 6,000-line sample")
    with tempfile.TemporaryDirectory(prefix="prodready-check-") as tmp:
        lines, expected = _rules_log()
        rules = Path(tmp) / "rules.log"
        rules.write_text("".join(lines), encoding="utf-8")
        _compare(p95_by_endpoint(rules), expected, f"a {len(lines)}-line test log", show=True)
        paths, answers = _memory_logs(Path(tmp))
        peaks = []
        for path, answer, lines_in_log in zip(paths, answers, P95_TRACED, strict=True):
            got, peak = _peak_bytes(partial(p95_by_endpoint, path))
            _compare(got, answer, f"a {lines_in_log:,}-line log")
            peaks.append(peak)
    growth = peaks[1] - peaks[0]
    gap = P95_TRACED[1] - P95_TRACED[0]
    expect(
        growth <= P95_GROWTH,
        f"memory grows with the log: the peak rose by {_kb(growth)} from {P95_TRACED[0]:,} to "
        f"{P95_TRACED[1]:,} lines that repeat the same latencies (about "
        f"{growth / gap:.1f} bytes per line; allowed: flat, within {_kb(P95_GROWTH)}). "
        "Something keeps a value per line or per slow request (a list, an array, a heap), "
        "maybe inside a helper: a 40 GB log needs that many bytes per line, times 600 "
        "million lines. Keep per endpoint only what the distinct latencies need.",
    )
    expect(
        peaks[1] <= P95_CEILING,
        f"the peak memory was {_mb(peaks[1])} for a {P95_TRACED[1]:,}-line log: a fixed "
        "structure this big costs more than the answer needs. Size it by the latencies that "
        "occur.",
    )
    return "exact nearest-rank p95 per endpoint, in memory that does not grow with the log"
