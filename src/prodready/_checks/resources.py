"""Checks for module 08: resources, dependency injection and tests of the whole flow.

The workbook's shared types live here too, so the notebook and its checks agree on them
(the notebook imports them): the stock and order tables, the subscription domain of
exercises 4 and 5, and the order API whose tests the learner writes in exercise 6.

A check sees a leak without ``/proc`` (Linux only), so the checks run on macOS and
Windows too:

- a file left open: its ``ResourceWarning`` ("unclosed file"), recorded while the check
  runs, however the learner's code opened it;
- a temporary folder left behind: ``tempfile.tempdir`` points at a folder of the check's
  own while the learner's code runs, and that folder must be empty afterwards;
- a sqlite3 connection never closed: the check's ``connect`` returns a Connection subclass
  that records ``close()``;
- SQLAlchemy engines and connections: class-level pool events count the pools that
  connected (one per engine), the connections opened and closed, checkouts and checkins.

The learner's own tests (exercises 5 and 6) run one by one in a thread of their own, each
under the check's watchdog, with network connections refused, in a working directory and
a temp dir that must be empty when the test ends, and with the cyclic garbage collector
paused, so that a leaked session keeps its connection until a test (or the check) looks.
They run against the correct code, twice (the second time in reverse order), and then
against planted bugs: every bug must make at least one test fail.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import csv
import gc
import inspect
import ipaddress
import logging
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import httpx
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import create_engine, event, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import Pool

from .._check import Fail, checker, expect
from .._course import scratch_dir
from ._support import Overran, asgi_client, gc_paused, within

__all__ = [
    "Base",
    "Billing",
    "BillingDeclined",
    "Clock",
    "HttpBilling",
    "Order",
    "Settings",
    "SqliteSubscriptions",
    "Stock",
    "Subscription",
    "SubscriptionRepo",
    "SystemClock",
    "create_order_app",
    "next_renewal",
]


# ---- the workbook's tables ------------------------------------------------------------
class Base(DeclarativeBase):
    pass


class Stock(Base):
    __tablename__ = "stock"
    sku: Mapped[str] = mapped_column(primary_key=True)
    qty: Mapped[int]


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str]
    qty: Mapped[int]


# ---- the subscription domain (exercises 4 and 5) --------------------------------------
@dataclass(frozen=True)
class Subscription:
    id: str
    customer: str
    plan_cents: int
    renews_on: date


class BillingDeclined(Exception):
    """The payment provider refused the charge (card expired, no funds, ...)."""


class Clock(Protocol):
    def today(self) -> date: ...


class SubscriptionRepo(Protocol):
    def active(self) -> list[Subscription]: ...

    def save(self, subscription: Subscription) -> None: ...


class Billing(Protocol):
    def charge(self, customer: str, cents: int, key: str) -> None:
        """Charge ``cents``; ``key`` makes a retried charge count once. Raises
        ``BillingDeclined`` when the provider refuses."""


def next_renewal(day: date) -> date:
    """The same day next month, or that month's last day (31 January -> 28 February)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class SystemClock:
    def today(self) -> date:
        return date.today()


class SqliteSubscriptions:
    """The production repository: one sqlite3 database file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def active(self) -> list[Subscription]:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            rows = db.execute(
                "SELECT id, customer, plan_cents, renews_on FROM subscriptions ORDER BY id"
            ).fetchall()
        return [Subscription(i, c, cents, date.fromisoformat(d)) for i, c, cents, d in rows]

    def save(self, subscription: Subscription) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute(
                "UPDATE subscriptions SET renews_on = ? WHERE id = ?",
                (subscription.renews_on.isoformat(), subscription.id),
            )


class HttpBilling:
    """The production billing client: the payment provider's HTTP API."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def charge(self, customer: str, cents: int, key: str) -> None:
        response = self.client.post(
            "/charges",
            json={"customer": customer, "cents": cents},
            headers={"Idempotency-Key": key},
        )
        if response.status_code == 402:
            raise BillingDeclined(customer)
        response.raise_for_status()


# ---- exercise 3: the app's settings ---------------------------------------------------
@dataclass(frozen=True)
class Settings:
    database_url: str
    prices_url: str
    prices_transport: httpx.AsyncBaseTransport | None = None  # tests plug in a fake here


# ---- the order API of exercise 6 (the learner tests it) -------------------------------
class StockIn(BaseModel):
    qty: int = Field(ge=0)


class OrderIn(BaseModel):
    sku: str = Field(min_length=1)
    qty: int = Field(gt=0)


class OutOfStock(Exception):
    pass


class SqlInventory:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def take(self, sku: str, qty: int) -> None:
        stock = await self.session.get(Stock, sku)
        if stock is None or stock.qty < qty:
            raise OutOfStock(sku)
        stock.qty -= qty


class UnlimitedInventory:
    """The stub the team used before stock existed: always yes, takes nothing."""

    async def take(self, sku: str, qty: int) -> None:
        return None


@dataclass(frozen=True)
class _OrderAppBugs:
    missing_commit: bool = False
    stub_inventory: bool = False
    close_on_happy_path_only: bool = False


def create_order_app(engine: AsyncEngine) -> FastAPI:
    """The order API of exercise 6. The caller owns ``engine`` (and disposes it); the
    app's lifespan creates the tables.

    - ``PUT /stock/{sku}`` ``{"qty": n}`` sets the stock; ``GET /stock/{sku}`` reads it (404
      for an unknown SKU);
    - ``POST /orders`` ``{"sku": ..., "qty": n}`` takes ``qty`` from the stock and answers 201
      with ``{"id", "sku", "qty"}``, or 409 when the stock is short (or the SKU unknown);
    - ``GET /orders/{id}`` answers the order, or 404.

    Concurrent orders for the last items of a SKU are not the subject here: on a server
    database, take the stock with an atomic ``UPDATE ... WHERE qty >= :n`` (module 02).
    """
    return _order_app(engine, _OrderAppBugs())


def _order_app(
    engine: AsyncEngine, bugs: _OrderAppBugs, leaked: list[AsyncSession] | None = None
) -> FastAPI:
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield

    app = FastAPI(lifespan=lifespan)

    async def get_session() -> AsyncIterator[AsyncSession]:
        if bugs.close_on_happy_path_only:
            session = sessions()
            if leaked is not None:
                leaked.append(session)  # so that the check can clean up after the bug
            yield session
            await session.close()  # skipped when the endpoint raises (404, 409)
        else:
            async with sessions() as session:
                yield session

    async def get_inventory(session: AsyncSession = Depends(get_session)) -> object:  # noqa: B008
        return UnlimitedInventory() if bugs.stub_inventory else SqlInventory(session)

    @app.put("/stock/{sku}")
    async def set_stock(
        sku: str,
        body: StockIn,
        session: AsyncSession = Depends(get_session),  # noqa: B008
    ) -> dict[str, object]:
        stock = await session.get(Stock, sku)
        if stock is None:
            session.add(Stock(sku=sku, qty=body.qty))
        else:
            stock.qty = body.qty
        await session.commit()
        return {"sku": sku, "qty": body.qty}

    @app.get("/stock/{sku}")
    async def read_stock(
        sku: str,
        session: AsyncSession = Depends(get_session),  # noqa: B008
    ) -> dict[str, object]:
        stock = await session.get(Stock, sku)
        if stock is None:
            raise HTTPException(status_code=404, detail=f"no stock for {sku}")
        return {"sku": stock.sku, "qty": stock.qty}

    @app.post("/orders", status_code=201)
    async def place_order(
        body: OrderIn,
        session: AsyncSession = Depends(get_session),  # noqa: B008
        inventory: Any = Depends(get_inventory),  # noqa: B008
    ) -> dict[str, object]:
        try:
            await inventory.take(body.sku, body.qty)
        except OutOfStock:
            raise HTTPException(status_code=409, detail=f"not enough {body.sku} in stock") from None
        order = Order(sku=body.sku, qty=body.qty)
        session.add(order)
        if bugs.missing_commit:
            await session.flush()  # the id is assigned; the transaction is never committed
        else:
            await session.commit()
        return {"id": order.id, "sku": order.sku, "qty": order.qty}

    @app.get("/orders/{order_id}")
    async def read_order(
        order_id: int,
        session: AsyncSession = Depends(get_session),  # noqa: B008
    ) -> dict[str, object]:
        order = await session.get(Order, order_id)
        if order is None:
            raise HTTPException(status_code=404, detail=f"no order {order_id}")
        return {"id": order.id, "sku": order.sku, "qty": order.qty}

    return app


# ---- the reference renewal service of exercise 5, and its planted bugs ----------------
@dataclass(frozen=True)
class _RenewalBugs:
    skips_due_today: bool = False
    reads_system_clock: bool = False
    extends_declined: bool = False
    stops_at_decline: bool = False
    forgets_to_save: bool = False


class _Renewals:
    """What exercise 4 builds. The learner's tests of exercise 5 must accept it."""

    bugs = _RenewalBugs()

    def __init__(self, repo: SubscriptionRepo, clock: Clock, billing: Billing) -> None:
        self.repo, self.clock, self.billing = repo, clock, billing

    def renew_due(self) -> list[str]:
        bugs = self.bugs
        today = date.today() if bugs.reads_system_clock else self.clock.today()
        renewed = []
        for sub in self.repo.active():
            due = sub.renews_on < today if bugs.skips_due_today else sub.renews_on <= today
            if not due:
                continue
            try:
                self.billing.charge(sub.customer, sub.plan_cents, f"{sub.id}:{sub.renews_on}")
            except BillingDeclined:
                if bugs.stops_at_decline:
                    break
                if bugs.extends_declined:
                    self.repo.save(replace(sub, renews_on=next_renewal(sub.renews_on)))
                continue
            if not bugs.forgets_to_save:
                self.repo.save(replace(sub, renews_on=next_renewal(sub.renews_on)))
            renewed.append(sub.id)
        return renewed


def _renewals_with(bugs: _RenewalBugs) -> type[_Renewals]:
    return type("RenewalService", (_Renewals,), {"bugs": bugs})


# ---- small helpers --------------------------------------------------------------------
def _callable(thing: object, name: str) -> Callable[..., Any]:
    expect(callable(thing), f"{name} must be a function; got {type(thing).__name__}")
    return thing  # type: ignore[return-value]


def _collect_quietly() -> None:
    """Collect garbage without the pool's log line for each leak it reclaims."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.collect()
    finally:
        logging.disable(previous)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@contextlib.contextmanager
def _temp_dir_of_our_own(folder: Path) -> Iterator[None]:
    """Point ``tempfile`` at ``folder``, so what the learner's code leaves there is seen."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = previous


def _kind_of_warning(message: str) -> str:
    if message.startswith("unclosed file"):
        return "a file open"
    if "TemporaryDirectory" in message:
        return "a temporary folder for the garbage collector to remove"
    if "unclosed" in message or "was deleted before being closed" in message:
        return "a connection open"
    return "a resource open"


# ---- the network guard ----------------------------------------------------------------
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@dataclass
class _NetworkLog:
    attempts: list[str] = field(default_factory=list)
    active: bool = False


@contextlib.contextmanager
def _no_network(log: _NetworkLog) -> Iterator[None]:
    """Refuse connections that leave the machine, and name lookups, while ``log.active``.

    Loopback stays allowed: asyncio's own plumbing (a socket pair, on Windows) connects
    to it, and an in-process server is not the network."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(where: str) -> ConnectionRefusedError:
        log.attempts.append(where)
        return ConnectionRefusedError(f"the check refuses network connections (to {where})")

    def destination(address: object) -> tuple[object, str]:
        if isinstance(address, tuple) and address:
            port = address[1] if len(address) > 1 else ""
            return address[0], f"{address[0]}:{port}"
        return address, str(address)

    def refused(sock: socket.socket, host: object) -> bool:
        local = sock.family == getattr(socket, "AF_UNIX", None) or _is_loopback(host)
        return log.active and not local

    def connect(self: socket.socket, address: Any) -> None:
        host, where = destination(address)
        if refused(self, host):
            raise refuse(where)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        host, where = destination(address)
        if refused(self, host):
            raise refuse(where)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if log.active and name is not None and not _is_loopback(name):
            raise refuse(f"{name}:{port}")
        return real_getaddrinfo(host, port, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[assignment,method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[assignment,method-assign]
    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo


# ---- counting SQLAlchemy pools --------------------------------------------------------
@dataclass
class _PoolEvents:
    """Counts, over every SQLAlchemy pool in the process, while the block runs."""

    engines: int = 0  # pools that opened their first connection: one per engine used
    opened: int = 0
    closed: int = 0
    checkouts: int = 0
    checkins: int = 0

    @property
    def open_now(self) -> int:
        return self.opened - self.closed

    @property
    def in_use(self) -> int:
        return self.checkouts - self.checkins


@contextlib.contextmanager
def _counting_pools() -> Iterator[_PoolEvents]:
    counts = _PoolEvents()

    def bump(name: str) -> Callable[..., None]:
        def listener(*_: object) -> None:
            setattr(counts, name, getattr(counts, name) + 1)

        return listener

    listeners = {
        "first_connect": bump("engines"),
        "connect": bump("opened"),
        "close": bump("closed"),
        "close_detached": bump("closed"),
        "checkout": bump("checkouts"),
        "checkin": bump("checkins"),
    }
    for name, listener in listeners.items():
        event.listen(Pool, name, listener)
    try:
        yield counts
    finally:
        for name, listener in listeners.items():
            event.remove(Pool, name, listener)


# ==== resources.export_report ==========================================================
HEADER = ["sku", "qty", "cents"]


def _report_rows(n: int) -> list[dict[str, object]]:
    return [{"sku": f"SKU-{i:05d}", "qty": 1 + i % 7, "cents": 199 + 10 * i} for i in range(n)]


def _rows_then(rows: list[dict[str, object]], error: BaseException) -> Iterator[dict[str, object]]:
    """The rows a database cursor streams, until the connection drops halfway."""
    yield from rows
    raise error


def _read_report(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


class _Interrupted(KeyboardInterrupt):
    """A Ctrl-C (or a worker being stopped) in the middle of an export."""


@dataclass
class _ExportRun:
    returned: object = None
    error: BaseException | None = None
    warned: list[str] = field(default_factory=list)


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _export(export_report: Callable[..., Any], rows: Iterable[Any], out: Path) -> _ExportRun:
    run = _ExportRun()
    was_enabled = gc.isenabled()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.disable()  # nothing the learner's code makes is promoted to an older generation
        try:
            run.returned = export_report(rows, out)
        except BaseException as e:  # KeyboardInterrupt included: it is one of the paths
            run.error = e
        finally:
            if was_enabled:
                gc.enable()
        # the tracebacks hold the learner's frames, and their open files: let them go now,
        # so an unclosed file is finalized (and warns) while the warnings are recorded
        for error in _chain(run.error):
            error.__traceback__ = None
        del rows
        gc.collect(0)  # and a file held in a reference cycle: all of it is in generation 0
    run.warned = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    return run


def _export_leftovers(workdir: Path, tmp: Path, keep: set[str]) -> str | None:
    extra_tmp = _names(tmp)
    extra_out = [n for n in _names(workdir) if n not in keep]
    if extra_tmp:
        return f"{len(extra_tmp)} entr{'y' if len(extra_tmp) == 1 else 'ies'} in the temp folder"
    if extra_out:
        return f"{', '.join(extra_out)} next to the report"
    return None


@checker("resources.export_report")
def export_report(export_report: object) -> str:
    export = _callable(export_report, "export_report")
    root = scratch_dir("prodready-export-")
    try:
        _export_happy_paths(export, root)
        _export_failure_paths(export, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return (
        "0, 3 and 5,000 rows exported whole; every failure (a bad row, the source dying, "
        "Ctrl-C, the final move) leaves no open file, no temp folder and the old report intact."
    )


def _export_scenario(root: Path, name: str) -> tuple[Path, Path, Path]:
    workdir, tmp = root / name / "reports", root / name / "tmp"
    workdir.mkdir(parents=True)
    tmp.mkdir()
    return workdir, tmp, workdir / "daily.csv"


_LEAK_WHY = (
    "A process that leaks one file per failed export runs out of descriptors after a few "
    "hundred failures, and then fails everything with 'OSError: [Errno 24] Too many open "
    "files' (the lesson's section 1). Follow the path where an exception flies: what "
    "closes the file there?"
)


def _expect_no_leak(
    run: _ExportRun, workdir: Path, tmp: Path, out: Path, what: str, *, interrupted: bool = False
) -> None:
    why_not = (
        " KeyboardInterrupt derives from BaseException, not Exception: cleanup in an "
        "`except Exception:` block never sees it."
        if interrupted
        else ""
    )
    if run.warned:
        raise Fail(
            f"{what}, your code left {_kind_of_warning(run.warned[0])} (Python's "
            f"ResourceWarning said so).{why_not} " + _LEAK_WHY
        )
    left = _export_leftovers(workdir, tmp, keep={out.name})
    if left is not None:
        raise Fail(
            f"{what}, your code left files behind ({left}).{why_not} Temporary files that "
            "survive a failure pile up until the disk is full. Whatever the export creates "
            "must be removed on every path out of the function, the failing ones included."
        )


def _export_happy_paths(export: Callable[..., Any], root: Path) -> None:
    for n in (3, 0, 5000):
        workdir, tmp, out = _export_scenario(root, f"ok{n}")
        if n == 5000:
            out.write_text("sku,qty,cents\nOLD-1,1,100\n", encoding="utf-8")
        rows = _report_rows(n)
        with _temp_dir_of_our_own(tmp):
            run = _export(export, iter(rows), out)
        if run.error is not None:
            raise Fail(f"exporting {n} good rows raised {type(run.error).__name__}: {run.error}")
        expect(out.is_file(), f"after exporting {n} rows, there is no report at out_path")
        got = _read_report(out)
        expected = [HEADER, *([str(r[k]) for k in HEADER] for r in rows)]
        if got != expected:
            lines = len(got) - 1 if got else 0
            if got[:1] == [HEADER] and got[1:] == expected[1 : len(got)] and lines < n:
                raise Fail(
                    f"the report of {n} rows holds only {lines} of them: the end of the file "
                    "is missing. Buffered writes reach the disk when the file is closed; a "
                    "file moved (or read) before it is closed loses its last buffer."
                )
            raise Fail(
                f"the report of {n} rows is not the expected CSV (header sku,qty,cents, then "
                f"one line per row in order); its first lines are {got[:3]!r:.200}"
            )
        expect(
            run.returned == n,
            f"export_report must return the number of rows written ({n}); it returned "
            f"{run.returned!r:.80}",
        )
        _expect_no_leak(run, workdir, tmp, out, f"after a successful export of {n} rows")


def _export_failure_paths(export: Callable[..., Any], root: Path) -> None:
    old = "sku,qty,cents\nOLD-1,1,100\nOLD-2,2,200\n"
    good = _report_rows(1500)
    bad_row = [*good[:700], {"sku": "SKU-BAD", "qty": 1}, *good[700:]]  # no "cents"
    cases: list[tuple[str, Callable[[], Iterable[Any]], type[BaseException]]] = [
        ("when row 701 had no 'cents'", lambda: iter(bad_row), Exception),
        (
            "when the rows' source failed after 1,000 rows (ConnectionResetError)",
            lambda: _rows_then(good[:1000], ConnectionResetError("database connection lost")),
            ConnectionResetError,
        ),
        (
            "when a KeyboardInterrupt (Ctrl-C, or the worker being stopped) arrived after "
            "1,000 rows",
            lambda: _rows_then(good[:1000], _Interrupted()),
            KeyboardInterrupt,
        ),
    ]
    for index, (what, rows, expected) in enumerate(cases):
        workdir, tmp, out = _export_scenario(root, f"fail{index}")
        out.write_text(old, encoding="utf-8")
        with _temp_dir_of_our_own(tmp):
            run = _export(export, rows(), out)
        if run.error is None:
            raise Fail(
                f"{what}, export_report returned {run.returned!r:.60} instead of raising: the "
                "caller (a scheduler, a supervisor) believes the export worked. Clean up, "
                "then let the error go on."
            )
        if not any(isinstance(e, expected) for e in _chain(run.error)):
            raise Fail(
                f"{what}, export_report raised {type(run.error).__name__} instead of letting "
                f"the original {expected.__name__} through: whoever handles it upstream no "
                "longer recognises it."
            )
        _expect_no_leak(run, workdir, tmp, out, what, interrupted=expected is KeyboardInterrupt)
        now = out.read_text(encoding="utf-8") if out.is_file() else None
        if now != old:
            raise Fail(
                f"{what}, the previous report at out_path was "
                f"{'deleted' if now is None else 'overwritten with part of the new one'}. "
                "Readers (a dashboard, the finance team's import) now see half a report, or "
                "none. Write the new report somewhere else first and put it in place only "
                "once it is complete."
            )
    # the last step fails: the report's folder has gone (unmounted, deleted by a cleanup job)
    workdir, tmp, out = _export_scenario(root, "move")
    out = workdir / "gone" / "daily.csv"
    with _temp_dir_of_our_own(tmp):
        run = _export(export, iter(good[:10]), out)
    what = "when the finished report could not be put in place (its folder does not exist)"
    if run.error is None:
        raise Fail(f"{what}, export_report returned instead of raising")
    _expect_no_leak(run, workdir, tmp, out, what)


# ==== resources.open_shards ============================================================
@dataclass
class _ShardLog:
    opened: list[_TrackedConnection] = field(default_factory=list)


class _TrackedConnection(sqlite3.Connection):
    """A real sqlite3 connection that remembers how it was ended."""

    closed_explicitly = False
    exited_with = 0  # times it was used as a context manager

    def close(self) -> None:
        self.closed_explicitly = True
        super().close()

    def __exit__(self, *exc: object) -> Any:
        self.exited_with += 1
        return super().__exit__(*exc)  # type: ignore[arg-type]


def _tracking_connect(log: _ShardLog) -> Callable[[str | Path], sqlite3.Connection]:
    def connect(path: str | Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, factory=_TrackedConnection)
        log.opened.append(conn)
        return conn

    return connect


class _BlockFailed(Exception):
    """The work inside ``with open_shards(...)`` failed."""


def _still_open(log: _ShardLog) -> list[_TrackedConnection]:
    return [c for c in log.opened if not c.closed_explicitly]


def _shard_leak(log: _ShardLog, what: str) -> Fail | None:
    left = _still_open(log)
    if not left:
        return None
    if all(c.exited_with for c in left):
        return Fail(
            f"{what}, {len(left)} of {len(log.opened)} connections went through a `with` "
            "block and were never closed: a sqlite3 Connection used as a context manager "
            "commits or rolls back its transaction on exit; it does not close. Each one keeps "
            "its file handle (and, on a server database, a server process) until the garbage "
            "collector happens by."
        )
    return Fail(
        f"{what}, {len(left)} of the {len(log.opened)} connections opened were never closed. "
        "A nightly job that leaks a few connections per failure exhausts the database's "
        "connection limit (or the process's file descriptors) within days. Every connection "
        "that was opened must be closed on every path, including the path where a later one "
        "fails to open."
    )


def _close_all(log: _ShardLog) -> None:
    for conn in log.opened:
        with contextlib.suppress(Exception):
            sqlite3.Connection.close(conn)


@checker("resources.open_shards")
def open_shards(open_shards: object) -> str:
    opener = _callable(open_shards, "open_shards")
    root = scratch_dir("prodready-shards-")
    try:
        _shards_happy(opener, root)
        _shards_block_fails(opener, root)
        _shards_open_fails(opener, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return (
        "0, 3 and 25 shards: every connection opened is closed, whether the block succeeds, "
        "raises, is interrupted, or a later shard fails to open."
    )


def _enter(opener: Callable[..., Any], paths: list[Path], log: _ShardLog) -> Any:
    manager = opener(paths, _tracking_connect(log))
    expect(
        hasattr(manager, "__enter__") and hasattr(manager, "__exit__"),
        "open_shards(paths, connect) must return a context manager, for use as "
        f"`with open_shards(paths, connect) as conns:`; it returned {type(manager).__name__}",
    )
    return manager


def _shards_happy(opener: Callable[..., Any], root: Path) -> None:
    for n in (3, 0, 25):
        paths = [root / f"ok{n}-{i}.db" for i in range(n)]
        log = _ShardLog()
        try:
            with _enter(opener, paths, log) as conns:
                got = list(conns)
                expect(
                    len(log.opened) == n,
                    f"with {n} paths, the `connect` passed to open_shards opened "
                    f"{len(log.opened)} connection(s): open each shard with the `connect` you "
                    "are given (in production it is sqlite3.connect; the check's records what "
                    "gets closed)",
                )
                expect(
                    len(got) == n and all(a is b for a, b in zip(got, log.opened, strict=False)),
                    f"with {n} paths, `as conns` must give the {n} connections, in the order "
                    f"of the paths; it gave {len(got)} object(s) of type "
                    f"{sorted({type(c).__name__ for c in got})}",
                )
                for conn in got:
                    conn.execute("SELECT 1")  # every shard must be usable inside the block
            expect(len(log.opened) == n, f"with {n} paths, {len(log.opened)} were opened")
            if fail := _shard_leak(log, f"after a `with` block over {n} shards that succeeded"):
                raise fail
        finally:
            _close_all(log)


def _shards_block_fails(opener: Callable[..., Any], root: Path) -> None:
    cases: list[tuple[str, BaseException, str]] = [
        ("when the work inside the block raised an exception", _BlockFailed("query failed"), ""),
        (
            "when the block was interrupted (KeyboardInterrupt)",
            KeyboardInterrupt(),
            " KeyboardInterrupt derives from BaseException, not Exception: cleanup in an "
            "`except Exception:` block never sees it.",
        ),
    ]
    for index, (what, error, why_not) in enumerate(cases):
        paths = [root / f"block{index}-{i}.db" for i in range(5)]
        log = _ShardLog()
        try:
            raised: BaseException | None = None
            try:
                with _enter(opener, paths, log):
                    raise error
            except BaseException as e:
                raised = e
            expect(
                raised is error,
                f"{what}, `with open_shards(...)` "
                f"{'raised ' + type(raised).__name__ if raised else 'swallowed it'} instead of "
                "letting it through: the caller must learn that the work failed.",
            )
            if fail := _shard_leak(log, what):
                raise Fail(str(fail) + why_not)
        finally:
            _close_all(log)


def _shards_open_fails(opener: Callable[..., Any], root: Path) -> None:
    for bad, n in ((3, 6), (0, 4), (24, 25)):
        paths = [root / f"open{bad}-{i}.db" for i in range(n)]
        paths[bad] = root / "no-such-folder" / f"shard-{bad}.db"
        log = _ShardLog()
        what = f"when shard {bad + 1} of {n} could not be opened (sqlite3.OperationalError)"
        try:
            raised: BaseException | None = None
            try:
                with _enter(opener, paths, log):
                    pass
            except BaseException as e:
                raised = e
            expect(
                isinstance(raised, sqlite3.OperationalError),
                f"{what}, `with open_shards(...)` "
                f"{'raised ' + type(raised).__name__ if raised else 'went ahead without it'}: "
                "the caller must get the database's own error.",
            )
            if fail := _shard_leak(log, what):
                raise fail
        finally:
            _close_all(log)


# ==== resources.lifespan ===============================================================
PRICES_URL = "http://prices.check"
LIFESPAN_LIMIT = 10.0  # seconds for the whole scenario; a correct app needs well under one
_CENTS = {"KB-1": 4999, "MS-2": 1999, "HD-3": 8999}


class _CountingTransport(httpx.ASGITransport):
    """The prices service, in process. Counts requests and how often a client closed it."""

    def __init__(self, app: Any) -> None:
        super().__init__(app=app)
        self.requests = 0
        self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await super().handle_async_request(request)

    async def aclose(self) -> None:
        self.closed += 1


def _prices_service(markup: int) -> FastAPI:
    prices = FastAPI()

    @prices.get("/prices/{sku}")
    async def price(sku: str) -> dict[str, object]:
        if sku not in _CENTS:
            raise HTTPException(status_code=404)
        return {"sku": sku, "cents": _CENTS[sku] + markup}

    return prices


def _stock_db(path: Path, stock: dict[str, int]) -> str:
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def no_fsync(dbapi_connection: Any, _: object) -> None:  # a scratch file: speed over safety
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        conn.execute(insert(Stock), [{"sku": k, "qty": q} for k, q in stock.items()])
    engine.dispose()
    return f"sqlite+aiosqlite:///{path}"


@dataclass
class _Shop:
    settings: Settings
    transport: _CountingTransport
    stock: dict[str, int]
    markup: int

    def expected(self, sku: str, qty: int) -> dict[str, object]:
        return {
            "sku": sku,
            "qty": qty,
            "available": self.stock.get(sku, 0) >= qty,
            "total_cents": (_CENTS[sku] + self.markup) * qty,
        }


def _shop(root: Path, name: str, stock: dict[str, int], markup: int) -> _Shop:
    transport = _CountingTransport(_prices_service(markup))
    url = _stock_db(root / f"{name}.db", stock)
    return _Shop(Settings(url, PRICES_URL, transport), transport, stock, markup)


async def _quote(client: httpx.AsyncClient, shop: _Shop, sku: str, qty: int, who: str) -> None:
    response = await client.get(f"/quote/{sku}", params={"qty": qty})
    expect(
        response.status_code == 200,
        f"GET /quote/{sku}?qty={qty} ({who}) answered {response.status_code}: "
        f"{response.text[:200]}",
    )
    body, expected = response.json(), shop.expected(sku, qty)
    expect(
        body == expected,
        f"GET /quote/{sku}?qty={qty} ({who}) answered {body!r:.200}; expected {expected!r}"
        + (
            ": this app answered with another app's stock or prices, so the two apps share "
            "their engine or client (a module global?). Each app must own its own."
            if body != expected and isinstance(body, dict) and body.get("sku") == sku
            else ""
        ),
    )


@contextlib.asynccontextmanager
async def _app_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The shared in-process client, which also hands the lifespan's state to requests."""
    expect(
        hasattr(getattr(app, "router", None), "lifespan_context"),
        "create_app must return a FastAPI app",
    )
    async with asgi_client(app) as client:
        yield client


@checker("resources.lifespan")
async def lifespan(create_app: object) -> str:
    make_app = _callable(create_app, "create_app")
    root = scratch_dir("prodready-lifespan-")
    network = _NetworkLog(active=True)
    passed = False
    try:
        with _no_network(network):
            try:
                await within(LIFESPAN_LIMIT, _lifespan_checks(make_app, root))
            except Overran as e:
                raise Fail(
                    f"the app was {e} while the check sent a handful of requests: does the "
                    "lifespan (or a request) wait for something that never comes?"
                ) from None
            except Exception:
                if not network.attempts:
                    raise
        if network.attempts:
            raise Fail(
                f"the app tried to open a network connection to {network.attempts[0]}. In the "
                "check, as in a test, the prices service runs in-process: its transport is in "
                "settings.prices_transport, and its base URL in settings.prices_url."
            )
        passed = True
    finally:
        if not passed:
            _collect_quietly()  # what the app leaked goes now, not in a later cell's output
        shutil.rmtree(root, ignore_errors=True)
    return (
        "one engine and one client per app, opened at startup, closed at shutdown; "
        "two apps side by side each use their own."
    )


async def _lifespan_checks(make_app: Callable[..., Any], root: Path) -> None:
    shop = _shop(root, "shop", {"KB-1": 5, "MS-2": 0}, markup=0)
    with _counting_pools() as pools:
        app = make_app(shop.settings)
        expect(isinstance(app, FastAPI), f"create_app must return a FastAPI app; got {app!r:.80}")
        async with _app_client(app) as client:
            started_engines = pools.engines
            for i in range(8):
                sku, qty = [("KB-1", 2), ("MS-2", 1), ("KB-1", 9), ("HD-3", 1)][i % 4]
                await _quote(client, shop, sku, qty, "one request after another")
            engines = pools.engines - started_engines + min(started_engines, 1)
            if engines > 1:
                raise Fail(
                    f"8 requests, one after another, used {engines} different database engines "
                    "(each with its own connection pool and, with aiosqlite, a thread per "
                    "connection). An engine per request pays the setup for every request, "
                    "and a pool that lives for one request pools nothing (the lesson measured "
                    "the cost). Create the engine once, when the app starts."
                )
            if shop.transport.closed:
                raise Fail(
                    f"during 8 requests an HTTP client was closed {shop.transport.closed} "
                    "time(s): a new client per request, which pays for a new connection pool "
                    "(and TLS setup) every time. Create the client once, when the app starts."
                )
            expect(
                shop.transport.requests >= 8,
                "the app answered without asking the prices service (through "
                "settings.prices_transport) for the prices",
            )
            if pools.in_use:
                raise Fail(
                    f"after 8 requests, {pools.in_use} database connection(s) were still "
                    "checked out: each request must give its connection back."
                )
        _expect_shut_down(pools, shop, "after the app shut down")
        await _two_apps_at_once(make_app, root)


def _expect_shut_down(pools: _PoolEvents, shop: _Shop, when: str) -> None:
    if pools.open_now:
        raise Fail(
            f"{when}, {pools.open_now} database connection(s) were still open: the engine "
            "was never disposed. Whatever the app opens when it starts, it must close when "
            "it stops: a test suite that starts 500 apps otherwise ends with 500 open pools "
            "(and aiosqlite threads)."
        )
    if not shop.transport.closed:
        raise Fail(
            f"{when}, the HTTP client had not been closed. An unclosed client keeps its "
            "connections (and sockets) open after the app is gone; close it on the way out."
        )


async def _two_apps_at_once(make_app: Callable[..., Any], root: Path) -> None:
    first = _shop(root, "first", {"KB-1": 1, "HD-3": 4}, markup=100)
    second = _shop(root, "second", {"KB-1": 7}, markup=0)
    with _counting_pools() as pools:
        app_one, app_two = make_app(first.settings), make_app(second.settings)
        async with _app_client(app_one) as one, _app_client(app_two) as two:
            await _quote(one, first, "KB-1", 3, "the first of two apps")
            await _quote(two, second, "KB-1", 3, "the second of two apps")
            await _quote(one, first, "HD-3", 2, "the first of two apps, again")
    _expect_shut_down(pools, first, "after two apps shut down")
    expect(second.transport.closed > 0, "after two apps shut down, one client was not closed")


# ==== resources.inject =================================================================
PROD_DB = "/nonexistent/shop/subscriptions.db"


class _FakeClock:
    def __init__(self, day: date) -> None:
        self.day = day

    def today(self) -> date:
        return self.day


class _FakeRepo:
    def __init__(self, subscriptions: Iterable[Subscription]) -> None:
        self.rows = {s.id: s for s in subscriptions}

    def active(self) -> list[Subscription]:
        return [self.rows[k] for k in sorted(self.rows)]

    def save(self, subscription: Subscription) -> None:
        expect(
            isinstance(subscription, Subscription),
            f"repo.save() got {type(subscription).__name__}, not a Subscription",
        )
        self.rows[subscription.id] = subscription


class _FakeBilling:
    def __init__(self, declines: set[str]) -> None:
        self.declines = declines
        self.charges: list[tuple[str, int, str]] = []

    def charge(self, customer: str, cents: int, key: str) -> None:
        if customer in self.declines:
            raise BillingDeclined(customer)
        self.charges.append((customer, cents, key))


_SUBSCRIPTIONS = [
    Subscription("s1", "ada", 1200, date(2031, 1, 31)),  # due today
    Subscription("s2", "bob", 900, date(2031, 1, 15)),  # overdue
    Subscription("s3", "cyd", 1500, date(2031, 2, 1)),  # due tomorrow
    Subscription("s4", "dee", 700, date(2031, 1, 20)),  # her card is declined
    Subscription("s5", "eve", 1100, date(2031, 1, 30)),  # after the declined one
]


def _injection_failure(error: BaseException | None, network: _NetworkLog) -> Fail:
    if network.attempts:
        return Fail(
            f"the service tried to reach the network ({network.attempts[0]}): it still calls "
            "the payment provider itself, not the billing client it was given. Its unit "
            "tests would charge real cards, or hang on a machine without a network."
        )
    if isinstance(error, sqlite3.OperationalError):
        return Fail(
            f"the service still opened its own database ({PROD_DB}) and got "
            f"sqlite3.OperationalError: {error}. A service that builds its own connection "
            "runs nowhere but in production; use the repository it is given."
        )
    if isinstance(error, BillingDeclined):
        return Fail(
            "one declined card (BillingDeclined for dee) stopped the whole run: every "
            "customer after her went unrenewed. A decline is an expected answer from "
            "billing: skip that subscription and carry on with the others."
        )
    assert error is not None
    detail = f": {error}" if str(error) else ""
    return Fail(f"your code raised {type(error).__name__}{detail}")


@checker("resources.inject")
def inject(RenewalService: object) -> str:
    make = _callable(RenewalService, "RenewalService")
    repo, clock = _FakeRepo(_SUBSCRIPTIONS), _FakeClock(date(2031, 1, 31))
    billing = _FakeBilling({"dee"})
    network = _NetworkLog(active=True)
    with _no_network(network):
        try:
            service = make(repo=repo, clock=clock, billing=billing)
        except TypeError as e:
            raise Fail(
                f"RenewalService(repo=..., clock=..., billing=...) raised TypeError: {e}. "
                "The service must take its repository, clock and billing client as "
                "parameters, so that a test (or the check) can hand it fakes."
            ) from None
        except Exception as e:
            raise _injection_failure(e, network) from None
        try:
            first = service.renew_due()
            day_one = dict(repo.rows)
            charged_first = list(billing.charges)
            clock.day = date(2031, 3, 1)
            billing.declines.clear()  # dee updated her card
            second = service.renew_due()
        except Fail:
            raise
        except Exception as e:
            raise _injection_failure(e, network) from None
    if network.attempts:
        raise _injection_failure(None, network)
    expected_first = ["s1", "s2", "s5"]
    first = list(first) if isinstance(first, (list, tuple)) else first
    second = list(second) if isinstance(second, (list, tuple)) else second
    if first != expected_first:
        hint = (
            " Nothing was due by the system clock: is the service still asking the system "
            "for today's date instead of the clock it was given?"
            if first == []
            else ""
        )
        raise Fail(
            f"with the injected clock at 2031-01-31, renew_due() returned {first!r:.120}; "
            f"expected {expected_first} (s1 is due that day, s2 overdue, s3 due the next day, "
            f"s4's card is declined).{hint}"
        )
    expect(
        charged_first
        == [("ada", 1200, "s1:2031-01-31"), ("bob", 900, "s2:2031-01-15"),
            ("eve", 1100, "s5:2031-01-30")],
        f"the first run charged {charged_first!r:.200}; expected ada 1200, "
        "bob 900 and eve 1100, each with its key '<id>:<renews_on>'",
    )  # fmt: skip
    renewed = {k: v.renews_on.isoformat() for k, v in day_one.items()}
    expect(
        renewed == {"s1": "2031-02-28", "s2": "2031-02-15", "s3": "2031-02-01",
                    "s4": "2031-01-20", "s5": "2031-02-28"},
        f"after the first run, the repository holds renewal dates {renewed}; the renewed "
        "subscriptions must be saved with next_renewal(), the others left alone",
    )  # fmt: skip
    if second != ["s1", "s2", "s3", "s4", "s5"]:
        raise Fail(
            f"the same service, asked again after its clock moved on to 2031-03-01, renewed "
            f"{second!r:.120} instead of all five subscriptions: it still lives on the day it "
            "was created. A worker runs for weeks; read the date from the clock each time."
        )
    return "clock, repository and billing come from the caller: no real database, clock or network."


# ==== running the learner's tests (exercises 5 and 6) ==================================
TEST_LIMIT = 5.0  # seconds per test, the check's own watchdog
SUITE_LIMIT = 10.0  # seconds for the whole suite against the correct code
_OUR_PACKAGE = str(Path(__file__).resolve().parents[1])


@dataclass
class _TestRun:
    name: str
    error: BaseException | None = None
    overran: bool = False
    network: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    connections_left: int = 0

    @property
    def failed(self) -> bool:
        return self.overran or self.error is not None


@dataclass(frozen=True)
class _Mutant:
    name: str
    fixture: Any
    slipped: str  # what the message says when no test catches it
    leaks: bool = False  # pause the garbage collector, so the leak stays visible
    cleanup: Callable[[], None] = lambda: None  # after its run: undo what the bug leaked


def _test_names(tests: object, class_name: str) -> list[str]:
    expect(
        inspect.isclass(tests),
        f"pass your test class to the check (`class {class_name}:` with methods named "
        f"test_...); got {type(tests).__name__}",
    )
    assert isinstance(tests, type)
    names: list[str] = []
    for klass in reversed(tests.__mro__):
        for name, value in vars(klass).items():
            if name.startswith("test") and callable(value) and name not in names:
                names.append(name)
    expect(
        bool(names),
        f"{tests.__name__} has no tests: the check runs the methods whose names start with "
        "`test` (for example `def test_a_due_subscription_is_renewed(self, ...)`).",
    )
    return names


def _invoke(method: Callable[..., Any], fixture: Any) -> object:
    params = list(inspect.signature(method).parameters.values())
    if not params:
        return method()
    if len(params) == 1 or all(p.default is not p.empty for p in params[1:]):
        if params[0].kind is inspect.Parameter.KEYWORD_ONLY:
            return method(**{params[0].name: fixture})
        return method(fixture)
    raise TypeError(
        f"{method.__name__} takes {len(params)} parameters; a test takes one, the fixture"
    )


def _hook(hook: Callable[..., Any], method: Callable[..., Any]) -> object:
    """pytest's ``setup_method(self, method)`` or unittest's ``setUp(self)``."""
    return hook(method) if inspect.signature(hook).parameters else hook()


def _call_test(tests: type, name: str, fixture: Any) -> object:
    """One test on a fresh instance, with its class's setup and teardown (pytest's
    ``setup_method``/``teardown_method`` or unittest's ``setUp``/``tearDown``), if any."""
    instance = tests()
    method = getattr(instance, name)
    setups = [
        h for h in (getattr(instance, n, None) for n in ("setup_method", "setUp")) if callable(h)
    ]
    teardowns = [
        h
        for h in (getattr(instance, n, None) for n in ("teardown_method", "tearDown"))
        if callable(h)
    ]
    if not any(inspect.iscoroutinefunction(f) for f in (method, *setups, *teardowns)):
        for hook in setups:
            _hook(hook, method)
        try:
            return _invoke(method, fixture)
        finally:
            for hook in teardowns:
                _hook(hook, method)

    async def in_order() -> None:
        for hook in setups:
            if inspect.isawaitable(outcome := _hook(hook, method)):
                await outcome
        try:
            if inspect.isawaitable(outcome := _invoke(method, fixture)):
                await outcome
        finally:
            for hook in teardowns:
                if inspect.isawaitable(outcome := _hook(hook, method)):
                    await outcome

    return in_order()


def _run_in_thread(call: Callable[[], object], limit: float) -> tuple[BaseException | None, bool]:
    """Run one test in a thread of its own (a fresh event loop for an async one), under a
    watchdog. A test that never ends is abandoned (its thread is a daemon) and reported."""
    box: dict[str, BaseException | None] = {}

    def target() -> None:
        try:
            result = call()
            if inspect.isawaitable(result):
                asyncio.run(within(limit, result))
            box["error"] = None
        except Overran:
            box["overran"] = None
        except BaseException as e:  # an assert, a crash, sys.exit: all are a failed test
            box["error"] = e

    thread = threading.Thread(target=target, name="prodready-learner-test", daemon=True)
    thread.start()
    thread.join(limit + 1.0)
    if thread.is_alive() or "overran" in box:
        return None, True
    return box.get("error"), False


def _run_suite(tests: type, names: Sequence[str], fixture: Any, *, correct: bool) -> list[_TestRun]:
    """Run the tests in order; against a planted bug, stop at the first one that fails."""
    runs: list[_TestRun] = []
    world = scratch_dir("prodready-tests-")
    tmp, here = world / "tmp", world / "cwd"
    tmp.mkdir()
    here.mkdir()
    network = _NetworkLog()
    cwd = Path.cwd()
    try:
        with _no_network(network), _temp_dir_of_our_own(tmp):
            for name in names:
                run = _TestRun(name)
                network.attempts = run.network
                with _counting_pools() as pools:
                    os.chdir(here)
                    network.active = True
                    try:
                        run.error, run.overran = _run_in_thread(
                            lambda name=name: _call_test(tests, name, fixture),  # type: ignore[misc]
                            TEST_LIMIT,
                        )
                    finally:
                        network.active = False
                        os.chdir(cwd)
                    run.connections_left = pools.open_now
                run.leftovers = [f"{n} (in the temp folder)" for n in _names(tmp)]
                run.leftovers += [f"{n} (in the working directory)" for n in _names(here)]
                for folder in (tmp, here):
                    for entry in folder.iterdir():
                        _remove(entry)
                runs.append(run)
                if run.failed and not correct:
                    break
    finally:
        os.chdir(cwd)
        shutil.rmtree(world, ignore_errors=True)
    return runs


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            entry.unlink()


def _where(error: BaseException) -> str:
    """The line of the learner's cell where a test failed: `line 12, assert ...`."""
    frames = traceback.extract_tb(error.__traceback__)
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, _OUR_PACKAGE})
    ours = [f for f in frames if not f.filename.startswith(prefixes)]
    if not ours:
        return ""
    frame = ours[-1]
    code = f": `{frame.line.strip()}`" if frame.line else ""
    return f" (in {frame.name}, line {frame.lineno} of its cell{code})"


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    detail = f": {text[:300]}" if text else ""
    return f"{type(error).__name__}{detail}{_where(error)}"


def _judge_on_correct(runs: list[_TestRun], subject: str) -> None:
    for run in runs:
        if run.network:
            raise Fail(
                f"your test `{run.name}` tried to reach the network ({run.network[0]}), and "
                "the check refused. A test that needs the network is slow, flaky, and fails "
                "on a laptop in a train: keep it in-process (fakes for collaborators, "
                "ASGITransport for an app)."
            )
        if run.overran:
            raise Fail(
                f"your test `{run.name}` was still running after {TEST_LIMIT:g} s against "
                f"{subject}, so the check stopped waiting for it: an await that never ends, "
                "a loop, or a wait without a timeout? (If its thread is still busy, restart "
                "the kernel.)"
            )
        if run.error is not None:
            raise Fail(
                f"your test `{run.name}` failed against {subject}, so it would fail on good "
                f"code too: {_describe(run.error)}"
            )
        if run.leftovers:
            raise Fail(
                f"your test `{run.name}` left files behind: {', '.join(run.leftovers[:3])}. "
                "Tests that leave files pile them up on every developer's machine and in CI, "
                "and the next run may read them. Create what a test needs in a temporary "
                "folder that is removed when the test ends, or in memory."
            )
        if run.connections_left:
            raise Fail(
                f"your test `{run.name}` left {run.connections_left} database connection(s) "
                "open when it ended (with aiosqlite, a thread each). Over a suite of hundreds "
                "of tests that exhausts the machine. Whatever a test creates, it also tears "
                "down, on its failing path too."
            )


def _judge_suite(
    tests: object,
    class_name: str,
    correct: Any,
    mutants: Sequence[_Mutant],
    subject: str,
) -> int:
    names = _test_names(tests, class_name)
    assert isinstance(tests, type)
    try:
        return _judge_suite_runs(tests, names, correct, mutants, subject)
    except Fail:
        _collect_quietly()  # what a failing suite leaked goes now, not in a later cell
        raise


def _killer(tests: type, names: list[str], mutant: _Mutant) -> str | None:
    """The first test that fails against ``mutant``, or None when every test passes."""
    paused = gc_paused() if mutant.leaks else contextlib.nullcontext()
    try:
        with paused:  # a leaked session keeps its connection until a test looks
            runs = _run_suite(tests, names, mutant.fixture, correct=False)
    finally:
        mutant.cleanup()
    return next((run.name for run in runs if run.failed), None)


def _judge_suite_runs(
    tests: type, names: list[str], correct: Any, mutants: Sequence[_Mutant], subject: str
) -> int:
    started = time.perf_counter()
    runs = _run_suite(tests, names, correct, correct=True)
    took = time.perf_counter() - started
    _judge_on_correct(runs, subject)
    if took > SUITE_LIMIT:
        raise Fail(
            f"your suite took {took:.1f} s against {subject}; keep it under "
            f"{SUITE_LIMIT:g} s, or nobody runs it before pushing"
        )
    survivors, killers = [], []
    for mutant in mutants:
        # different bugs are usually caught by different tests: try the others first
        order = [n for n in names if n not in killers] + [n for n in names if n in killers]
        killer = _killer(tests, order, mutant)
        if killer is None:
            survivors.append(mutant)
        else:
            killers.append(killer)
    if survivors:
        slipped = "\n".join(f"  - {m.slipped}" for m in survivors)
        raise Fail(
            f"your {len(names)} test(s) pass against {subject}, but "
            f"{len(survivors)} of the {len(mutants)} planted bugs slipped through (every "
            f"test passed on them too):\n{slipped}"
        )
    return len(names)


# ==== resources.fake_tests =============================================================
_RENEWAL_MUTANTS = [
    _Mutant(
        "skips_due_today",
        _renewals_with(_RenewalBugs(skips_due_today=True)),
        "a subscription due today is skipped until tomorrow (`<` instead of `<=`): no test "
        "has a subscription that falls due on the clock's very day",
    ),
    _Mutant(
        "reads_system_clock",
        _renewals_with(_RenewalBugs(reads_system_clock=True)),
        "the service asks the system for today's date and ignores the clock it was given: "
        "your tests' results do not depend on the day your fake clock says (pin it to a "
        "fixed date, far from today, and check what is and is not due)",
    ),
    _Mutant(
        "extends_declined",
        _renewals_with(_RenewalBugs(extends_declined=True)),
        "a declined card still gets a month for free (the renewal date moves on): no test "
        "declines a charge and then checks what the repository holds",
    ),
    _Mutant(
        "stops_at_decline",
        _renewals_with(_RenewalBugs(stops_at_decline=True)),
        "one declined card stops the run, and every subscription after it goes unrenewed: "
        "no test has a due subscription after a declined one",
    ),
    _Mutant(
        "forgets_to_save",
        _renewals_with(_RenewalBugs(forgets_to_save=True)),
        "the customer is charged but the new renewal date is never saved, so tomorrow's run "
        "charges them again: no test reads the repository back after a renewal",
    ),
]


def _make_service(service: type[_Renewals]) -> Callable[..., _Renewals]:
    def make_service(repo: Any, clock: Any, billing: Any) -> _Renewals:
        return service(repo=repo, clock=clock, billing=billing)

    return make_service


@checker("resources.fake_tests")
def fake_tests(RenewalTests: object) -> str:
    _judge_suite(
        RenewalTests,
        "RenewalTests",
        _make_service(_Renewals),
        [replace(m, fixture=_make_service(m.fixture)) for m in _RENEWAL_MUTANTS],
        "the correct RenewalService",
    )
    return "your tests pass on the correct service and catch all 5 planted bugs."


# ==== resources.order_api_tests ========================================================
def _order_app_with(bugs: _OrderAppBugs) -> Callable[[AsyncEngine], FastAPI]:
    def create_app(engine: AsyncEngine) -> FastAPI:
        return _order_app(engine, bugs)

    return create_app


class _LeakyOrderApp:
    """The app whose session dependency leaks; remembers the sessions, so that the check
    can invalidate them once the learner's tests have seen (or missed) the leak."""

    def __init__(self) -> None:
        self.sessions: list[AsyncSession] = []

    def __call__(self, engine: AsyncEngine) -> FastAPI:
        return _order_app(engine, _OrderAppBugs(close_on_happy_path_only=True), self.sessions)

    def cleanup(self) -> None:
        sessions, self.sessions = self.sessions, []

        async def invalidate() -> None:
            for session in sessions:
                with contextlib.suppress(Exception):
                    await session.invalidate()  # closes the connection; the loop it knew is gone

        if sessions:
            thread = threading.Thread(target=asyncio.run, args=(invalidate(),), daemon=True)
            thread.start()
            thread.join(5)


_LEAKY_ORDER_APP = _LeakyOrderApp()
_ORDER_MUTANTS = [
    _Mutant(
        "missing_commit",
        _order_app_with(_OrderAppBugs(missing_commit=True)),
        "a missing `commit()`: POST /orders answers 201 with an id, and the order (with its "
        "stock change) vanishes when the request's session closes. No test reads the order "
        "back through a new request.",
    ),
    _Mutant(
        "stub_inventory",
        _order_app_with(_OrderAppBugs(stub_inventory=True)),
        "a wiring bug: the order route's stock check is wired to the stub inventory that "
        "always says yes and never takes stock. Each function is right on its own; no test "
        "orders more than the stock through the API (expecting 409), or reads the stock back "
        "after an order.",
    ),
    _Mutant(
        "close_on_happy_path_only",
        _LEAKY_ORDER_APP,
        "a leaked connection: the session dependency closes its session only on the happy "
        "path, so every 404 and 409 keeps a connection checked out until the pool runs dry. "
        "No test looks at the pool (`engine.pool.checkedout()`, or checkouts minus checkins) "
        "after an error response.",
        leaks=True,
        cleanup=_LEAKY_ORDER_APP.cleanup,
    ),
]


@checker("resources.order_api_tests")
def order_api_tests(OrderApiTests: object) -> str:
    _judge_suite(
        OrderApiTests,
        "OrderApiTests",
        create_order_app,
        _ORDER_MUTANTS,
        "the correct order API",
    )
    return (
        "your suite passes on the correct API, cleans up after itself, and catches the "
        "missing commit, the wiring bug and the leaked connection."
    )
