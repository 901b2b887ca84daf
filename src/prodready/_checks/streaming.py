"""Checks for module 04: generators and streaming, constant memory for data of any size.

Memory is measured with ``tracemalloc`` (what Python allocates, the same on every OS).
Ceilings sit far from both sides: a streaming answer peaks 5-20x below its ceiling and a
materialising one 4x or more above it, on Python 3.11 to 3.13.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import Table, create_engine, event, func, select
from sqlalchemy.engine import Engine

from .._check import Fail, checker, expect, run_in_fresh_loop
from .._course import data_path
from .._datagen import ensure, generate

T = TypeVar("T")
MB = 1_000_000

ORDERS_SAMPLE = "streaming_orders_sample.csv"
ACCESS_SAMPLE = "streaming_access_sample.log"
# What the committed orders sample holds (tests/test_datagen.py keeps it unchanged).
SAMPLE_BAD_LINES = [659, 1432, 1544, 1620, 1749]
SAMPLE_VALID = 1995
SAMPLE_REVENUE = Decimal("3184969.64")
# The first 30,000 rows of the generated orders data set.
MEDIUM_ROWS = 30_000
MEDIUM_VALID = 29_906
MEDIUM_REVENUE = Decimal("48743774.47")
REPORT_CEILING = 4 * MB  # the orders as objects: ~15 MB; one pass: ~0.1 MB
# Nearest-rank p95 in seconds per endpoint over the generated 1,000,000-line log
# (tests/test_datagen.py recomputes it from the generator).
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
P95_TRACED_LINES = (50_000, 250_000)  # memory is traced on these prefixes of the log
P95_CEILING = 4 * MB  # at 250,000 lines, one float per line: ~8.5 MB; a histogram: ~0.8 MB
EXPORT_HEADER = "order_id,customer,qty,amount"


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


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


# --- streaming.read_valid_rows -------------------------------------------------------


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
    # A second, tiny input: the reader must not depend on the sample file.
    tiny = [
        "order_id,customer,sku,qty,unit_price,created_at\n",
        "1,C00001,ABC-0001,2,9.99,2026-11-01T10:00:00Z\n",
        "2,C00002,ABC-0002,zero,9.99,2026-11-01T10:01:00Z\n",
        "3,C00003,ABC-0003,1,5.00,2026-11-01T10:02:00Z\n",
    ]
    errors = []
    tiny_ids = [getattr(o, "order_id", None) for o in read_valid_orders(iter(tiny), errors)]
    expect(
        tiny_ids == [1, 3] and _error_lines(errors) == [3],
        f"on a 3-row file with a bad qty on line 3, the reader yielded order ids {tiny_ids} "
        f"and reported lines {_error_lines(errors)} (expected [1, 3] and [3])",
    )
    return "yields each valid order at once, and records the line and reason of every bad row"


def _error_lines(errors: list[Any]) -> list[Any]:
    lines: list[Any] = []
    for error in errors:
        ok = isinstance(error, tuple) and len(error) == 2 and isinstance(error[1], str)
        expect(ok and bool(error[1]), f"each error is a (line number, reason) pair; got {error!r}")
        lines.append(error[0])
    return lines


# --- streaming.batched_writer --------------------------------------------------------


def _export_rows(count: int) -> list[dict[str, Any]]:
    return [
        {"order_id": i, "customer": f"C{i:05d}", "qty": 1 + i % 5, "amount_cents": 100 + i}
        for i in range(1, count + 1)
    ]


class _InsertLog:
    """Every INSERT the engine runs: how many rows, and how far the input had been read."""

    def __init__(self, engine: Engine, rows: _Counted[dict[str, Any]] | None) -> None:
        self.batches: list[int] = []
        self.taken_at_first: int | None = None
        self._rows = rows

        @event.listens_for(engine, "before_cursor_execute")
        def record(
            conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
        ) -> None:
            if not statement.lstrip().upper().startswith("INSERT"):
                return
            if self.taken_at_first is None and self._rows is not None:
                self.taken_at_first = self._rows.taken
            self.batches.append(len(params) if many else 1)


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
        f"all {inserts.taken_at_first:,} rows were read before the first INSERT: the batches "
        "were cut from a list holding the whole input. Take batch_size rows at a time from "
        "the iterator instead.",
    )
    expect(written == 1234, f"write_orders returned {written!r}; return how many rows it wrote")
    engine = _fresh_db(orders_table)
    exact = _InsertLog(engine, None)
    _write(write_orders, iter(_export_rows(300)), engine, 100)
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


@checker("streaming.exhaustion")
def exhaustion(nightly_report: Callable[[Path], Any]) -> str:
    orders, revenue, average = _report(nightly_report, data_path(ORDERS_SAMPLE))
    if orders == SAMPLE_VALID and not revenue:
        raise Fail(
            f"the report says {orders:,} orders and a revenue of {revenue!r}: the first loop "
            "used the generator up, so the second loop over it silently saw no orders. A "
            "generator can be read once."
        )
    expect(orders == SAMPLE_VALID, f"the report counted {orders!r} orders; the sample holds 1,995")
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
        medium = generate("orders", Path(tmp), rows=MEDIUM_ROWS)
        (orders, revenue, _), peak = _peak_bytes(lambda: _report(nightly_report, medium))
    expect(
        orders == MEDIUM_VALID and _close(revenue, MEDIUM_REVENUE),
        f"on 30,000 rows the report said {orders!r} orders and {revenue!r}; expected "
        f"{MEDIUM_VALID:,} and {MEDIUM_REVENUE}",
    )
    expect(
        peak <= REPORT_CEILING,
        f"on 30,000 orders the report's memory peaked at {_mb(peak)} (ceiling "
        f"{_mb(REPORT_CEILING)}): it keeps every order, so the nightly file of 10 million "
        "orders needs gigabytes. Get the numbers in one pass, or make a source that opens "
        "the file again for each pass, instead of keeping the orders.",
    )
    return "right numbers from a generator, None on an empty night, and no order kept in memory"


# --- streaming.export_endpoint -------------------------------------------------------


class _Download:
    """What a client saw: status, content type, and each body message's size (and bytes)."""

    def __init__(self, keep_body: bool) -> None:
        self.status = 0
        self.content_type = ""
        self.chunk_sizes: list[int] = []
        self.body: list[bytes] | None = [] if keep_body else None

    @property
    def text(self) -> str:
        return b"".join(self.body or []).decode()


async def _asgi_get(app: Any, path: str, query: str, keep_body: bool) -> _Download:
    """One GET straight through the ASGI interface, recording every body message as sent."""
    download = _Download(keep_body)
    finished = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            download.status = int(message["status"])
            for key, value in message.get("headers", []):
                if key.decode().lower() == "content-type":
                    download.content_type = value.decode()
        elif message["type"] == "http.response.body" and message.get("body"):
            download.chunk_sizes.append(len(message["body"]))
            if download.body is not None:
                download.body.append(bytes(message["body"]))

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": [(b"host", b"check")],
        "client": ("127.0.0.1", 50000), "server": ("check", 80),
    }  # fmt: skip
    try:
        await app(scope, receive, send)
    finally:
        finished.set()
    return download


def _get(app: Any, rows: int, keep_body: bool = True) -> _Download:
    result: _Download = run_in_fresh_loop(
        lambda: _asgi_get(app, "/orders.csv", f"n={rows}", keep_body)
    )
    return result


@checker("streaming.export_endpoint")
def export_endpoint(app: Any) -> str:
    expect(callable(app), "app must stay the FastAPI application")
    small = _get(app, 2500)
    expect(small.status == 200, f"GET /orders.csv?n=2500 answered {small.status}; expected 200")
    expect(
        small.content_type.startswith("text/csv"),
        f"the content type is {small.content_type!r}: say text/csv so browsers save a file",
    )
    lines = small.text.splitlines()
    expect(
        bool(lines) and lines[0] == EXPORT_HEADER,
        f"the first line is {lines[0] if lines else ''!r}; expected the header {EXPORT_HEADER!r}",
    )
    ids = [line.partition(",")[0] for line in lines[1:]]
    expect(
        ids == [str(100_000 + i) for i in range(2500)],
        f"?n=2500 gave {len(ids):,} rows; expected the 2,500 orders in order, one per line",
    )
    chunks = len(small.chunk_sizes)
    expect(
        chunks > 1,
        "the whole CSV left in one piece: the server built the entire body in memory before "
        "sending its first byte. Stream it: a StreamingResponse over a generator.",
    )
    expect(
        chunks <= 2500 // 100,
        f"{chunks:,} chunks for 2,501 lines: one tiny chunk per line costs a send (and, for a "
        "sync generator, a threadpool hop) per line, which is what turns a 1-second download "
        "into minutes. Join a few thousand lines into each chunk.",
    )
    _get(app, 10)  # warm up: first-request allocations are not the export's
    big, peak = _peak_bytes(lambda: _get(app, 200_000, keep_body=False))
    size = sum(big.chunk_sizes)
    expect(
        big.status == 200 and size > 4 * MB,
        f"?n=200000 gave status {big.status} and {size:,} bytes",
    )
    expect(
        peak <= size // 4,
        f"exporting 200,000 orders ({_mb(size)}) peaked at {_mb(peak)} of server memory: "
        "something holds the whole export (a list of rows or lines, a joined body). Each "
        "chunk should be built from the rows it needs, then let go.",
    )
    return "the CSV streams in batched chunks, and server memory stays small whatever n is"


# --- streaming.p95_latency -----------------------------------------------------------


def _nearest_rank(counts: Counter[float], fraction: float) -> float:
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


def _compare(got: Any, expected: Mapping[str, float], where: str) -> None:
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
        if not isinstance(value, int | float):
            raise Fail(f"p95 of {endpoint!r} is {value!r}; give it as a number of seconds")
        if math.isclose(value, want * 1000, rel_tol=0.01):
            raise Fail(
                f"p95 of {endpoint!r} is {value!r}: that looks like milliseconds; the log "
                "and the answer are in seconds"
            )
        expect(
            abs(value - want) <= max(0.001, 0.01 * want),
            f"on {where}, p95 of {endpoint!r} came out as {value!r}, which is not its 95th "
            "percentile: 95% of that endpoint's requests took at most the p95 (skip the "
            "'-' lines of clients that hung up; they have no time)",
        )


def _log_prefix(log: Path, lines: int, folder: Path) -> Path:
    prefix = folder / f"access_log_{lines}.log"
    with log.open(encoding="utf-8") as source, prefix.open("w", encoding="utf-8") as out:
        out.writelines(islice(source, lines))
    return prefix


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
    log = ensure("access_log")
    # Memory is traced on two prefixes of the log (tracing slows Python down 5-7x, so the
    # whole log would take too long): a constant-memory answer peaks about the same on
    # both, and below the ceiling; one value kept per line grows fivefold.
    with tempfile.TemporaryDirectory(prefix="prodready-check-") as tmp:
        peaks = {}
        for lines in P95_TRACED_LINES:
            prefix = _log_prefix(log, lines, Path(tmp))
            _, peaks[lines] = _peak_bytes(partial(p95_by_endpoint, prefix))
    small, large = (peaks[n] for n in P95_TRACED_LINES)
    expect(
        large <= P95_CEILING and large <= 2 * small + MB // 2,
        f"memory grows with the log: it peaked at {_mb(small)} on the first "
        f"{P95_TRACED_LINES[0]:,} lines and {_mb(large)} on the first "
        f"{P95_TRACED_LINES[1]:,} (ceiling {_mb(P95_CEILING)}). Something keeps one value per "
        "line, maybe a list built inside a helper: the 1,000,000-line log would need 4x that, "
        "and a 50 GB log 200x. Keep per endpoint only what does not grow with the lines.",
    )
    _compare(p95_by_endpoint(log), ACCESS_LOG_P95, "the 1,000,000-line log")
    return f"exact p95 for {len(ACCESS_LOG_P95)} endpoints over 1,000,000 lines, in constant memory"
