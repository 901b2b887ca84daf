"""Checks for module 02: database sessions, transactions and connection pools.

The workbook's models live here too, so the notebook and its checks share one schema:
the notebook imports them (``from prodready._checks.sessions import Author, ...``).

Every check runs the learner's code against its own SQLite file with a deliberately tiny
pool. Leaked sessions sit in reference cycles until the garbage collector happens to run,
so checks switch the collector off while they count checked-out connections: a leak is
then seen every time, not only when the collector is slow.

The checks also cause the trouble production causes, in their own database only
(``_Faults``): a write or a commit that fails halfway through the learner's work, and two
transactions forced to interleave so that both have read before either writes. That is
how a lost update, or a transfer that commits its first leg alone, shows up every time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    contextmanager,
    suppress,
)
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import (
    CheckConstraint,
    Connection,
    Engine,
    ForeignKey,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import MissingGreenlet, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncAttrs,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.orm import sessionmaker as SessionMaker

from .._check import Fail, checker, expect
from .._course import scratch_dir
from ._support import Overran, asgi_client, gc_paused, within

__all__ = ["Account", "Author", "Base", "Book", "Publisher", "Reading", "VersionedAccount"]


# ---- the workbook's schema ------------------------------------------------------------
class Base(AsyncAttrs, DeclarativeBase):
    pass


class Publisher(Base):
    __tablename__ = "publishers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")

    def __repr__(self) -> str:
        return f"Author(id={self.id}, name={self.name!r})"


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    publisher_id: Mapped[int | None] = mapped_column(ForeignKey("publishers.id"))
    author: Mapped[Author] = relationship(back_populates="books")
    publisher: Mapped[Publisher | None] = relationship()

    def __repr__(self) -> str:
        return f"Book(id={self.id}, title={self.title!r})"


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="no_overdraft"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str]
    balance: Mapped[int]
    # A counter for optimistic locking. `Account` leaves it alone; `VersionedAccount`
    # (the same table) lets the ORM check and bump it on every UPDATE.
    version: Mapped[int] = mapped_column(default=0, server_default="0")

    def __repr__(self) -> str:
        return f"Account(id={self.id}, owner={self.owner!r}, balance={self.balance})"


class VersionedAccount(Base):
    """The accounts table again, with the ORM's version counter: every UPDATE it flushes
    says ``WHERE version = <the version it read>`` and raises ``StaleDataError`` when
    another transaction changed the row in between."""

    __table__ = Account.__table__
    __mapper_args__ = {"version_id_col": Account.__table__.c.version}  # noqa: RUF012

    id: Mapped[int]
    owner: Mapped[str]
    balance: Mapped[int]
    version: Mapped[int]

    def __repr__(self) -> str:
        return f"VersionedAccount(id={self.id}, balance={self.balance}, version={self.version})"


class Reading(Base):
    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(primary_key=True)
    sensor: Mapped[str]
    value: Mapped[float]  # NOT NULL: a reading without a value is refused


# ---- trouble on demand ----------------------------------------------------------------
INJECTED = "disk I/O error"  # what the injected failures say, as SQLite itself would
RENDEZVOUS_TIMEOUT = 5.0  # seconds one transaction waits for the other to reach its write
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_ABSOLUTE_BALANCE = re.compile(r"\bbalance\s*=\s*\?")


class _TooManyCommits(Exception):
    """Raised from a commit, to stop an import that commits row by row."""


class _Faults:
    """Failures the check causes in its own database, the way a full disk, a dropped
    connection or a busy neighbour would, and what it saw the learner's code send.

    - ``fail_write(n)``: the n-th row written from now fails (``OperationalError``);
    - ``fail_commit(n)``: the n-th commit of a write transaction from now fails;
    - ``interleave(k)``: k threads each wait, at their first write, until all k have
      read: the interleaving that loses updates, made certain instead of lucky.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.commits = 0  # commits that ended a transaction with writes in it
        self.rows_written = 0
        self.commit_limit: int | None = None  # more commits than this stop the import
        self._fail_commit_at: int | None = None
        self._fail_row_at: int | None = None
        self.fired = False
        self._barrier: threading.Barrier | None = None
        self._waited: set[int] = set()
        self.rendezvous_failed = False  # a racer never reached its first write in time
        self.saw_for_update = False
        self.saw_absolute_balance = False

    def disarm(self) -> None:
        with self._lock:
            self._fail_commit_at = self._fail_row_at = None
            self.commit_limit = None
            self._barrier = None

    def fail_write(self, row: int) -> None:
        with self._lock:
            self.fired = False
            self._fail_row_at = self.rows_written + row

    def fail_commit(self, number: int) -> None:
        with self._lock:
            self.fired = False
            self._fail_commit_at = self.commits + number

    def interleave(self, parties: int) -> None:
        with self._lock:
            self._barrier = threading.Barrier(parties, timeout=RENDEZVOUS_TIMEOUT)
            self._waited = set()
            self.rendezvous_failed = False

    def connection_class(self) -> type[sqlite3.Connection]:
        faults = self

        class CheckedConnection(sqlite3.Connection):
            def commit(self) -> None:
                try:
                    faults.before_commit(self.in_transaction)
                except sqlite3.OperationalError:
                    super().rollback()  # SQLite rolls back by itself after an I/O error
                    raise
                super().commit()

        return CheckedConnection

    def before_commit(self, in_transaction: bool) -> None:
        if not in_transaction:
            return  # nothing was written: no disk to wait for, nothing to lose
        with self._lock:
            self.commits += 1
            over_limit = self.commit_limit is not None and self.commits > self.commit_limit
            fail = self._fail_commit_at is not None and self.commits >= self._fail_commit_at
            if fail:
                self._fail_commit_at, self.fired = None, True
        if over_limit:
            raise _TooManyCommits
        if fail:
            raise sqlite3.OperationalError(INJECTED)

    def before_statement(
        self,
        conn: Connection,
        cursor: object,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if not _WRITE.match(statement):
            compiled = getattr(context, "compiled", None)
            locking = getattr(getattr(compiled, "statement", None), "_for_update_arg", None)
            if locking is not None:
                self.saw_for_update = True  # with_for_update(), which SQLite leaves out
            return
        if "accounts" in statement and _ABSOLUTE_BALANCE.search(statement):
            self.saw_absolute_balance = True
        dbapi = conn.connection.dbapi_connection
        barrier, me = self._barrier, threading.get_ident()
        if barrier is not None and not getattr(dbapi, "in_transaction", True):
            with self._lock:
                first = me not in self._waited
                self._waited.add(me)
            if first:  # this thread's first write: wait until every racer has read
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    self.rendezvous_failed = True
        with self._lock:
            self.rows_written += len(parameters) if executemany else 1
            fail = self._fail_row_at is not None and self.rows_written >= self._fail_row_at
            if fail:
                self._fail_row_at, self.fired = None, True
        if fail:
            raise sqlite3.OperationalError(INJECTED)


# ---- a small database per check -------------------------------------------------------
POOL_SIZE = 2
POOL_TIMEOUT = 0.5  # seconds: a leak shows up as a timeout quickly


def _db_file(name: str) -> Path:
    return scratch_dir("prodready-sessions-") / f"{name}.db"


def _engine(
    path: Path,
    pool_size: int = POOL_SIZE,
    pool_timeout: float = POOL_TIMEOUT,
    faults: _Faults | None = None,
    begin_explicitly: bool = False,
) -> Engine:
    connect_args: dict[str, Any] = {}
    if faults is not None:
        connect_args["factory"] = faults.connection_class()
    engine = create_engine(
        f"sqlite:///{path}",
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        connect_args=connect_args,
    )
    event.listen(engine, "connect", _no_fsync)
    if faults is not None:
        event.listen(engine, "before_cursor_execute", faults.before_statement)
    if begin_explicitly:
        _begin_explicitly(engine)
    Base.metadata.create_all(engine)
    return engine


def _no_fsync(dbapi_connection: Any, _: object) -> None:
    """The checks count commits instead of timing them, so they need not wait for the disk
    (the lesson measures what that wait costs)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous = OFF")
    cursor.close()


def _begin_explicitly(engine: Engine) -> None:
    """SQLAlchemy's documented fix for Python's sqlite3 driver, which otherwise starts a
    transaction only before a write: a SAVEPOINT outside one then commits on RELEASE, so a
    savepoint per row would be a commit (and a wait for the disk) per row, unseen."""

    @event.listens_for(engine, "connect")
    def driver_stays_out(dbapi_connection: Any, _: object) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def _async_engine(
    path: Path, pool_size: int = POOL_SIZE, pool_timeout: float = POOL_TIMEOUT
) -> AsyncEngine:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}",
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
    )
    event.listen(engine.sync_engine, "connect", _no_fsync)
    return engine


@contextmanager
def _leaks_stay_visible() -> Iterator[None]:
    """Switch the cyclic garbage collector off, so a leaked session keeps its connection
    until we have counted it; afterwards collect, which hands leaked connections back."""
    try:
        with gc_paused():
            yield
    finally:
        _collect_quietly()


def _collect_quietly(full: bool = False) -> None:
    """Collect garbage without the pool's log line for each leak it reclaims: we report it.

    By default only the youngest generation: with the collector off, everything the check
    made is still there, and a full collection of a kernel's heap costs a few hundred ms."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        gc.collect() if full else gc.collect(0)
    finally:
        logging.disable(previous)


def _tracked_factory(engine: Engine) -> tuple[SessionMaker[Session], list[Session]]:
    """A session factory for the learner's code that remembers every session it makes,
    so the check can close the leaked ones itself (cleanly, not at some later GC)."""
    opened: list[Session] = []

    class CheckedSession(Session):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    return SessionMaker(engine, class_=CheckedSession), opened


def _tracked_async_factory(
    engine: AsyncEngine,
) -> tuple[async_sessionmaker[AsyncSession], list[AsyncSession]]:
    opened: list[AsyncSession] = []

    class CheckedAsyncSession(AsyncSession):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    return async_sessionmaker(engine, class_=CheckedAsyncSession), opened


def _close_all(sessions: list[Session]) -> None:
    for session in sessions:
        with suppress(Exception):
            session.close()


async def _close_all_async(sessions: list[AsyncSession]) -> None:
    for session in sessions:
        with suppress(Exception):
            await session.close()


def _count(engine: Engine, model: type[Base]) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model)) or 0)


def _balances(engine: Engine) -> dict[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(Account.id, Account.balance).order_by(Account.id))
        return {row.id: row.balance for row in rows}


def _checked_out(engine: Engine | AsyncEngine) -> int:
    return int(engine.pool.checkedout())  # type: ignore[attr-defined]


def _no_leak(engine: Engine | AsyncEngine, after: str) -> None:
    leaked = _checked_out(engine)
    if leaked:
        size = engine.pool.size()  # type: ignore[attr-defined]
        raise Fail(
            f"after {after}, {leaked} of the pool's {size} connections "
            f"{'was' if leaked == 1 else 'were'} still checked out. A connection that is "
            "never given back is gone for good: a few requests later the pool is empty and "
            "every request waits, then fails with 'QueuePool limit ... reached'. Look at what "
            "happens to the session on every path out of your code, including the one where "
            "an exception flies."
        )


def _pool_ran_dry(doing: str) -> Fail:
    return Fail(
        f"while {doing}, a call waited {POOL_TIMEOUT:g} s for a free connection and gave up "
        f"(sqlalchemy TimeoutError): the pool of {POOL_SIZE} was empty because earlier calls "
        "never gave their connections back. Every session must be closed (or its "
        "transaction ended) on every path, the error paths included."
    )


class _Boom(Exception):
    """An error the check raises inside a unit of work."""


def _raises(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except PoolTimeout:
        raise
    except Exception as e:
        return e
    return None


def _callable(thing: object, name: str) -> Callable[..., Any]:
    expect(callable(thing), f"{name} must be a function; got {type(thing).__name__}")
    return thing  # type: ignore[return-value]


def _carries(error: BaseException | None, kind: type[BaseException]) -> bool:
    """``error`` is ``kind``, or was raised from one (a wrapping domain error is fine)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _named(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line:.120}" if first_line else type(error).__name__


# ---- sessions.unit_of_work ------------------------------------------------------------
UOW_WATCHDOG = 5.0  # seconds for one async block: the check's own limit


class _Interrupted(KeyboardInterrupt):
    """The check's own KeyboardInterrupt: a worker stopped mid-request (Ctrl-C, SIGINT)."""


def _sync_unit_of_work(unit_of_work: Callable[..., AbstractContextManager[Session]]) -> None:
    engine = _engine(_db_file("uow"))
    factory, opened = _tracked_factory(engine)
    try:
        with _leaks_stay_visible():
            with unit_of_work(factory) as session:
                expect(
                    isinstance(session, Session),
                    f"unit_of_work must yield a Session; it yielded {type(session).__name__}",
                )
                session.add(Author(name="kept"))
            _no_leak(engine, "a `with unit_of_work(factory)` block that succeeded")
            expect(
                _count(engine, Author) == 1,
                "a `with unit_of_work(factory)` block finished without error, but its "
                "write is not in the database: the unit of work must commit when the "
                "block succeeds.",
            )

            def failing_block() -> None:
                with unit_of_work(factory) as session:
                    session.add(Author(name="doomed"))
                    session.flush()  # the row is written inside the transaction...
                    raise _Boom("the block failed halfway")  # ...and then the work fails

            error = _raises(failing_block)
            expect(
                _carries(error, _Boom),
                "the block raised an error, but `with unit_of_work(...)` did not let it "
                f"through (got {_named(error)}). A unit of work must never swallow a "
                "failure: the caller has to know.",
            )
            _no_leak(engine, "a `with unit_of_work(factory)` block that raised")
            expect(
                _count(engine, Author) == 1,
                "a block raised after writing a row, and the row was committed anyway. "
                "On failure the unit of work must roll everything back.",
            )

            def refused_commit() -> None:
                with unit_of_work(factory) as session:
                    session.add(Account(owner="mallory", balance=-1))  # CHECK fails at commit

            error = _raises(refused_commit)
            expect(
                error is not None,
                "a block whose commit the database refused (a negative balance breaks the "
                "CHECK constraint) ended without an error: the caller believes the write "
                "was saved. A failed commit must reach the caller.",
            )
            _no_leak(engine, "a `with unit_of_work(factory)` block whose commit failed")

            interrupted: BaseException | None = None
            try:
                with unit_of_work(factory) as session:
                    session.add(Author(name="interrupted"))
                    session.flush()
                    raise _Interrupted
            except _Interrupted as e:
                interrupted = e
            except PoolTimeout:
                raise
            except BaseException as e:  # whatever it is, it is reported
                interrupted = e
            expect(
                _carries(interrupted, KeyboardInterrupt),
                "a block interrupted by KeyboardInterrupt (a worker stopped mid-request) "
                f"ended with {_named(interrupted)} instead: the interruption must go on to "
                "the caller.",
            )
            _no_leak(
                engine,
                "a `with unit_of_work(factory)` block interrupted by KeyboardInterrupt "
                "(which is not an Exception: cleanup that runs only under `except "
                "Exception` never sees it)",
            )
            expect(
                _count(engine, Author) == 1,
                "a block was interrupted after writing a row, and the row was committed.",
            )
            for _ in range(4 * POOL_SIZE):  # more units of work than the pool has connections
                _raises(failing_block)
                with unit_of_work(factory) as session:
                    session.add(Author(name="again"))
            _no_leak(engine, f"{8 * POOL_SIZE} units of work, half of them failing")
    except PoolTimeout:
        raise _pool_ran_dry("running units of work one after another") from None
    finally:
        _close_all(opened)
        engine.dispose()


async def _async_block(
    async_unit_of_work: Callable[..., AbstractAsyncContextManager[AsyncSession]],
    factory: async_sessionmaker[AsyncSession],
    body: Callable[[AsyncSession], Awaitable[None]],
) -> BaseException | None:
    """Run ``async with async_unit_of_work(factory) as session: await body(session)``
    under the check's watchdog; return the exception that came out, if any."""

    async def block() -> None:
        async with async_unit_of_work(factory) as session:
            await body(session)

    try:
        await within(UOW_WATCHDOG, block())
    except (PoolTimeout, Overran):
        raise
    except Exception as e:
        return e
    return None


async def _async_unit_of_work(
    async_unit_of_work: Callable[..., AbstractAsyncContextManager[AsyncSession]],
) -> None:
    path = _db_file("uow_async")
    sync_engine = _engine(path)  # creates the tables; also reads the outcome
    engine = _async_engine(path)
    factory, opened = _tracked_async_factory(engine)
    try:
        with _leaks_stay_visible():

            async def keep(session: AsyncSession) -> None:
                expect(
                    isinstance(session, AsyncSession),
                    "async_unit_of_work must yield an AsyncSession; it yielded "
                    f"{type(session).__name__}",
                )
                session.add(Author(name="kept"))

            error = await _async_block(async_unit_of_work, factory, keep)
            if isinstance(error, Fail):
                raise error
            expect(error is None, f"a block that succeeded raised {_named(error)}")
            _no_leak(engine, "an `async with async_unit_of_work(factory)` block that succeeded")
            expect(
                _count(sync_engine, Author) == 1,
                "an `async with async_unit_of_work(factory)` block finished without error, "
                "but its write is not in the database: commit when the block succeeds.",
            )

            async def fail_halfway(session: AsyncSession) -> None:
                session.add(Author(name="doomed"))
                await session.flush()
                raise _Boom("the block failed halfway")

            error = await _async_block(async_unit_of_work, factory, fail_halfway)
            expect(
                _carries(error, _Boom),
                "the async block raised an error, but async_unit_of_work did not let it "
                f"through (got {_named(error)}). Never swallow a failure.",
            )
            _no_leak(engine, "an `async with async_unit_of_work(factory)` block that raised")
            expect(
                _count(sync_engine, Author) == 1,
                "an async block raised after writing a row, and the row was committed "
                "anyway. On failure, roll everything back.",
            )

            async def refused(session: AsyncSession) -> None:
                session.add(Account(owner="mallory", balance=-1))  # CHECK fails at commit

            error = await _async_block(async_unit_of_work, factory, refused)
            expect(
                error is not None,
                "an async block whose commit the database refused (a negative balance "
                "breaks the CHECK constraint) ended without an error: a failed commit must "
                "reach the caller.",
            )
            _no_leak(
                engine, "an `async with async_unit_of_work(factory)` block whose commit failed"
            )
            await _cancelled_mid_block(async_unit_of_work, factory, engine, sync_engine)
    except PoolTimeout:
        raise _pool_ran_dry("running async units of work") from None
    except Overran:
        raise Fail(
            f"an `async with async_unit_of_work(factory)` block was still running after "
            f"{UOW_WATCHDOG:g} s of the check's own time; it does almost nothing, so "
            "something in the unit of work waits forever."
        ) from None
    finally:
        await _close_all_async(opened)
        await engine.dispose()
        sync_engine.dispose()


async def _cancelled_mid_block(
    async_unit_of_work: Callable[..., AbstractAsyncContextManager[AsyncSession]],
    factory: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sync_engine: Engine,
) -> None:
    """What a client disconnect, a timeout or a shutdown does to a request: the task is
    cancelled while it holds a connection and an open transaction."""
    for attempt in range(POOL_SIZE + 1):  # more cancellations than the pool has connections
        inside = asyncio.Event()

        async def wait_inside(inside: asyncio.Event = inside) -> None:
            async with async_unit_of_work(factory) as session:
                session.add(Author(name="cancelled"))
                await session.flush()  # a connection is checked out, a transaction open
                inside.set()
                await asyncio.sleep(3600)  # ...until the check cancels the task

        task = asyncio.ensure_future(wait_inside())
        started = asyncio.ensure_future(inside.wait())
        await asyncio.wait({task, started}, timeout=UOW_WATCHDOG, return_when="FIRST_COMPLETED")
        started.cancel()
        if task.done():
            error = task.exception()
            raise (error if error is not None else Fail("the async block ended by itself"))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=UOW_WATCHDOG)
        if not done:
            raise Overran(UOW_WATCHDOG)
        if not task.cancelled():
            raise Fail(
                "a task cancelled inside `async with async_unit_of_work(factory)` did not end "
                f"as cancelled (it ended with {_named(task.exception())}): the unit of work "
                "swallowed the cancellation, so whoever cancelled it (a timeout, a shutdown) "
                "never learns that the work stopped."
            )
        _no_leak(
            engine,
            "a task was cancelled inside an `async with async_unit_of_work(factory)` block "
            "(cancellation arrives as asyncio.CancelledError, which is not an Exception: "
            "cleanup that runs only under `except Exception` never sees it)"
            + (f", {attempt + 1} times" if attempt else ""),
        )
        expect(
            _count(sync_engine, Author) == 1,
            "a task was cancelled inside the block after writing a row, and the row was "
            "committed: cancelled work must be rolled back.",
        )


@checker("sessions.unit_of_work")
async def unit_of_work(unit_of_work: object, async_unit_of_work: object) -> str:
    _sync_unit_of_work(_callable(unit_of_work, "unit_of_work"))
    await _async_unit_of_work(_callable(async_unit_of_work, "async_unit_of_work"))
    return (
        "sync and async: commits on success, rolls back and re-raises on errors, failed "
        "commits and interruptions, and gives the connection back on every path."
    )


# ---- sessions.no_leaks ----------------------------------------------------------------
@checker("sessions.no_leaks")
def no_leaks(get_balance: object, open_account: object) -> str:
    read = _callable(get_balance, "get_balance")
    create = _callable(open_account, "open_account")
    engine = _engine(_db_file("no_leaks"))
    factory, opened = _tracked_factory(engine)
    with Session(engine) as session, session.begin():
        session.add_all([Account(owner="ada", balance=100), Account(owner="bob", balance=5)])
    try:
        with _leaks_stay_visible():
            phase = "calling get_balance for existing accounts"
            for _ in range(10):
                got = read(factory, 1)
                expect(got == 100, f"get_balance(factory, 1) returned {got!r}, expected 100")
            _no_leak(engine, "10 calls of get_balance(factory, 1)")
            phase = "calling get_balance for an account that does not exist"
            for _ in range(10):
                error = _raises(lambda: read(factory, 999))
                expect(
                    isinstance(error, LookupError),
                    "get_balance(factory, 999) must raise LookupError (no such account); "
                    f"it gave {type(error).__name__ if error else 'no error'}",
                )
                _no_leak(engine, "get_balance(factory, 999) raised LookupError")
            phase = "opening accounts"
            new_ids = set()
            for i in range(10):
                new_id = create(factory, f"user{i}", 10 * i)
                expect(
                    isinstance(new_id, int),
                    f"open_account must return the new account's id (an int); got {new_id!r}",
                )
                new_ids.add(new_id)
            _no_leak(engine, "10 calls of open_account(...) that succeeded")
            expect(
                len(new_ids) == 10 and _count(engine, Account) == 12,
                "10 calls of open_account did not store 10 new accounts with distinct ids",
            )
            phase = "opening accounts with a negative balance"
            for _ in range(10):
                error = _raises(lambda: create(factory, "mallory", -50))
                expect(
                    error is not None,
                    "open_account(factory, 'mallory', -50) returned normally, but the "
                    "database refuses a negative balance (CHECK constraint): the error must "
                    "reach the caller",
                )
                _no_leak(engine, "open_account(factory, 'mallory', -50) raised")
            expect(_count(engine, Account) == 12, "a refused account was stored anyway")
    except PoolTimeout:
        raise _pool_ran_dry(phase) from None
    finally:
        _close_all(opened)
        engine.dispose()
    return "40 calls, happy and failing, through a pool of 2: nothing left checked out."


# ---- sessions.n_plus_one --------------------------------------------------------------
def _library(path: Path, authors: int) -> Engine:
    engine = _engine(path, pool_size=5)
    with Session(engine) as session, session.begin():
        for a in range(authors):
            house = Publisher(name=f"House {a:03d}")  # one per author: lazy loads scale too
            session.add(
                Author(
                    name=f"Author {a:03d}",
                    books=[Book(title=f"Book {a:03d}-{b}", publisher=house) for b in range(3)],
                )
            )
        session.add(Author(name="Author without books"))
    return engine


def _expected_shelf(authors: int) -> dict[str, list[tuple[str, str]]]:
    shelf = {
        f"Author {a:03d}": [(f"Book {a:03d}-{b}", f"House {a:03d}") for b in range(3)]
        for a in range(authors)
    }
    shelf["Author without books"] = []
    return shelf


def _statements_for(shelf: Callable[[Session], object], engine: Engine) -> tuple[object, int]:
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        with Session(engine) as session:
            result = shelf(session)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return result, statements


@checker("sessions.n_plus_one")
def n_plus_one(shelf: object) -> str:
    report = _callable(shelf, "shelf")
    counts = {}
    for authors in (10, 40):
        engine = _library(_db_file(f"library_{authors}"), authors)
        try:
            result, counts[authors] = _statements_for(report, engine)
        finally:
            engine.dispose()
        expected = _expected_shelf(authors)
        expect(isinstance(result, dict), f"shelf() must return a dict; got {result!r:.80}")
        assert isinstance(result, dict)
        got = {k: [tuple(t) for t in v] for k, v in result.items()}
        expect(
            got == expected,
            f"with {authors} authors, shelf() returned a different report than expected "
            "(every author, each with a list of (title, publisher name) tuples ordered by "
            f"book id; an author without books maps to []). First entries: "
            f"{dict(list(got.items())[:2])!r:.200}",
        )
    small, large = counts[10], counts[40]
    expect(
        large <= small,
        f"shelf() ran {small} SQL statements for 10 authors and {large} for 40: the number "
        "of queries grows with the number of rows, so each row's relationship is loaded "
        "lazily, one query at a time. In production that is thousands of round trips per "
        "page. Load every relationship the report touches up front, in a fixed number of "
        "queries.",
    )
    expect(
        large <= 4,
        f"shelf() ran {large} SQL statements; the report needs at most a handful, whatever "
        "the number of authors.",
    )
    return "the same report for 10 and 40 authors in a fixed, small number of statements."


# ---- sessions.transfer ----------------------------------------------------------------
BANK = {1: 100, 2: 50, 3: 0}  # the check's own accounts: ada, bob and cy
RACE_LIMIT = 15.0  # seconds for two concurrent transfers: the check's own limit
_RETURNED = object()  # a racer's outcome when its transfer returned normally


def _open_bank(engine: Engine) -> None:
    owners = {1: "ada", 2: "bob", 3: "cy"}
    with engine.begin() as conn:
        conn.execute(delete(Account))
        conn.execute(
            insert(Account),
            [{"id": i, "owner": owners[i], "balance": b, "version": 0} for i, b in BANK.items()],
        )


def _moved(balances: dict[int, int], from_id: int, to_id: int, amount: int) -> dict[int, int]:
    after = dict(balances)
    after[from_id] -= amount
    after[to_id] += amount
    return after


def _total(balances: dict[int, int]) -> int:
    return sum(balances.values())


def _race(
    move: Callable[..., Any],
    factory: SessionMaker[Session],
    faults: _Faults,
    calls: Sequence[tuple[int, int, int]],
) -> list[BaseException | object]:
    """Run the transfers at the same time, in threads, each waiting at its first write
    until all of them have read. Returns each one's exception, or ``_RETURNED``."""
    outcomes: list[BaseException | object] = [_RETURNED] * len(calls)

    def run(i: int, args: tuple[int, int, int]) -> None:
        try:
            move(factory, *args)
        except BaseException as e:  # every outcome is reported
            outcomes[i] = e

    faults.interleave(len(calls))
    threads = [
        threading.Thread(target=run, args=(i, args), name=f"prodready-transfer-{i}", daemon=True)
        for i, args in enumerate(calls)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(RACE_LIMIT)
    finally:
        faults.disarm()
    if any(thread.is_alive() for thread in threads):
        raise Fail(
            f"{len(calls)} transfers started at the same time were still running after "
            f"{RACE_LIMIT:g} s of the check's own time. Each needs a few milliseconds: two "
            "transactions are waiting for each other (a deadlock), or one waits forever."
        )
    for outcome in outcomes:
        if isinstance(outcome, PoolTimeout):
            raise outcome
    return outcomes


def _lost_update(faults: _Faults) -> str:
    how = (
        " (`UPDATE accounts SET balance=?`, with a value your code computed)"
        if faults.saw_absolute_balance
        else ""
    )
    message = (
        f"Each transfer read the balance, then wrote a new one{how}; in between, the other "
        "transfer changed the row, and the later write overwrote it: a lost update. One "
        "transaction does not prevent this: PostgreSQL at READ COMMITTED (its default) lets "
        "it happen, and so does SQLite before a transaction's first write. The write itself "
        "must refuse, or wait, when the balance it relies on has changed."
    )
    if faults.saw_for_update:
        message += (
            " with_for_update() does not help here: SQLite has no row locks, so SQLAlchemy "
            "leaves FOR UPDATE out of the SELECT it sends. It locks rows on PostgreSQL and "
            "MySQL, not on the database this check (and many test suites) runs on."
        )
    return message


def _check_race(
    engine: Engine,
    move: Callable[..., Any],
    factory: SessionMaker[Session],
    faults: _Faults,
    amount: int,
) -> None:
    """Two transfers of ``amount`` from account 1, to accounts 2 and 3, at the same time."""
    _open_bank(engine)
    calls = [(1, 2, amount), (1, 3, amount)]
    outcomes = _race(move, factory, faults, calls)
    after = _balances(engine)
    went_through = [
        call for call, outcome in zip(calls, outcomes, strict=True) if outcome is _RETURNED
    ]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    expected = dict(BANK)
    for call in went_through:
        expected = _moved(expected, *call)
    scene = (
        f"two transfers of {amount} from account 1 (balance {BANK[1]}), to accounts 2 and 3, "
        f"ran at the same time; {len(went_through)} of them reported success, and the "
        f"balances went from {BANK} to {after}"
    )
    if after != expected:
        created = _total(after) - _total(BANK)
        damage = (
            f"the bank created {created}"
            if created > 0
            else f"the bank lost {-created}"
            if created < 0
            else "they do not match the transfers that reported success"
        )
        raise Fail(f"{scene}: {damage}. {_lost_update(faults)}")
    if not went_through:
        raise Fail(
            f"{scene}: both failed ({'; '.join(_named(e) for e in errors)}), although the "
            "balance covers at least one of them. A transfer must fail only when the money "
            "is not there."
        )
    if faults.rendezvous_failed:  # both had the funds to reach their writes: one was held back
        raise Fail(
            f"{scene}, but they never ran at the same time: one transfer waited "
            f"more than {RENDEZVOUS_TIMEOUT:g} s for the other before it touched the database, "
            "so something in your process (a threading.Lock?) lets only one transfer run at "
            "a time. That lock exists once per process: production runs several worker "
            "processes on several servers against one database, and they never see each "
            "other's Python locks. Only the database can order their writes."
        )
    if len(went_through) < len(calls) and amount * len(calls) <= BANK[1]:
        raise Fail(
            f"{scene}. The balance covers both, yet one failed with {_named(errors[0])}. "
            "Your code noticed the other transfer, which is right, but gave up: the customer "
            "sees an error for a payment that would have gone through. When a transfer loses "
            "such a race, the conflict is temporary: run the transfer again (a bounded number "
            "of times) instead of failing it."
        )


def _check_injected(
    engine: Engine,
    move: Callable[..., Any],
    factory: SessionMaker[Session],
    faults: _Faults,
    what: str,
    arm: Callable[[], None],
) -> None:
    """Transfer 30 from account 1 to 2 while the check makes one step fail."""
    _open_bank(engine)
    arm()
    try:
        error = _raises(lambda: move(factory, 1, 2, 30))
    finally:
        fired = faults.fired
        faults.disarm()
    after, moved = _balances(engine), _moved(BANK, 1, 2, 30)
    scene = (
        f"the check made {what} of transfer(factory, 1, 2, 30) fail (OperationalError: "
        f"{INJECTED}, as a full disk or a dropped connection gives)"
    )
    if _total(after) != _total(BANK):
        raise Fail(
            f"{scene}, and the bank's total money went from {_total(BANK)} to {_total(after)} "
            f"(balances {BANK} became {after}): the first leg was committed without the "
            "second. Checking the accounts first cannot prevent this: a write can fail for "
            "reasons nobody can test in advance. Both legs must be committed together, in "
            "one transaction, or not at all."
        )
    if not fired:
        expect(
            error is None and after == moved,
            f"transfer(factory, 1, 2, 30) from {BANK} gave {_named(error)} and left {after}; "
            f"expected {moved}",
        )
        return
    if error is None:
        expect(
            after == moved,
            f"{scene}; your code returned normally and left balances {after}, not {moved}: "
            "the caller now believes money moved that did not. A failed transfer must "
            "raise (or, if it retries, really move the money once).",
        )
    else:
        expect(after == BANK, f"{scene}; it raised, but balances changed from {BANK} to {after}")
    _no_leak(engine, f"{what} of a transfer failed")


@checker("sessions.transfer")
def transfer(transfer: object) -> str:
    move = _callable(transfer, "transfer")
    faults = _Faults()
    engine = _engine(_db_file("bank"), faults=faults)
    factory, opened = _tracked_factory(engine)
    _open_bank(engine)
    try:
        with _leaks_stay_visible():
            error = _raises(lambda: move(factory, 1, 2, 30))
            after = _balances(engine)
            expect(
                error is None and after == _moved(BANK, 1, 2, 30),
                f"transfer(factory, 1, 2, 30) from balances {BANK} gave {_named(error)} and "
                f"left {after}; expected {_moved(BANK, 1, 2, 30)}",
            )
            for label, args in (
                ("an overdraft, transfer(factory, 1, 2, 500)", (1, 2, 500)),
                ("a transfer from an account that does not exist, transfer(factory, 999, 2, 10)",
                 (999, 2, 10)),
                ("a transfer to an account that does not exist, transfer(factory, 1, 999, 10)",
                 (1, 999, 10)),
            ):  # fmt: skip
                before = _balances(engine)
                error = _raises(lambda a=args: move(factory, *a))  # type: ignore[misc]
                after = _balances(engine)
                if _total(after) != _total(before):
                    raise Fail(
                        f"{label} {'raised ' + type(error).__name__ if error else 'returned'}"
                        f", and the bank's total money went from {_total(before)} to "
                        f"{_total(after)}: one leg of the transfer was committed and the other "
                        "was not. Both legs must succeed or fail together, in one transaction."
                    )
                expect(after == before, f"{label} changed balances from {before} to {after}")
                expect(
                    error is not None,
                    f"{label} returned normally and moved nothing: the caller now believes "
                    "the money moved. A failed transfer must raise.",
                )
                _no_leak(engine, label)
            _check_injected(
                engine, move, factory, faults, "the second row written",
                lambda: faults.fail_write(2),
            )  # fmt: skip
            _check_injected(
                engine, move, factory, faults, "the commit", lambda: faults.fail_commit(1)
            )
            _check_race(engine, move, factory, faults, amount=60)  # only one can go through
            _check_race(engine, move, factory, faults, amount=30)  # both must go through
            _no_leak(engine, "transfers that ran at the same time")
    except PoolTimeout:
        raise _pool_ran_dry("running transfers") from None
    finally:
        faults.disarm()
        _close_all(opened)
        engine.dispose()
    return (
        "all or nothing when any step fails, and two transfers at the same time lose "
        "no update and overdraw nothing."
    )


# ---- sessions.bulk_import -------------------------------------------------------------
IMPORT_ROWS = 1_500  # past the first chunk of a 1,000-row (or 500-row) batching
BIG_IMPORT = 10_001  # past the first chunk of a 5,000- or 10,000-row batching
MAX_COMMITS = 20


def _readings(n: int) -> list[dict[str, Any]]:
    return [{"sensor": f"t-{i % 17}", "value": i / 4} for i in range(n)]


def _with_bad_row(rows: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    return [*rows[:index], {"sensor": "t-x", "value": None}, *rows[index + 1 :]]


@checker("sessions.bulk_import")
def bulk_import(import_readings: object) -> str:
    load = _callable(import_readings, "import_readings")
    faults = _Faults()
    engine = _engine(_db_file("readings"), faults=faults, begin_explicitly=True)
    factory, opened = _tracked_factory(engine)
    rows = _readings(IMPORT_ROWS)
    try:
        with _leaks_stay_visible():
            faults.commits, faults.commit_limit = 0, MAX_COMMITS
            try:
                returned = load(factory, rows)
            except _TooManyCommits:
                returned = None
            finally:
                faults.disarm()
            commits = faults.commits
            expect(
                returned is not None,
                f"importing {IMPORT_ROWS:,} rows took more than {MAX_COMMITS} commits (the "
                "check stopped it there). Each commit waits for the disk to confirm the "
                "write, so an import's time grows with its commits, not with its rows: on a "
                "busy disk that is minutes instead of milliseconds.",
            )
            stored = _count(engine, Reading)
            expect(
                stored == IMPORT_ROWS,
                f"after importing {IMPORT_ROWS:,} rows, the table holds {stored:,}",
            )
            expect(
                returned == IMPORT_ROWS,
                f"import_readings must return the number of rows imported ({IMPORT_ROWS}); "
                f"it returned {returned!r:.80}",
            )
            with engine.connect() as conn:
                total = conn.scalar(select(func.sum(Reading.value)))
            expect(
                total == sum(r["value"] for r in rows), "the stored values differ from the input"
            )
            _no_leak(engine, "an import that succeeded")
            for size, bad_index in ((IMPORT_ROWS, 1_234), (1_001, 1_000), (10, 0)):
                before = _count(engine, Reading)
                bad = _with_bad_row(_readings(size), bad_index)
                error = _raises(lambda: load(factory, bad))  # noqa: B023 - called right here
                line = f"row {bad_index + 1:,} of {size:,}"
                expect(
                    error is not None,
                    f"an import whose {line} has value=None (the column is NOT NULL) "
                    "returned normally: the error must reach the caller",
                )
                kept = _count(engine, Reading) - before
                expect(
                    kept == 0,
                    f"an import failed on {line} (value=None), yet {kept:,} of its rows were "
                    "stored: half an import is worse than none, because nobody can tell which "
                    "half. A failed import must leave the table as it was.",
                )
                _no_leak(engine, f"an import that failed on {line}")
            for size, number, which in (
                (IMPORT_ROWS, 1, "the first commit"),
                (BIG_IMPORT, 2, "the second commit"),  # past a 1,000, 5,000 or 10,000-row chunk
            ):
                before = _count(engine, Reading)
                data = rows if size == IMPORT_ROWS else _readings(size)
                faults.fail_commit(number)
                try:
                    error = _raises(lambda: load(factory, data))  # noqa: B023 - called right here
                finally:
                    fired = faults.fired
                    faults.disarm()
                kept = _count(engine, Reading) - before
                if not fired:
                    expect(
                        error is None and kept == size,
                        f"an import of {size:,} rows gave {_named(error)} and stored {kept:,} "
                        "of them",
                    )
                    continue
                scene = (
                    f"the check made {which} of an import of {size:,} rows fail "
                    f"(OperationalError: {INJECTED}, as a full disk or a dropped connection "
                    "gives)"
                )
                expect(
                    error is not None or kept == size,
                    f"{scene}, and import_readings returned normally with {kept:,} rows "
                    "stored: the error must reach the caller.",
                )
                expect(
                    error is None or kept == 0,
                    f"{scene}, and {kept:,} of the import's rows stayed in the table: the "
                    "rows of the earlier commits. Checking the rows first cannot prevent "
                    "this: a commit can fail for reasons no check can see in advance. "
                    "Several commits are several transactions; an import must be one.",
                )
                _no_leak(engine, f"an import whose {which.removeprefix('the ')} failed")
            expect(
                commits <= 1,
                f"importing {IMPORT_ROWS:,} rows took {commits} commits: an import must be "
                "one transaction. With several, a crash between two commits leaves part of "
                "the file stored, and no clean-up code runs after a crash.",
            )
    except PoolTimeout:
        raise _pool_ran_dry("importing") from None
    finally:
        faults.disarm()
        _close_all(opened)
        engine.dispose()
    return (
        f"{IMPORT_ROWS:,} and {BIG_IMPORT:,} rows in one transaction each; a bad row anywhere, "
        "or a failed commit, imports nothing."
    )


# ---- sessions.api ---------------------------------------------------------------------
API_POOL = 5
API_POOL_TIMEOUT = 10.0  # generous: a correct app needs well under a second here
API_REQUESTS = 100  # 20 times the pool: a leak or a shared session shows at once
API_AUTHORS = 20
API_WATCHDOG = 30.0  # seconds for all the requests together: the check's own limit


async def _bookshop(path: Path) -> AsyncEngine:
    sync_engine = _engine(path)
    with Session(sync_engine) as session, session.begin():
        for a in range(API_AUTHORS):
            books = [Book(title=f"T{a}-{b}") for b in range(a % 4)]
            session.add(Author(name=f"Author {a}", books=books))
    sync_engine.dispose()
    return _async_engine(path, pool_size=API_POOL, pool_timeout=API_POOL_TIMEOUT)


def _author_body(author_id: int) -> dict[str, object]:
    a = author_id - 1
    return {"name": f"Author {a}", "books": [f"T{a}-{b}" for b in range(a % 4)]}


class _Observed:
    """The learner's app as the check sees it from outside: every exception that escapes
    it (the client gets a 500) is kept, so the message can say what went wrong."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.errors: list[BaseException] = []

    def __getattr__(self, name: str) -> Any:  # router, state, ...: the app's own
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as e:
            self.errors.append(e)
            raise


class _NextQueryFails:
    """Makes the next statement the app sends fail, as a dropped connection would."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, *_: object) -> None:
        if self.armed:
            self.armed = False
            raise sqlite3.OperationalError(INJECTED)


def _lazy_load(errors: list[BaseException]) -> bool:
    """A lazy load under AsyncSession, in the endpoint or in a response model that read
    the attribute while validating (FastAPI then reports a ResponseValidationError)."""
    return any(
        (isinstance(e, StatementError) and isinstance(e.orig, MissingGreenlet))
        or "MissingGreenlet" in str(e)
        for e in errors
    )


@checker("sessions.api")
async def api(build_app: object) -> str:
    make_app = _callable(build_app, "build_app")
    engine = await _bookshop(_db_file("bookshop"))
    factory, opened = _tracked_async_factory(engine)
    failing = _NextQueryFails()
    event.listen(engine.sync_engine, "before_cursor_execute", failing)
    observed: _Observed | None = None
    try:
        observed = _Observed(make_app(factory))
        async with asgi_client(observed) as client:
            with _leaks_stay_visible():
                await within(API_WATCHDOG, _api_one_by_one(client, engine, opened, failing))
                await within(API_WATCHDOG, _api_all_at_once(client, engine, observed))
    except PoolTimeout:
        raise Fail(
            f"requests waited {API_POOL_TIMEOUT:g} s for one of the pool's {API_POOL} "
            "connections and failed (sqlalchemy TimeoutError, a 500 for the client): "
            "connections were not given back in time. The session dependency must close "
            "its session on every path, the error paths included."
        ) from None
    except Overran:
        raise Fail(
            f"the app was still answering after {API_WATCHDOG:g} s of the check's own time; "
            f"{API_REQUESTS} small requests need well under a second. Requests are waiting "
            "for connections that never come back, or for each other."
        ) from None
    except _AppFailed as e:
        errors = observed.errors if observed is not None else []
        lazy_load = _lazy_load(errors)
        if not lazy_load:
            raised = f" (the app raised {_named(errors[-1])})" if errors else ""
            raise Fail(f"{e}{raised}") from None
    else:
        lazy_load = False
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", failing)
        await _close_all_async(opened)
        await engine.dispose()
    if lazy_load:
        _collect_quietly(full=True)  # the never-awaited driver coroutine warns now, captured
        raise Fail(
            "a request failed with StatementError wrapping MissingGreenlet: an attribute "
            "was loaded lazily, which needs blocking IO, inside async code (in the endpoint, "
            "or in a response model that reads it while serializing). Under AsyncSession "
            "every relationship the response touches must be loaded before you use it."
        )
    return (
        f"{API_REQUESTS} concurrent requests through a pool of {API_POOL}: right answers, "
        "a session per request, no timeouts, no leaked connections, on errors too."
    )


class _AppFailed(Exception):
    """A response was wrong; the message says how."""


async def _expect_response(client: httpx.AsyncClient, author_id: int) -> None:
    response = await client.get(f"/authors/{author_id}")
    if author_id > API_AUTHORS:
        if response.status_code != 404:
            raise _AppFailed(
                f"GET /authors/{author_id} (no such author) answered "
                f"{response.status_code}: {response.text[:200]}; expected 404"
            )
        return
    if response.status_code != 200:
        raise _AppFailed(
            f"GET /authors/{author_id} answered {response.status_code}: {response.text[:200]}"
        )
    body, expected = _json(response), _author_body(author_id)
    if body != expected:
        raise _AppFailed(f"GET /authors/{author_id} returned {body!r:.200}; expected {expected!r}")


def _sessions_per_request(opened: list[AsyncSession], requests: int) -> None:
    if len(opened) < requests:
        raise Fail(
            f"{requests} requests were served by {len(opened)} session(s): requests share an "
            "AsyncSession. A session is one unit of work, not a connection to keep: two "
            "requests on one session at the same time fail ('This session is provisioning a "
            "new connection; concurrent operations are not permitted'), see each other's "
            "uncommitted changes, and the shared session never gives its connection back. "
            "Give every request its own session."
        )


async def _api_one_by_one(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    opened: list[AsyncSession],
    failing: _NextQueryFails,
) -> None:
    await _expect_response(client, 1)
    await _expect_response(client, 4)
    _sessions_per_request(opened, 2)  # before counting connections: a shared one never returns
    _no_leak(engine, "two requests for existing authors (GET /authors/1, then /authors/4)")
    for served, author_id in enumerate((404, 2), start=3):
        await _expect_response(client, author_id)
        _sessions_per_request(opened, served)
        what = "an existing" if author_id <= API_AUTHORS else "a missing"
        _no_leak(engine, f"one request for {what} author (GET /authors/{author_id})")
    failing.armed = True  # the database fails this request's first query
    response = await client.get("/authors/3")
    failing.armed = False
    retried = response.status_code == 200 and _json(response) == _author_body(3)
    expect(
        response.status_code >= 500 or retried,
        f"GET /authors/3, whose query the check made fail (OperationalError: {INJECTED}), "
        f"answered {response.status_code}: {response.text[:120]}; a failed query is a server "
        "error (5xx), never a 404 or a wrong answer.",
    )
    _no_leak(engine, "a request whose query failed (GET /authors/3)")


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


async def _api_all_at_once(
    client: httpx.AsyncClient, engine: AsyncEngine, observed: _Observed
) -> None:
    observed.errors.clear()  # the injected failure above is not the learner's
    ids = [1 + i % (API_AUTHORS + 5) for i in range(API_REQUESTS)]  # the last 5 ids are 404s
    outcomes: list[BaseException | None] = await asyncio.gather(
        *(_expect_response(client, i) for i in ids), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    _no_leak(engine, f"{API_REQUESTS} concurrent requests")
