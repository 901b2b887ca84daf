"""Checks for module 02: database sessions, transactions and connection pools.

The workbook's models live here too, so the notebook and its checks share one schema:
the notebook imports them (``from prodready._checks.sessions import Author, ...``).

Every check runs the learner's code against its own SQLite file with a deliberately tiny
pool. Leaked sessions sit in reference cycles until the garbage collector happens to run,
so checks switch the collector off while they count checked-out connections: a leak is
then seen every time, not only when the collector is slow.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Iterator
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
    Engine,
    ForeignKey,
    create_engine,
    event,
    func,
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

__all__ = ["Account", "Author", "Base", "Book", "Publisher", "Reading"]


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

    def __repr__(self) -> str:
        return f"Account(id={self.id}, owner={self.owner!r}, balance={self.balance})"


class Reading(Base):
    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(primary_key=True)
    sensor: Mapped[str]
    value: Mapped[float]  # NOT NULL: a reading without a value is refused


# ---- a small database per check -------------------------------------------------------
POOL_SIZE = 2
POOL_TIMEOUT = 0.5  # seconds: a leak shows up as a timeout quickly


def _db_file(name: str) -> Path:
    return scratch_dir("prodready-sessions-") / f"{name}.db"


def _engine(path: Path, pool_size: int = POOL_SIZE, pool_timeout: float = POOL_TIMEOUT) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}", pool_size=pool_size, max_overflow=0, pool_timeout=pool_timeout
    )
    Base.metadata.create_all(engine)
    return engine


def _async_engine(path: Path) -> AsyncEngine:
    return create_async_engine(
        f"sqlite+aiosqlite:///{path}",
        pool_size=POOL_SIZE,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT,
    )


@contextmanager
def _leaks_stay_visible() -> Iterator[None]:
    """Switch the cyclic garbage collector off, so a leaked session keeps its connection
    until we have counted it; afterwards collect, which hands leaked connections back."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        _collect_quietly()


def _collect_quietly() -> None:
    """Collect garbage without the pool's log line for each leak it reclaims: we report it."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        gc.collect()
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
        return {row.id: row.balance for row in conn.execute(select(Account.id, Account.balance))}


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


# ---- sessions.unit_of_work ------------------------------------------------------------
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
                isinstance(error, _Boom),
                "the block raised an error, but `with unit_of_work(...)` did not let it "
                f"through (got {type(error).__name__ if error else 'no error'}). A unit of "
                "work must never swallow a failure: the caller has to know.",
            )
            _no_leak(engine, "a `with unit_of_work(factory)` block that raised")
            expect(
                _count(engine, Author) == 1,
                "a block raised after writing a row, and the row was committed anyway. "
                "On failure the unit of work must roll everything back.",
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


async def _async_unit_of_work(
    async_unit_of_work: Callable[..., AbstractAsyncContextManager[AsyncSession]],
) -> None:
    path = _db_file("uow_async")
    sync_engine = _engine(path)  # creates the tables; also reads the outcome
    engine = _async_engine(path)
    factory, opened = _tracked_async_factory(engine)
    try:
        with _leaks_stay_visible():
            async with async_unit_of_work(factory) as session:
                expect(
                    isinstance(session, AsyncSession),
                    "async_unit_of_work must yield an AsyncSession; it yielded "
                    f"{type(session).__name__}",
                )
                session.add(Author(name="kept"))
            _no_leak(engine, "an `async with async_unit_of_work(factory)` block that succeeded")
            expect(
                _count(sync_engine, Author) == 1,
                "an `async with async_unit_of_work(factory)` block finished without error, "
                "but its write is not in the database: commit when the block succeeds.",
            )
            error: BaseException | None = None
            try:
                async with async_unit_of_work(factory) as session:
                    session.add(Author(name="doomed"))
                    await session.flush()
                    raise _Boom("the block failed halfway")
            except PoolTimeout:
                raise
            except Exception as e:
                error = e
            expect(
                isinstance(error, _Boom),
                "the async block raised an error, but async_unit_of_work did not let it "
                f"through (got {type(error).__name__ if error else 'no error'}). Never "
                "swallow a failure.",
            )
            _no_leak(engine, "an `async with async_unit_of_work(factory)` block that raised")
            expect(
                _count(sync_engine, Author) == 1,
                "an async block raised after writing a row, and the row was committed "
                "anyway. On failure, roll everything back.",
            )
    except PoolTimeout:
        raise _pool_ran_dry("running async units of work") from None
    finally:
        await _close_all_async(opened)
        await engine.dispose()
        sync_engine.dispose()


@checker("sessions.unit_of_work")
async def unit_of_work(unit_of_work: object, async_unit_of_work: object) -> str:
    _sync_unit_of_work(_callable(unit_of_work, "unit_of_work"))
    await _async_unit_of_work(_callable(async_unit_of_work, "async_unit_of_work"))
    return (
        "sync and async: commits on success, rolls back and re-raises on failure, "
        "and gives the connection back either way."
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
@checker("sessions.transfer")
def transfer(transfer: object) -> str:
    move = _callable(transfer, "transfer")
    engine = _engine(_db_file("bank"))
    factory, opened = _tracked_factory(engine)
    with Session(engine) as session, session.begin():
        session.add_all([Account(owner="ada", balance=100), Account(owner="bob", balance=50)])

    def total(balances: dict[int, int]) -> int:
        return sum(balances.values())

    try:
        with _leaks_stay_visible():
            move(factory, 1, 2, 30)
            after = _balances(engine)
            expect(
                after == {1: 70, 2: 80},
                f"transfer(factory, 1, 2, 30) from 100/50 left balances {after[1]}/{after[2]}; "
                "expected 70/80",
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
                if total(after) != total(before):
                    raise Fail(
                        f"{label} {'raised ' + type(error).__name__ if error else 'returned'}"
                        f", and the bank's total money went from {total(before)} to "
                        f"{total(after)}: one leg of the transfer was committed and the other "
                        "was not. Both legs must succeed or fail together, in one transaction."
                    )
                expect(
                    after == before,
                    f"{label} changed balances from {before} to {after}",
                )
                expect(
                    error is not None,
                    f"{label} returned normally and moved nothing: the caller now believes "
                    "the money moved. A failed transfer must raise.",
                )
                _no_leak(engine, label)
    except PoolTimeout:
        raise _pool_ran_dry("running transfers") from None
    finally:
        _close_all(opened)
        engine.dispose()
    return "money moves all or nothing: failed transfers raise and change no balance."


# ---- sessions.bulk_import -------------------------------------------------------------
IMPORT_ROWS = 1000
MAX_COMMITS = 20


class _TooManyCommits(Exception):
    """Raised from the commit listener, to stop an import that commits row by row."""


@checker("sessions.bulk_import")
def bulk_import(import_readings: object) -> str:
    load = _callable(import_readings, "import_readings")
    engine = _engine(_db_file("readings"))
    factory, opened = _tracked_factory(engine)
    rows: list[dict[str, Any]] = [
        {"sensor": f"t-{i % 17}", "value": i / 4} for i in range(IMPORT_ROWS)
    ]
    commits = 0

    def count_commit(*_: object) -> None:
        nonlocal commits
        commits += 1
        if commits > MAX_COMMITS:  # stop a row-by-row import early: on a busy disk it is slow
            raise _TooManyCommits

    event.listen(engine, "commit", count_commit)
    try:
        with _leaks_stay_visible():
            try:
                returned = load(factory, rows)
            except _TooManyCommits:
                returned = None
            took = (
                f"more than {MAX_COMMITS} commits (the check stopped it there)"
                if returned is None
                else f"{commits} commits"
            )
            expect(
                commits <= 2,
                f"importing {IMPORT_ROWS} rows took {took}. Each commit waits for the disk to "
                "confirm the write, so an import's time grows with its commits, not with its "
                "rows: on a busy disk that is minutes instead of milliseconds.",
            )
            stored = _count(engine, Reading)
            expect(
                stored == IMPORT_ROWS,
                f"after importing {IMPORT_ROWS} rows, the table holds {stored}",
            )
            expect(
                returned == IMPORT_ROWS,
                f"import_readings must return the number of rows imported ({IMPORT_ROWS}); "
                f"it returned {returned!r}",
            )
            with engine.connect() as conn:
                total = conn.scalar(select(func.sum(Reading.value)))
            expect(
                total == sum(r["value"] for r in rows), "the stored values differ from the input"
            )
            _no_leak(engine, "an import that succeeded")
            bad = [*rows[:500], {"sensor": "t-x", "value": None}, *rows[500:]]
            error = _raises(lambda: load(factory, bad))
            expect(
                error is not None,
                "an import whose row 501 has value=None (the column is NOT NULL) returned "
                "normally: the error must reach the caller",
            )
            after = _count(engine, Reading)
            expect(
                after == IMPORT_ROWS,
                f"an import failed on row 501, yet {after - IMPORT_ROWS} of its rows were "
                "stored: half an import is worse than none, because nobody can tell which "
                "half. A failed import must leave the table as it was.",
            )
            _no_leak(engine, "an import that failed")
    except PoolTimeout:
        raise _pool_ran_dry("importing") from None
    finally:
        _close_all(opened)
        event.remove(engine, "commit", count_commit)
        engine.dispose()
    return f"{IMPORT_ROWS} rows in one transaction; a bad row imports nothing."


# ---- sessions.api ---------------------------------------------------------------------
API_POOL = 5
API_POOL_TIMEOUT = 10.0  # generous: a correct app needs well under a second here
API_REQUESTS = 200
API_AUTHORS = 20


async def _bookshop(path: Path) -> AsyncEngine:
    sync_engine = _engine(path)
    with Session(sync_engine) as session, session.begin():
        for a in range(API_AUTHORS):
            books = [Book(title=f"T{a}-{b}") for b in range(a % 4)]
            session.add(Author(name=f"Author {a}", books=books))
    sync_engine.dispose()
    return create_async_engine(
        f"sqlite+aiosqlite:///{path}",
        pool_size=API_POOL,
        max_overflow=0,
        pool_timeout=API_POOL_TIMEOUT,
    )


def _author_body(author_id: int) -> dict[str, object]:
    a = author_id - 1
    return {"name": f"Author {a}", "books": [f"T{a}-{b}" for b in range(a % 4)]}


@checker("sessions.api")
async def api(build_app: object) -> str:
    make_app = _callable(build_app, "build_app")
    engine = await _bookshop(_db_file("bookshop"))
    factory, opened = _tracked_async_factory(engine)
    try:
        app = make_app(factory)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            with _leaks_stay_visible():
                await _api_one_by_one(client, engine)
                await _api_all_at_once(client, engine)
    except PoolTimeout:
        raise Fail(
            f"requests waited {API_POOL_TIMEOUT:g} s for one of the pool's {API_POOL} "
            "connections and failed (sqlalchemy TimeoutError, a 500 for the client): "
            "connections were not given back in time. The session dependency must close "
            "its session on every path, the error paths included."
        ) from None
    except StatementError as e:
        if not isinstance(e.orig, MissingGreenlet):
            raise
        lazy_load = True  # reported below, once this traceback (and its coroutine) is gone
    else:
        lazy_load = False
    finally:
        await _close_all_async(opened)
        await engine.dispose()
    if lazy_load:
        _collect_quietly()  # the never-awaited driver coroutine warns now, while output is captured
        raise Fail(
            "a request failed with StatementError wrapping MissingGreenlet: an attribute "
            "was loaded lazily, which needs blocking IO, inside async code. Under "
            "AsyncSession every relationship the response touches must be loaded "
            "before you use it."
        )
    return (
        f"{API_REQUESTS} concurrent requests through a pool of {API_POOL}: right answers, "
        "no timeouts, no leaked connections."
    )


async def _expect_response(client: httpx.AsyncClient, author_id: int) -> None:
    response = await client.get(f"/authors/{author_id}")
    if author_id > API_AUTHORS:
        expect(
            response.status_code == 404,
            f"GET /authors/{author_id} (no such author) answered {response.status_code}; "
            "expected 404",
        )
        return
    expect(
        response.status_code == 200,
        f"GET /authors/{author_id} answered {response.status_code}: {response.text[:200]}",
    )
    body, expected = response.json(), _author_body(author_id)
    expect(body == expected, f"GET /authors/{author_id} returned {body!r}; expected {expected!r}")


async def _api_one_by_one(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    for author_id in (1, 4, 404, 2):
        await _expect_response(client, author_id)
        what = "an existing" if author_id <= API_AUTHORS else "a missing"
        _no_leak(engine, f"one request for {what} author (GET /authors/{author_id})")


async def _api_all_at_once(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    ids = [1 + i % (API_AUTHORS + 5) for i in range(API_REQUESTS)]  # the last 5 ids are 404s
    outcomes: list[BaseException | None] = await asyncio.gather(
        *(_expect_response(client, i) for i in ids), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    _no_leak(engine, f"{API_REQUESTS} concurrent requests")
