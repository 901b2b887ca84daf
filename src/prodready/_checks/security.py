"""Checks for module 09: security (brute force, the common API attacks, secrets).

The workbook's shared types live here too, so the notebook and its checks agree on them
(the notebook imports them): the shop's tables (``Customer``, ``Order``) and
``user_for_token`` for exercises 2 and 3, and ``AuthSettings`` and the accounts database
of the mini-task.

Every attack a check runs goes to 127.0.0.1 (or stays in process), is bounded in count
and in time, and stops by itself: the check's own watchdog (``_support.within``, or a
deadline on the pipes of its worker processes) ends an answer that never answers.

Password hashing is slow on purpose, so the checks hand the learner's code an Argon2
hasher with tiny test parameters, except where the cost *is* the point (the timing probe
of the mini-task, which needs a check of a few milliseconds to measure against).

Limits that must hold across worker processes are tested with two real processes: the
check forks (Linux and macOS), and each child builds its own limiter, or its own app
under uvicorn, from the learner's code, the way ``uvicorn --workers 2`` imports the app in
each worker. Where ``os.fork`` does not exist (Windows), the check builds two instances in
this process over the same database file instead: a weaker test (a module-level counter
would pass it), and the task says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import mmap
import os
import random
import select
import signal
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher, Type
from fastapi import HTTPException
from sqlalchemy import Engine, ForeignKey, create_engine, event, func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .._check import Fail, checker, expect, run_in_fresh_loop
from .._course import scratch_dir
from ._support import SERVER_THREAD, Overran, asgi_client, gc_paused, within

__all__ = [
    "LEGACY_PREFIX",
    "AuthSettings",
    "Customer",
    "Order",
    "ShopBase",
    "create_accounts_db",
    "user_for_token",
]

LEGACY_PREFIX = "sha256$"  # how the old table stored a password: "sha256$" + hex digest
CAN_FORK = hasattr(os, "fork")


# ---- the shop of exercises 2 and 3 ----------------------------------------------------
class ShopBase(DeclarativeBase):
    pass


class Customer(ShopBase):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    token: Mapped[str] = mapped_column(unique=True)  # the customer's API token
    password_hash: Mapped[str]
    role: Mapped[str] = mapped_column(default="customer")


class Order(ShopBase):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    item: Mapped[str]
    cents: Mapped[int]
    placed_at: Mapped[str]  # ISO 8601, so that text order is time order
    address: Mapped[str]
    status: Mapped[str] = mapped_column(default="placed")
    fraud_score: Mapped[float] = mapped_column(default=0.0)  # internal: never for customers


def user_for_token(session: Session, authorization: str | None) -> Customer:
    """The customer whose token is in ``Authorization: Bearer <token>``; 401 otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    customer = None
    if scheme.lower() == "bearer" and token:
        customer = session.scalar(sa_select(Customer).where(Customer.token == token))
    if customer is None:
        raise HTTPException(
            status_code=401, detail="not signed in", headers={"WWW-Authenticate": "Bearer"}
        )
    return customer


# ---- the accounts of the mini-task ----------------------------------------------------
@dataclass(frozen=True)
class AuthSettings:
    """What the login app of exercise 6 is built with.

    - ``database``: the SQLite file with ``accounts(id, email, name, password_hash)`` and
      ``tokens(token, account_id)``; the app may add tables of its own to it;
    - ``hasher``: the Argon2 hasher for every password check;
    - at most ``account_limit`` login attempts per account and ``address_limit`` per client
      address in any ``window`` seconds, as ``clock()`` tells the time;
    - ``trusted_proxies``: the addresses of the reverse proxies in front of the app; only a
      request from one of them may name its client in ``X-Forwarded-For``.
    """

    database: str
    hasher: PasswordHasher
    account_limit: int = 5
    address_limit: int = 20
    window: float = 60.0
    clock: Callable[[], float] = time.time
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)


def create_accounts_db(path: str | Path, accounts: Sequence[tuple[str, str, str]]) -> None:
    """A fresh accounts database: ``accounts`` holds (email, name, password_hash) rows."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript(
            """
            CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL,
                                   name TEXT NOT NULL, password_hash TEXT NOT NULL);
            CREATE TABLE tokens (token TEXT PRIMARY KEY,
                                 account_id INTEGER NOT NULL REFERENCES accounts(id));
            """
        )
        db.executemany(
            "INSERT INTO accounts (email, name, password_hash) VALUES (?, ?, ?)", accounts
        )


# ---- small helpers --------------------------------------------------------------------
def _scratch(prefix: str) -> Path:
    """A folder for the check's databases: in memory where the system has a RAM disk. Each
    commit of a SQLite file waits for the disk (fsync), 20 ms or more on a busy one, and
    the limits are tested with hundreds of commits."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        return Path(tempfile.mkdtemp(prefix=prefix, dir=shm))
    return scratch_dir(prefix)


def _callable(thing: object, name: str) -> Callable[..., Any]:
    expect(callable(thing), f"{name} must be a function or a class; got {type(thing).__name__}")
    return thing  # type: ignore[return-value]


def _json(response: httpx.Response) -> Any:
    """The body as JSON, or as text when it is not JSON (a crash's plain 500)."""
    try:
        return response.json()
    except ValueError:
        return response.text


def _raised(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


# ==== security.password_storage ========================================================
# Test parameters: far below production (argon2-cffi's default is 64 MiB and 3 passes),
# so that the check's dozen hashes take milliseconds. The point here is the logic.
def _current_hasher(kind: Type = Type.ID) -> PasswordHasher:
    return PasswordHasher(time_cost=2, memory_cost=256, parallelism=1, type=kind)


def _outdated_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=128, parallelism=1)


def _legacy(password: str) -> str:
    return LEGACY_PREFIX + hashlib.sha256(password.encode("utf-8")).hexdigest()


class _PasswordCheck:
    def __init__(self, fn: Callable[..., Any], hasher: PasswordHasher) -> None:
        self.fn, self.hasher = fn, hasher

    def __call__(self, stored: str, password: str, what: str) -> tuple[bool, str | None]:
        try:
            result = self.fn(stored, password, self.hasher)
        except Exception as e:
            raise Fail(self._raised_message(e, what)) from None
        expect(
            isinstance(result, tuple | list) and len(result) == 2,
            f"check_password returned {result!r:.80} for {what}; it must return a pair "
            "(ok, new_hash): True or False, and the hash to store instead, or None",
        )
        ok, new = result
        expect(
            type(ok) is bool,
            f"check_password returned ok={ok!r:.60} for {what}: the first item must be True "
            "or False (a login endpoint tests it, and a truthy string is not an answer)",
        )
        expect(
            new is None or isinstance(new, str),
            f"check_password returned new_hash={new!r:.60} for {what}: a hash is a str, "
            "or None when nothing needs to change",
        )
        return ok, new

    @staticmethod
    def _raised_message(e: Exception, what: str) -> str:
        wrong = "wrong password" in what
        return f"check_password raised {_raised(e)} for {what}. " + (
            "A wrong password is an answer, not an error: a login endpoint turns the "
            "exception into a 500 (and a traceback in the logs) instead of a 401. "
            "Return (False, None)."
            if wrong
            else "A stored value that is not a hash at all (an empty column, the '!' "
            "that marks a disabled account, a hash cut short by a bad migration) must "
            "refuse the login, not crash it: return (False, None). Argon2 raises "
            "more than one kind of exception; which of them did you catch?"
            if "not a hash" in what
            else "A right password must log in."
        )


def _expect_upgraded(hasher: PasswordHasher, new: str | None, password: str, what: str) -> str:
    expect(
        new is not None,
        f"the right password for {what} logged in and the stored hash stayed as it was. "
        + (
            "Unsalted SHA-256 costs an attacker who steals the table a fraction of a "
            "microsecond per guess (the lesson measured millions a second on one core); "
            "the first good login is the one chance to replace it, since only then do you "
            "know the password."
            if "SHA-256" in what
            else "Raising the Argon2 parameters protects nobody until existing hashes are "
            "rehashed, and a login is the only time you can: ask the hasher whether the "
            "stored hash needs it."
        ),
    )
    assert new is not None
    try:
        hasher.verify(new, password)
        current = not hasher.check_needs_rehash(new)
    except Exception:
        raise Fail(
            f"the new hash for {what} ({new[:24]}…) does not verify with `hasher` for the "
            "same password: store what `hasher.hash(password)` gives, not a hash of a hash "
            "or of something else"
        ) from None
    expect(
        current and new.startswith("$argon2id$"),
        f"the new hash for {what} ({new[:30]}…) was not made with the parameters of "
        "`hasher`, the one the check passed: it needs rehashing again at the next login. "
        "Hash with the hasher you are given, not one of your own.",
    )
    expect(password not in new, f"the new hash for {what} contains the password itself")
    return new


@checker("security.password_storage")
def password_storage(check_password: object) -> str:
    call = _PasswordCheck(_callable(check_password, "check_password"), _current_hasher())
    hasher = call.hasher
    outdated = _outdated_hasher()
    argon2i = _current_hasher(Type.I)
    password, other = "correct horse battery", "pässwörd 🔑 2"

    def refused(stored: str, guess: str, what: str) -> None:
        ok, new = call(stored, guess, what)
        expect(not ok, f"check_password accepted {what}")
        expect(
            new is None,
            f"check_password returned a new hash for {what}: whoever guesses wrong replaces "
            "the account's password with their guess. Verify first; hash only after a "
            "right password.",
        )

    # 1. the legacy table: right passwords upgrade, wrong ones are refused
    for pw in (password, other):
        ok, new = call(_legacy(pw), pw, "a legacy SHA-256 hash with its right password")
        expect(
            ok,
            "a legacy SHA-256 hash with its right password was refused: everyone who has not "
            "logged in since the migration is locked out",
        )
        _expect_upgraded(hasher, new, pw, "a legacy SHA-256 hash")
    again = call(_legacy(password), password, "a legacy SHA-256 hash with its right password")
    first = call(_legacy(password), password, "a legacy SHA-256 hash with its right password")
    expect(
        again[1] != first[1],
        "two upgrades of the same password gave the same hash: without a random salt, users "
        "who share a password share a hash, and one guess cracks all of them",
    )
    refused(_legacy(password), password + "!", "a wrong password for a legacy SHA-256 hash")
    refused(_legacy(password), "", "a wrong (empty) password for a legacy SHA-256 hash")

    # 2. Argon2 hashes: current ones stay, older parameters and the older type upgrade
    current = hasher.hash(password)
    ok, new = call(current, password, "a current Argon2id hash with its right password")
    expect(ok, "a current Argon2id hash with its right password was refused")
    expect(
        new is None,
        "check_password returned a new hash for a hash that is already current: every login "
        "then rewrites the users table and pays for a second hash. Rehash only when the "
        "hasher says the stored hash needs it.",
    )
    refused(current, "correct horse battery ", "a wrong password for a current Argon2id hash")
    for old, what in (
        (outdated.hash(password), "an Argon2id hash made with older, cheaper parameters"),
        (argon2i.hash(password), "an Argon2i hash (the older variant)"),
    ):
        ok, new = call(old, password, f"{what} with its right password")
        expect(ok, f"{what} with its right password was refused")
        _expect_upgraded(hasher, new, password, what)
        refused(old, "Tr0ub4dor&3", f"a wrong password for {what}")

    # 3. rows that hold no valid hash at all
    for junk in (
        "",
        "!",
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$",  # cut short: no hash part
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        LEGACY_PREFIX,
        LEGACY_PREFIX + "z" * 64,
    ):
        ok, new = call(junk, password, f"a stored value that is not a hash ({junk[:20]!r})")
        expect(
            not ok and new is None,
            f"check_password({junk[:30]!r}, ...) returned {(ok, new)!r:.80}: a stored value that "
            "is not a hash must refuse the login, (False, None)",
        )
    return (
        "legacy SHA-256 and outdated Argon2 hashes are upgraded on the first right password; "
        "wrong passwords and broken rows give (False, None), never a new hash."
    )


# ==== security.injection ===============================================================
_SHOP_CUSTOMERS = [  # id, email, name, role
    (7, "admin@shop.example", "Admin", "admin"),
    (11, "ada@example.com", "Ada", "customer"),
    (12, "o'brien@example.com", "Siobhan O'Brien", "customer"),
    (13, "eve@example.com", "Eve", "customer"),
]
_SHOP_ORDERS = [  # id, customer_id, item, cents, placed_at
    (101, 11, "keyboard", 4999, "2030-01-05T10:00:00"),
    (102, 11, "cable", 899, "2030-01-02T09:30:00"),
    (103, 11, "monitor", 18900, "2030-01-09T16:45:00"),
    (104, 11, "adapter", 1450, "2030-01-07T08:15:00"),
    (105, 12, "webcam", 6500, "2030-01-03T12:00:00"),
    (106, 12, "desk", 23000, "2030-01-01T17:20:00"),
    (107, 12, "lamp", 3100, "2030-01-08T11:10:00"),
    (108, 7, "server", 990000, "2030-01-04T07:00:00"),
    (109, 13, "mouse", 2500, "2030-01-06T14:00:00"),
]
_SORTS = {"placed_at": 4, "cents": 3, "item": 2}  # the allowed sorts, and their column


def _seed_shop(engine: Engine, hasher: PasswordHasher) -> None:
    ShopBase.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        for cid, email, name, role in _SHOP_CUSTOMERS:
            session.add(
                Customer(
                    id=cid, email=email, name=name, role=role,
                    token=f"tok-{cid}-{os.urandom(6).hex()}",
                    password_hash=hasher.hash(f"pw-{cid}"),
                )
            )  # fmt: skip
        session.flush()
        for oid, cid, item, cents, placed_at in _SHOP_ORDERS:
            session.add(
                Order(
                    id=oid, customer_id=cid, item=item, cents=cents, placed_at=placed_at,
                    address=f"{cid} Example Street", status="placed", fraud_score=0.1 * cid,
                )
            )  # fmt: skip


def _expected_orders(email: str, sort: str, descending: bool) -> list[tuple[int, str, int]]:
    owner = next(c[0] for c in _SHOP_CUSTOMERS if c[1] == email)
    rows = [o for o in _SHOP_ORDERS if o[1] == owner]
    rows.sort(key=lambda o: o[_SORTS[sort]], reverse=descending)
    return [(o[0], o[2], o[3]) for o in rows]


@dataclass
class _Statements:
    sent: list[tuple[str, Any]] = field(default_factory=list)

    def record(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.sent.append((statement, parameters))


def _parameter_values(parameters: Any) -> list[Any]:
    if isinstance(parameters, dict):
        return list(parameters.values())
    if isinstance(parameters, list | tuple):
        values: list[Any] = []
        for p in parameters:
            values.extend(_parameter_values(p) if isinstance(p, dict | list | tuple) else [p])
        return values
    return []


def _rows(result: Any, call: str) -> list[tuple[Any, ...]]:
    try:
        rows = [tuple(row) for row in result]
    except TypeError:
        raise Fail(
            f"{call} returned {result!r:.80}: return a list of (id, item, cents) rows"
        ) from None
    return rows


_INJECTED_EMAILS = [
    ("' OR '1'='1", "every customer's orders"),
    ("nobody@example.com' OR 1=1 --", "every customer's orders"),
    ("x' UNION SELECT id, email, password_hash FROM customers --", "the customers table, "
     "password hashes included"),
]  # fmt: skip
_INJECTED_SORTS = [
    "password_hash",
    "email",
    "id",
    "cents DESC",
    "cents; DROP TABLE customers",
    "(SELECT password_hash FROM customers WHERE role = 'admin')",
    "CASE WHEN substr((SELECT password_hash FROM customers WHERE id = 7), 1, 1) = '$' "
    "THEN cents ELSE item END",
    "",
    "placed_at --",
]


@checker("security.injection")
def injection(orders_of: object) -> str:
    fn = _callable(orders_of, "orders_of")
    root = _scratch("prodready-injection-")
    engine = create_engine(f"sqlite:///{root / 'shop.db'}")
    try:
        _seed_shop(engine, _outdated_hasher())
        statements = _Statements()
        event.listen(engine, "before_cursor_execute", statements.record)
        with engine.connect() as conn:
            _injection_checks(fn, conn, statements)
        with engine.connect() as conn:
            left = conn.scalar(sa_select(func.count()).select_from(Customer))
        expect(left == len(_SHOP_CUSTOMERS), "after the check's calls, customers were missing")
    finally:
        engine.dispose()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return (
        "emails travel as bound parameters (quotes, ' OR '1'='1 and UNION find nothing); "
        "only the three allowed sorts reach ORDER BY."
    )


def _injection_checks(fn: Callable[..., Any], conn: Any, statements: _Statements) -> None:
    def call(email: str, **kwargs: Any) -> list[tuple[Any, ...]]:
        shown = f"orders_of(conn, {email!r}" + "".join(
            f", {k}={v!r}" for k, v in kwargs.items()
        ) + ")"  # fmt: skip
        try:
            result = fn(conn, email, **kwargs)
        except (DBAPIError, StatementError) as e:
            reason = str(getattr(e, "orig", e)).splitlines()[0]
            raise Fail(
                f"{shown} made the database fail ({reason}): the email became part of the SQL "
                "text, and a quote in it ended the string early. A real customer cannot see "
                "her orders, and an attacker can write the rest of the query."
            ) from None
        return _rows(result, shown)

    # 1. the right orders, for every allowed sort, both ways
    expected = _expected_orders("ada@example.com", "placed_at", False)
    got = call("ada@example.com")
    expect(
        got == expected,
        f"orders_of(conn, 'ada@example.com') returned {got!r:.200}; expected Ada's orders "
        f"by placed_at, oldest first: {expected!r}",
    )
    for email in ("ada@example.com", "o'brien@example.com"):
        for sort in _SORTS:
            for descending in (False, True):
                start = len(statements.sent)
                got = call(email, sort=sort, descending=descending)
                want = _expected_orders(email, sort, descending)
                expect(
                    got == want,
                    f"orders_of(conn, {email!r}, sort={sort!r}, descending={descending}) "
                    f"returned {got!r:.200}; expected {want!r}",
                )
                sent = statements.sent[start:]
                by_value = [s for s, p in sent if email in _parameter_values(p)]
                expect(
                    bool(by_value) and not any(email in s for s, _ in sent),
                    f"orders_of(conn, {email!r}, ...) sent the email inside the SQL text "
                    f"({sent[-1][0][:160] if sent else 'no statement'!r}), not as a bound "
                    "parameter. Escaping quotes by hand works until an encoding, a backslash "
                    "or another database's rules get past it; a parameter never becomes SQL.",
                )

    # 2. an attacker's email: nobody has it, so there is nothing to return
    for email, leaked in _INJECTED_EMAILS:
        got = call(email)
        expect(
            got == [],
            f"orders_of(conn, {email!r}) returned {len(got)} row(s), {got[:3]!r:.160}: "
            f"{leaked}. The email became SQL. Nobody has that email: the answer is [].",
        )

    # 3. the sort: only names from the allow-list reach ORDER BY
    for sort in _INJECTED_SORTS:
        start = len(statements.sent)
        try:
            got = fn(conn, "ada@example.com", sort=sort)
        except (DBAPIError, StatementError, sqlite3.Error) as e:
            reason = str(getattr(e, "orig", e)).splitlines()[0]
            raise Fail(
                f"orders_of(conn, 'ada@example.com', sort={sort!r}) reached the database, which "
                f"refused it ({reason}): the caller's text was put into the ORDER BY. Refuse "
                "any sort that is not one of the allowed names, before any SQL runs."
            ) from None
        except Exception:
            reached = [s for s, _ in statements.sent[start:] if sort and sort in s]
            if reached:
                raise Fail(
                    f"orders_of(..., sort={sort!r}) raised, but only after sending "
                    f"{reached[0][:120]!r} to the database"
                ) from None
            continue
        raise Fail(
            f"orders_of(conn, 'ada@example.com', sort={sort!r}) ran and returned "
            f"{_rows(got, 'orders_of')[:2]!r:.100}: a caller-chosen ORDER BY. A column that "
            "is not for sorting (password_hash) orders the rows by a secret; a CASE "
            "expression turns the order into a yes/no answer about any value in the "
            "database, one request per character. A column name cannot be a bound "
            "parameter: allow only the names the API documents, and refuse the rest "
            "(ValueError)."
        )


# ==== security.object_level_auth =======================================================
_PUBLIC_ORDER = ("id", "item", "cents", "address", "status")


def _public(order: tuple[Any, ...]) -> dict[str, Any]:
    oid, cid, item, cents, _ = order
    return {"id": oid, "item": item, "cents": cents, "address": f"{cid} Example Street",
            "status": "placed"}  # fmt: skip


@checker("security.object_level_auth")
async def object_level_auth(create_app: object) -> str:
    make_app = _callable(create_app, "create_app")
    root = _scratch("prodready-bola-")
    engine = create_engine(f"sqlite:///{root / 'shop.db'}")
    try:
        _seed_shop(engine, _outdated_hasher())
        app = make_app(engine)
        expect(hasattr(app, "router"), f"create_app must return a FastAPI app; got {app!r:.80}")
        try:
            await within(10, _bola_checks(app, engine))
        except Overran as e:
            raise Fail(f"the app was {e} while the check sent two dozen requests") from None
    finally:
        engine.dispose()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return (
        "each customer reads and changes only their own orders (404 otherwise, as for no "
        "order at all); only the address can change; no internal field leaves the API."
    )


def _order_row(engine: Engine, order_id: int) -> dict[str, Any]:
    with Session(engine) as session:
        order = session.get(Order, order_id)
        assert order is not None
        return {c: getattr(order, c) for c in ("customer_id", "address", "status", "cents",
                                                "fraud_score")}  # fmt: skip


async def _bola_checks(app: Any, engine: Engine) -> None:
    with Session(engine) as session:
        tokens = {c.id: c.token for c in session.scalars(sa_select(Customer))}
    eve, ada = {"Authorization": f"Bearer {tokens[13]}"}, {"Authorization": f"Bearer {tokens[11]}"}
    eves_order, adas_order = _SHOP_ORDERS[8], _SHOP_ORDERS[0]
    async with asgi_client(app) as client:
        r = await client.get(f"/orders/{eves_order[0]}")
        expect(
            r.status_code == 401,
            f"GET /orders/{eves_order[0]} without a token answered {r.status_code}; expected 401 "
            "(user_for_token says who is asking, and refuses whoever is not signed in)",
        )
        r = await client.get(f"/orders/{eves_order[0]}", headers=eve)
        expect(
            r.status_code == 200,
            f"Eve's GET of her own order /orders/{eves_order[0]} answered {r.status_code}: "
            f"{r.text[:160]}",
        )
        body = _json(r)
        extra = sorted(set(body) - set(_PUBLIC_ORDER)) if isinstance(body, dict) else []
        expect(
            not extra,
            f"GET /orders/{eves_order[0]} answered the field(s) {extra}: internal columns went "
            "out with the order (API3:2023, excessive data exposure). A response model "
            f"with only the public fields ({', '.join(_PUBLIC_ORDER)}) filters them.",
        )
        expect(
            body == _public(eves_order),
            f"GET /orders/{eves_order[0]} answered {body!r:.200}; expected {_public(eves_order)!r}",
        )
        missing = await client.get("/orders/999999", headers=eve)
        for label, extra_headers, params in (
            ("", {}, {}),
            (" with X-User-Id: 11", {"X-User-Id": "11"}, {}),
            (" with ?customer_id=11", {}, {"customer_id": "11"}),
        ):
            r = await client.get(
                f"/orders/{adas_order[0]}", headers={**eve, **extra_headers}, params=params
            )
            expect(
                r.status_code != 200,
                f"Eve's token{label} read Ada's order {adas_order[0]}: {r.text[:120]}. Order "
                "numbers are easy to guess (they count up), so anyone signed in reads "
                "everyone's orders, addresses included (API1:2023, broken object level "
                "authorization). The order must belong to the caller: put the owner in the "
                "query, from the token, never from what the client sends.",
            )
            expect(
                r.status_code == 404 and _json(r) == _json(missing),
                f"Eve's GET of Ada's order{label} answered {r.status_code} {r.text[:100]}, and "
                f"a GET of an order that does not exist answered {missing.status_code} "
                f"{missing.text[:100]}: the difference tells an attacker which order numbers "
                "exist. Answer both the same 404.",
            )
        r = await client.get(f"/orders/{adas_order[0]}", headers=ada)
        expect(r.status_code == 200, f"Ada's GET of her own order answered {r.status_code}")

        await _bola_patches(client, engine, eve, eves_order[0], adas_order[0])


async def _bola_patches(
    client: httpx.AsyncClient, engine: Engine, eve: dict[str, str], own: int, adas: int
) -> None:
    before = _order_row(engine, adas)
    r = await client.patch(f"/orders/{adas}", headers=eve, json={"address": "Eve's drop box"})
    expect(
        r.status_code == 404 and _order_row(engine, adas) == before,
        f"Eve's PATCH of Ada's order {adas} answered {r.status_code} and the order is now "
        f"{_order_row(engine, adas)!r:.160}: she redirected someone else's parcel. Only the "
        "owner may change an order (404 for everyone else).",
    )
    r = await client.patch(f"/orders/{own}", headers=eve, json={"address": "1 New Road"})
    expect(
        r.status_code == 200,
        f"Eve's PATCH of her own order's address answered {r.status_code}: {r.text[:160]}",
    )
    expect(
        _order_row(engine, own)["address"] == "1 New Road",
        "Eve's PATCH of her own order answered 200, but the address in the database did not "
        "change (no commit?)",
    )
    body = _json(r)
    expect(
        isinstance(body, dict) and set(body) == set(_PUBLIC_ORDER),
        f"the PATCH answered {body!r:.200}; expected the order's public fields "
        f"({', '.join(_PUBLIC_ORDER)})",
    )
    for changes, why in (
        ({"customer_id": 11}, "moves her order onto Ada's account"),
        ({"status": "refunded"}, "marks her own order refunded"),
        ({"cents": 1}, "sets her own price"),
        ({"fraud_score": 0.0}, "clears the fraud team's score"),
        ({"address": "2 Other Road", "status": "shipped"}, "ships her order early"),
    ):
        before = _order_row(engine, own)
        r = await client.patch(f"/orders/{own}", headers=eve, json=changes)
        after = _order_row(engine, own)
        expect(
            r.status_code == 422 and after == before,
            f"PATCH /orders/{own} with {changes} answered {r.status_code}, and the order "
            f"changed from {before!r:.120} to {after!r:.120}: a customer who sends a field "
            f"she may not change {why} (mass assignment, API3:2023). The body model allows "
            "the address only and refuses the rest with 422; the handler copies no other "
            "field.",
        )


# ==== security.settings ================================================================
_GOOD_SECRET = "k3rn-7Qv-" + "x9" * 16  # 41 characters
_DEV_DEFAULT = "dev-only-secret"
_SHORT_SECRET = "Zq8v-short-but-real"  # too short, and still a secret: never in a message


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.upper().startswith("SHOP_")]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class _Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(record.getMessage())
            if record.exc_info:
                self.lines.append(logging.Formatter().formatException(record.exc_info))


def _load(load_settings: Callable[[], Any], values: dict[str, str]) -> tuple[Any, str, Any]:
    """(settings or None, everything printed or logged, the exception or None)."""
    said, printed = _Said(), io.StringIO()
    root = logging.getLogger()
    level = root.level
    root.addHandler(said)
    root.setLevel(logging.DEBUG)
    try:
        with _environment(values), redirect_stdout(printed), redirect_stderr(printed):
            try:
                return load_settings(), printed.getvalue() + "\n".join(said.lines), None
            except Exception as e:
                return None, printed.getvalue() + "\n".join(said.lines), e
    finally:
        root.removeHandler(said)
        root.setLevel(level)


def _secret_value(settings: Any) -> Any:
    secret = getattr(settings, "secret_key", None)
    getter = getattr(secret, "get_secret_value", None)
    expect(
        callable(getter),
        f"settings.secret_key is {type(secret).__name__}, not a secret type: a plain str "
        "shows itself in every repr, log line and traceback that touches the settings. "
        "Pydantic's SecretStr hides it (get_secret_value() reveals it on purpose).",
    )
    assert callable(getter)
    return getter()


@checker("security.settings")
def settings(load_settings: object) -> str:
    load = _callable(load_settings, "load_settings")
    env = {"SHOP_ENVIRONMENT": "production", "SHOP_SECRET_KEY": _GOOD_SECRET,
           "SHOP_DATABASE_URL": "postgresql://shop@db.internal/shop"}  # fmt: skip
    loaded, said, error = _load(load, env)
    expect(
        error is None,
        f"load_settings() raised {_raised(error) if error else ''} in production with every "
        "variable set right",
    )
    expect(
        getattr(loaded, "environment", None) == "production"
        and getattr(loaded, "database_url", None) == env["SHOP_DATABASE_URL"],
        f"with SHOP_ENVIRONMENT and SHOP_DATABASE_URL set, the settings were {loaded!r:.160}: "
        "they must come from the environment (prefix SHOP_)",
    )
    expect(
        _secret_value(loaded) == _GOOD_SECRET,
        "settings.secret_key.get_secret_value() is not the SHOP_SECRET_KEY of the environment: "
        "a secret in the code (or a default) stays in the repository's history forever, for "
        "everyone who can read it",
    )
    for shown, text in (
        ("str(settings)", _text(str, loaded)),
        ("repr(settings)", _text(repr, loaded)),
        ("settings.model_dump_json()", _text(lambda s: s.model_dump_json(), loaded)),
        ("what load_settings printed or logged", said),
    ):
        expect(
            _GOOD_SECRET not in text and _GOOD_SECRET[:12] not in text,
            f"the secret key appeared in {shown}: {_around(text, _GOOD_SECRET[:12])}. Logs "
            "are shipped, indexed and read by many; a secret in them is a leaked secret.",
        )

    refusals = [
        ({"SHOP_ENVIRONMENT": "production"}, "in production without SHOP_SECRET_KEY"),
        ({}, "with no SHOP_ENVIRONMENT (so: production) and no SHOP_SECRET_KEY"),
        ({"SHOP_ENVIRONMENT": "production", "SHOP_SECRET_KEY": _DEV_DEFAULT},
         f"in production with the development default {_DEV_DEFAULT!r} as the secret"),
        ({"SHOP_ENVIRONMENT": "production", "SHOP_SECRET_KEY": _SHORT_SECRET},
         f"in production with a {len(_SHORT_SECRET)}-character secret"),
        ({"SHOP_ENVIRONMENT": "production", "SHOP_SECRET_KEY": ""},
         "in production with an empty SHOP_SECRET_KEY"),
        ({"SHOP_ENVIRONMENT": "staging", "SHOP_SECRET_KEY": _DEV_DEFAULT},
         "in staging with the development default as the secret"),
    ]  # fmt: skip
    for values, what in refusals:
        loaded, said, error = _load(load, values)
        expect(
            error is not None,
            f"load_settings() started {what}. Anyone who knows the default (it is in the "
            "code) can sign their own session cookies and reset tokens. Outside development, "
            "refuse to start: raise, and the deployment fails loudly instead of running "
            "open.",
        )
        secret = values.get("SHOP_SECRET_KEY", "")
        told = f"{error}\n{error!r}\n{said}"
        expect(
            secret in ("", _DEV_DEFAULT) or secret not in told,
            f"load_settings() refused to start {what}, and its error (or log) showed the "
            f"secret itself: {_around(told, secret)}. The start-up error goes to the "
            "deployment's logs. Pydantic puts each refused input into its ValidationError "
            "(input_value=...), SecretStr or not; a settings model can be told to leave the "
            "inputs out of its errors.",
        )
    for values, what in (
        ({"SHOP_ENVIRONMENT": "development"}, "in development without SHOP_SECRET_KEY"),
        ({"SHOP_ENVIRONMENT": "development", "SHOP_SECRET_KEY": "short"},
         "in development with a short secret"),
    ):  # fmt: skip
        loaded, _, error = _load(load, values)
        expect(
            error is None,
            f"load_settings() raised {_raised(error) if error else ''} {what}: on a laptop the "
            "development default is fine, and the code must run without ceremony",
        )
    loaded, _, _ = _load(load, {"SHOP_ENVIRONMENT": "development"})
    expect(
        _secret_value(loaded) == _DEV_DEFAULT and loaded.database_url == "sqlite:///shop.db",
        f"in development with nothing else set, the settings were {loaded!r:.160}; expected "
        f"the development defaults (secret {_DEV_DEFAULT!r}, database sqlite:///shop.db)",
    )
    return (
        "settings come from SHOP_* variables; the secret is a SecretStr that no repr, log or "
        "error shows; outside development a missing, short or default secret stops the start."
    )


def _text(render: Callable[[Any], str], value: Any) -> str:
    try:
        return str(render(value))
    except Exception:
        return ""


def _around(text: str, needle: str) -> str:
    at = text.find(needle)
    return repr(text[max(0, at - 40) : at + 50]) if at >= 0 else ""


# ==== the worker processes of exercises 5 and 6 =========================================
class _SharedClock:
    """A clock the check moves by hand, shared with the processes it forks (anonymous
    shared memory). It starts off a round number, in the middle of any fixed window."""

    def __init__(self, start: float = 2_000_000_000.25) -> None:
        self._memory = mmap.mmap(-1, 8)
        self.start = start
        struct.pack_into("d", self._memory, 0, 0.0)

    def __call__(self) -> float:
        return self.start + float(struct.unpack_from("d", self._memory, 0)[0])

    def advance(self, seconds: float) -> None:
        offset = struct.unpack_from("d", self._memory, 0)[0]
        struct.pack_into("d", self._memory, 0, offset + seconds)


def _quiet_child() -> None:
    """In a forked child: nothing it prints may reach the notebook (the kernel's output
    capture reads these descriptors)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _report(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data) :]


class _Pipe:
    """Lines of JSON from a child, read with a deadline (the check's own watchdog)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def read(self, deadline: float) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return {"error": "the process ended without a word"}
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message


def _stop(pids: list[int]) -> None:
    """End the check's own worker processes at once: nothing of theirs is kept."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


# ==== security.rate_limit ==============================================================
def _hit(limiter: Any, key: str, when: str) -> float | None:
    try:
        wait = limiter.hit(key)
    except Exception as e:
        raise Fail(f"limiter.hit({key!r}) raised {_raised(e)} {when}") from None
    expect(
        wait is None or (isinstance(wait, int | float) and not isinstance(wait, bool)),
        f"limiter.hit({key!r}) returned {wait!r:.60} {when}: None when the hit is allowed, "
        "otherwise the seconds to wait (a number)",
    )
    return None if wait is None else float(wait)


def _make_limiter(cls: Callable[..., Any], path: Path, limit: int, window: float,
                  clock: Callable[[], float]) -> Any:  # fmt: skip
    try:
        return cls(str(path), limit=limit, window=window, clock=clock)
    except Exception as e:
        raise Fail(
            f"SqliteLimiter({str(path)!r}, limit={limit}, window={window}, clock=...) raised "
            f"{_raised(e)}"
        ) from None


@checker("security.rate_limit")
def rate_limit(SqliteLimiter: object) -> str:
    cls = _callable(SqliteLimiter, "SqliteLimiter")
    root = _scratch("prodready-limit-")
    try:
        for limit, window in ((3, 60.0), (1, 0.5), (5, 3600.0)):
            _limit_in_one_process(cls, root / f"one-{limit}.db", limit, window)
        _limit_shared_by_instances(cls, root / "instances.db")
        if CAN_FORK:
            _limit_across_processes(cls, root / "processes.db")
        else:
            _limit_across_threads(cls, root / "threads.db")
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return (
        "the limit holds per key, across instances and processes (hits at the same moment "
        "included); the wait is right, refused hits do not extend it, and keys recover."
    )


def _limit_in_one_process(cls: Callable[..., Any], path: Path, limit: int, window: float) -> None:
    clock = _SharedClock()
    limiter = _make_limiter(cls, path, limit, window, clock)
    where = f"(limit={limit}, window={window:g} s)"
    ada = f"ada-{limit}@example.com"  # a key of its own for each limiter
    for n in range(1, limit + 1):
        wait = _hit(limiter, ada, f"at hit {n} of {limit} {where}")
        expect(
            wait is None,
            f"hit {n} of {limit} for one key was refused {where}: legitimate users are locked "
            "out before the limit",
        )
    wait = _hit(limiter, ada, f"one hit past the limit {where}")
    expect(
        wait is not None,
        f"hit {limit + 1} for one key was allowed {where}: the limit does not hold, and an "
        "online brute force runs at the speed of the server",
    )
    assert wait is not None
    expect(
        0 < wait <= window + 1e-6,
        f"a refused hit said to wait {wait:g} s {where}: the wait is what the client is told in "
        f"Retry-After, more than 0 and at most the window",
    )
    expect(
        _hit(limiter, f"bob-{limit}@example.com", f"for another key {where}") is None,
        f"another key's first hit was refused {where}: each key has its own count (one "
        "attacker must not lock every account out)",
    )
    clock.advance(wait / 2)
    later = _hit(limiter, ada, f"halfway through the wait {where}")
    expect(
        later is not None,
        f"halfway through the wait ({wait / 2:g} s after the refusal) the key was allowed again "
        f"{where}: the Retry-After was wrong, or the limiter does not use the clock it was "
        "given (the check moves it)",
    )
    clock.advance(wait / 2 + 1e-3)
    expect(
        _hit(limiter, ada, f"after waiting the Retry-After {where}") is None,
        f"after waiting the {wait:g} s it was told, the key was still refused {where}. Either "
        "the wait was too short, refused hits extended it (then an attacker keeps the owner "
        "locked out forever), or the limiter reads another clock than the `clock` it was given.",
    )
    clock.advance(window + 1)
    allowed = sum(_hit(limiter, ada, f"a whole window later {where}") is None for _ in range(limit))
    expect(
        allowed == limit,
        f"a whole window after its last hit, the key got only {allowed} of its {limit} hits "
        f"{where}: old hits must stop counting",
    )


def _limit_shared_by_instances(cls: Callable[..., Any], path: Path) -> None:
    clock = _SharedClock()
    first = _make_limiter(cls, path, 3, 60.0, clock)
    for _ in range(3):
        _hit(first, "carol@example.com", "on the first of two limiters")
    second = _make_limiter(cls, path, 3, 60.0, clock)
    expect(
        _hit(second, "carol@example.com", "on a second limiter over the same database") is not None,
        "a second SqliteLimiter over the same database file let a key through that the first "
        "had used up: the counts live in the instance, not in the database. With two "
        "worker processes (or after a restart), every worker has its own count, and an "
        "attacker gets the limit once per worker.",
    )


def _limit_across_threads(cls: Callable[..., Any], path: Path) -> None:
    """Without fork: two instances over one file, in two threads at once (weaker)."""
    clock = _SharedClock()
    limiters = [_make_limiter(cls, path, 4, 60.0, clock) for _ in range(2)]
    allowed: list[list[bool]] = [[], []]
    errors: list[str] = []
    start = threading.Barrier(2)

    def run(n: int) -> None:
        try:
            start.wait(5)
            for key in range(12):
                for _ in range(6):
                    allowed[n].append(limiters[n].hit(f"k{key}") is None)
        except Exception as e:
            errors.append(_raised(e))

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    expect(not any(t.is_alive() for t in threads), "limiter.hit() was still running after 20 s")
    expect(not errors, f"limiter.hit() raised {errors[0] if errors else ''} with two at once")
    per_key = [[allowed[n][i : i + 6] for i in range(0, 72, 6)] for n in range(2)]
    _expect_exact_counts(per_key[0], per_key[1], 4, "two threads")


_RACES = 4  # keys brought to one hit below the limit, then hit by both processes at once
_STATEMENT_PAUSE = 0.02  # seconds each SQLite statement waits before it runs, in the races


def _pause_before_each_statement(pausing: threading.Event) -> None:
    """In a forked child: every SQLite connection opened from now on waits a moment before
    each statement it runs, while `pausing` is set. Released at the same instant, two
    processes then interleave their statements, read, read, write, write, however busy the
    machine is (left to the scheduler, a loaded machine often runs one process's hit
    before the other's starts, and a two-step count passes). One atomic statement, or
    statements inside one write transaction, stay correct at any pace."""
    connect = sqlite3.connect

    def pause(statement: str) -> None:
        if pausing.is_set():
            time.sleep(_STATEMENT_PAUSE)

    def connect_and_pause(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = connect(*args, **kwargs)
        connection.set_trace_callback(pause)
        return connection

    sqlite3.connect = connect_and_pause  # type: ignore[assignment]


def _limit_across_processes(cls: Callable[..., Any], path: Path) -> None:
    """Two forked processes, each with its own limiter over one file. First both hit a dozen
    keys as fast as they can; then, key by key, the check brings a key to one hit below its
    limit and releases both processes at the same instant (a pipe they both wait on) for
    two hits each: exactly one of the four may pass. A count read and then written in two
    steps lets two through when both read before either writes: in the races, every
    statement waits a moment first, so both do."""
    clock = _SharedClock()  # it never moves here: every hit lands in the same window
    keys, per_key, limit = 12, 6, 4
    mine = _make_limiter(cls, path, limit, 60.0, clock)  # the tables exist before forking
    # Each round, every child first waits on a pipe of its own ("arm"), says so, then waits
    # on the one "go" pipe they share: one write of a byte each releases both at the same
    # instant. Without the arm step, a quick child could come back for the next round and
    # take the other's byte of this one, and the other would wait for a byte never sent.
    arms = [os.pipe() for _ in range(2)]
    go_read, go_write = os.pipe()
    pipes, pids = [], []

    def child(arm: int, write_end: int) -> None:
        def wait_for_the_signal() -> None:
            os.read(arm, 1)
            _report(write_end, {"armed": True})
            os.read(go_read, 1)

        pausing = threading.Event()
        _pause_before_each_statement(pausing)  # SQLAlchemy's engines connect through it too
        limiter = cls(str(path), limit=limit, window=60.0, clock=clock)
        _report(write_end, {"ready": True})
        wait_for_the_signal()
        allowed = [[limiter.hit(f"k{key}") is None for _ in range(per_key)] for key in range(keys)]
        _report(write_end, {"allowed": allowed})
        pausing.set()
        for race in range(_RACES):
            wait_for_the_signal()
            _report(write_end, {"race": [limiter.hit(f"race{race}") is None for _ in range(2)]})

    try:
        for arm_read, _ in arms:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: its own limiter, as each worker process has
                try:
                    _quiet_child()
                    os.close(read_end)
                    child(arm_read, write_end)
                except BaseException as e:
                    _report(write_end, {"error": _raised(e)})
                finally:
                    os._exit(0)
            os.close(write_end)
            pipes.append(_Pipe(read_end))
            pids.append(pid)
        deadline = time.monotonic() + 10
        for pipe in pipes:
            _expect_from_child(pipe.read(deadline), "building a SqliteLimiter")

        def release_both() -> float:
            deadline = time.monotonic() + 10  # each round has its own 10 s
            for _, arm_write in arms:
                os.write(arm_write, b"a")
            for pipe in pipes:
                _expect_from_child(pipe.read(deadline), "getting ready")
            os.write(go_write, b"gg")
            return deadline

        deadline = release_both()  # both start hitting at the same moment
        results = [_expect_from_child(p.read(deadline), "hitting") for p in pipes]
        _expect_exact_counts(results[0]["allowed"], results[1]["allowed"], limit, "two processes")
        for race in range(_RACES):
            for _ in range(limit - 1):
                _hit(mine, f"race{race}", "from the check's own limiter")
            deadline = release_both()
            both = [_expect_from_child(p.read(deadline), "hitting")["race"] for p in pipes]
            passed = sum(both[0]) + sum(both[1])
            expect(
                passed <= 1,
                f"a key one hit below its limit of {limit} was hit twice by each of two processes "
                f"at the same instant, and {passed} hits passed. Reading the count and writing "
                "it are two steps, and the other process writes in between. Make the check and "
                "the count one atomic statement (INSERT ... ON CONFLICT DO UPDATE ... "
                "RETURNING), or one write transaction (BEGIN IMMEDIATE).",
            )
            expect(
                passed == 1,
                f"a key one hit below its limit of {limit} was hit by two processes at once and "
                "no hit passed: the last allowed hit was refused (a busy database taken as "
                "'refuse'?)",
            )
    finally:
        _stop(pids)
        for fd in (go_read, go_write, *(fd for arm in arms for fd in arm), *(p.fd for p in pipes)):
            with contextlib.suppress(OSError):
                os.close(fd)


def _expect_from_child(message: dict[str, Any] | None, doing: str) -> dict[str, Any]:
    expect(
        message is not None,
        f"a worker process was still {doing} after 10 s (a lock that is never released? a "
        "database locked without a busy timeout?)",
    )
    assert message is not None
    expect(
        "error" not in message,
        f"in a second worker process, {doing} raised {message.get('error')}",
    )
    return message


def _expect_exact_counts(
    first: list[list[bool]], second: list[list[bool]], limit: int, who: str
) -> None:
    totals = [sum(a) + sum(b) for a, b in zip(first, second, strict=True)]
    over = [t for t in totals if t > limit]
    expect(
        not over,
        f"{who} hit {len(totals)} keys at once, {2 * len(first[0])} hits per key with a limit "
        f"of {limit}; {len(over)} key(s) let {max(over, default=0)} hits through. "
        + (
            "Each process counted on its own: a counter in memory (a dict, an attribute) "
            "is one counter per worker, so two workers give an attacker twice the limit."
            if max(over, default=0) >= 2 * limit
            else "Reading the count and writing it are two steps, and the other process "
            "writes in between. Make the check and the count one atomic statement "
            "(INSERT ... ON CONFLICT DO UPDATE ... RETURNING), or one write transaction "
            "(BEGIN IMMEDIATE)."
        ),
    )
    under = [t for t in totals if t < limit]
    expect(
        not under,
        f"{who} hit {len(totals)} keys at once with a limit of {limit}; {len(under)} key(s) "
        f"allowed only {min(under, default=0)} hits: allowed hits were refused (a busy "
        "database taken as 'refuse'?)",
    )


# ==== security.hardened_login (the mini-task) ===========================================
_PASSWORD = "blue-otter-cactus-42"
_ACCOUNT_LIMIT, _ADDRESS_LIMIT, _WINDOW = 3, 5, 60.0
_REQUEST_TIMEOUT = 5.0
_MINITASK_LIMIT = 40.0


@dataclass
class _World:
    settings: AuthSettings
    clock: _SharedClock
    ids: dict[str, int]
    retry_after: int = 0  # the first Retry-After of the brute force


def _accounts(n: int) -> list[str]:
    return [f"user{i:02d}@example.com" for i in range(n)]


def _world(
    root: Path, name: str, hasher: PasswordHasher, good: str, trusted: frozenset[str]
) -> _World:
    path = root / f"{name}.db"
    emails = _accounts(40)
    create_accounts_db(path, [(e, e.split("@")[0].title(), good) for e in emails])
    clock = _SharedClock()
    settings = AuthSettings(
        database=str(path), hasher=hasher, account_limit=_ACCOUNT_LIMIT,
        address_limit=_ADDRESS_LIMIT, window=_WINDOW, clock=clock, trusted_proxies=trusted,
    )  # fmt: skip
    return _World(settings, clock, {e: i + 1 for i, e in enumerate(emails)})


@contextlib.contextmanager
def _workers(
    make_app: Callable[..., Any], settings: AuthSettings
) -> Iterator[Callable[[], list[str]]]:
    """Two workers that serve the learner's app over one database: forked processes where
    the system can fork, two instances in this process where it cannot. Yields `ready()`,
    which waits until both serve and returns their URLs: forked workers start at once, so
    the check can work in this process meanwhile."""
    if not CAN_FORK:
        with contextlib.ExitStack() as servers:
            yield lambda: [servers.enter_context(_thread_server(make_app, settings)) for _ in "12"]
        return
    _preload_uvicorn()
    sockets = []
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sockets.append(sock)
    urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    pids: list[int] = []
    pipes: list[_Pipe] = []

    def ready() -> list[str]:
        deadline = time.monotonic() + 15
        for pipe in pipes:
            message = pipe.read(deadline)
            expect(
                message is not None,
                "a worker process had not started the app 15 s after it began (does "
                "create_app or the lifespan wait for something that never comes?)",
            )
            assert message is not None
            expect(
                "error" not in message,
                f"in a worker process, starting the app failed: {message.get('error')}",
            )
        return urls

    try:
        for sock in sockets:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                _worker_child(make_app, settings, sock, sockets, read_end, write_end)
            os.close(write_end)
            pids.append(pid)
            pipes.append(_Pipe(read_end))
        for sock in sockets:
            sock.close()  # a worker that dies now refuses connections at once
        yield ready
    finally:
        _stop(pids)
        for sock in sockets:
            sock.close()
        for pipe in pipes:
            with contextlib.suppress(OSError):
                os.close(pipe.fd)


def _preload_uvicorn() -> None:
    """Import what uvicorn loads when it starts, once, before forking: otherwise each
    worker imports it again (a second or more on a busy machine)."""
    import importlib

    for name in ("uvicorn", "uvicorn.lifespan.on", "uvicorn.loops.auto",
                 "uvicorn.protocols.http.auto", "uvicorn.protocols.websockets.auto",
                 "uvicorn.protocols.http.h11_impl"):  # fmt: skip
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _uvicorn_config(app: Any) -> Any:
    """uvicorn as the check runs it: the app sees the connection's own address. (uvicorn's
    default, proxy_headers=True, rewrites the client address from X-Forwarded-For for
    connections from 127.0.0.1, and the check's attacker connects from 127.0.0.1.)"""
    import uvicorn

    return uvicorn.Config(
        app, log_level="critical", lifespan="on", timeout_graceful_shutdown=1,
        proxy_headers=False, log_config=None,  # leave the process's logging as it is
    )  # fmt: skip


@contextlib.contextmanager
def _thread_server(make_app: Callable[..., Any], settings: AuthSettings) -> Iterator[str]:
    """One instance of the app on uvicorn in a thread of this process (where fork is not)."""
    import uvicorn

    server = uvicorn.Server(_uvicorn_config(_built(make_app, settings)))
    server.config.port = 0
    thread = threading.Thread(target=server.run, name=SERVER_THREAD, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise Fail("the app did not start under uvicorn (does its lifespan raise?)")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _built(make_app: Callable[..., Any], settings: AuthSettings) -> Any:
    try:
        app = make_app(settings)
    except Exception as e:
        raise Fail(f"create_app(settings) raised {_raised(e)}") from None
    expect(hasattr(app, "router"), f"create_app must return a FastAPI app; got {app!r:.80}")
    return app


def _worker_child(
    make_app: Callable[..., Any], settings: AuthSettings, sock: socket.socket,
    sockets: list[socket.socket], read_end: int, write_end: int,
) -> None:  # fmt: skip
    """A forked worker: build the app from the learner's factory, serve it on `sock`."""
    try:
        _quiet_child()
        os.close(read_end)
        for other in sockets:
            if other is not sock:
                other.close()
        import uvicorn

        server = uvicorn.Server(_uvicorn_config(make_app(settings)))

        def tell_when_started() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.005)
            _report(write_end, {"started": True} if server.started else
                    {"error": "the app's lifespan failed at startup"})  # fmt: skip

        threading.Thread(target=tell_when_started, daemon=True).start()
        server.run(sockets=[sock])
        if not server.started:
            _report(write_end, {"error": "the app's lifespan failed at startup"})
    except BaseException as e:
        _report(write_end, {"error": _raised(e)})
    finally:
        os._exit(0)


class _Attacker:
    """The check's HTTP client: bounded requests to the workers, each with a deadline."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.turn = 0
        self.client = httpx.Client(timeout=_REQUEST_TIMEOUT)

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, *, address: str | None = None,
                worker: int | None = None, **kwargs: Any) -> httpx.Response:  # fmt: skip
        if worker is None:
            worker, self.turn = self.turn % len(self.urls), self.turn + 1
        headers = dict(kwargs.pop("headers", {}))
        if address is not None:
            headers["X-Forwarded-For"] = f"203.0.113.250, {address}"
        try:
            return self.client.request(method, self.urls[worker] + path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise Fail(
                f"{method} {path} did not answer within {_REQUEST_TIMEOUT:g} s (a lock that is "
                "never released? a limiter that waits instead of refusing?)"
            ) from None
        except httpx.TransportError as e:
            raise Fail(f"{method} {path} failed: {_raised(e)} (did the worker crash?)") from None

    def login(self, email: str, password: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", "/login", json={"email": email, "password": password},
                            **kwargs)  # fmt: skip


@checker("security.hardened_login")
def hardened_login(create_app: object) -> str:
    make_app = _callable(create_app, "create_app")
    root = _scratch("prodready-login-")
    fast = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)  # for the limits
    hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # some ms a check
    good, fast_good = hasher.hash(_PASSWORD), fast.hash(_PASSWORD)
    proxy = frozenset({"127.0.0.1"})  # the check is the reverse proxy
    try:
        behind_proxy = _world(root, "proxy", fast, fast_good, proxy)
        timing = _world(root, "timing", hasher, good, proxy)
        direct = _world(root, "direct", fast, fast_good, frozenset())
        with _workers(make_app, behind_proxy.settings) as ready:
            # while the forked workers start: the attacks that run in this process
            _in_process(make_app, timing, lambda login: _timing_probe(login, hasher, good))
            _in_process(make_app, direct, _spoofed_addresses)
            attacker = _Attacker(ready())
            try:
                _legitimate_and_cross_user(attacker, behind_proxy)
                _injection_attempts(attacker, behind_proxy)
                _brute_force(attacker, behind_proxy)
                _password_spraying(attacker, behind_proxy)
                _recovery(attacker, behind_proxy)
            finally:
                attacker.close()
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return (
        "the attack run got nothing: no injection, no cross-account read, no timing "
        "difference; 429 with Retry-After per account and per address across two workers, "
        "and locked-out users recover after the window."
    )


_Login = Callable[..., Awaitable[httpx.Response]]


def _in_process(
    make_app: Callable[..., Any], world: _World, attack: Callable[[_Login], Awaitable[None]]
) -> None:
    """Run `attack` against one instance of the app in this process, over ASGI (its client
    address is 127.0.0.1), under the check's watchdog."""
    app = _built(make_app, world.settings)

    async def run() -> None:
        async with asgi_client(app) as client:

            async def login(
                email: str, password: str, address: str | None = None
            ) -> httpx.Response:
                headers = (
                    {} if address is None else {"X-Forwarded-For": f"203.0.113.250, {address}"}
                )
                return await client.post(
                    "/login", json={"email": email, "password": password}, headers=headers
                )

            await attack(login)

    try:
        run_in_fresh_loop(lambda: within(_MINITASK_LIMIT / 2, run()))
    except Overran as e:
        raise Fail(f"the app was {e} while the check sent two dozen logins") from None


def _token(response: httpx.Response, who: str) -> str:
    expect(
        response.status_code == 200,
        f"{who} logged in with the right password and got {response.status_code}: "
        f"{response.text[:160]}",
    )
    body = _json(response)
    expect(
        isinstance(body, dict) and isinstance(body.get("token"), str) and body["token"],
        f'a successful login answered {body!r:.120}; expected {{"token": ...}}',
    )
    return str(body["token"])


def _legitimate_and_cross_user(attacker: _Attacker, world: _World) -> None:
    emails = _accounts(40)
    ada, bob = emails[0], emails[1]
    token = _token(attacker.login(ada, _PASSWORD, address="198.51.100.10"), "a user")
    me = {"Authorization": f"Bearer {token}"}
    own = attacker.request("GET", f"/accounts/{world.ids[ada]}", headers=me)
    expect(
        own.status_code == 200
        and _json(own) == {"id": world.ids[ada], "email": ada, "name": "User00"},
        f"GET /accounts/{world.ids[ada]} with its owner's token answered {own.status_code} "
        f"{own.text[:160]}; expected {{'id', 'email', 'name'}} of the account (and never its "
        "password hash)",
    )
    missing = attacker.request("GET", "/accounts/99999", headers=me)
    other = attacker.request("GET", f"/accounts/{world.ids[bob]}", headers=me)
    expect(
        other.status_code == 404 and _json(other) == _json(missing),
        f"GET /accounts/{world.ids[bob]} (someone else's account) with a user's token answered "
        f"{other.status_code} {other.text[:120]}; an account that does not exist answered "
        f"{missing.status_code} {missing.text[:80]}. Every signed-in user can read every "
        "account (API1:2023). Take the account from the token, and answer others' accounts "
        "with the same 404 as missing ones.",
    )
    for headers, what in (
        ({}, "no token"),
        ({"Authorization": "Bearer forged"}, "a made-up token"),
    ):
        r = attacker.request("GET", f"/accounts/{world.ids[ada]}", headers=headers)
        expect(r.status_code == 401, f"GET /accounts/{world.ids[ada]} with {what} answered "
               f"{r.status_code}; expected 401")  # fmt: skip


def _injection_attempts(attacker: _Attacker, world: _World) -> None:
    victim = world.ids[_accounts(40)[1]]
    planted = world.settings.hasher.hash("pwned")
    for n, email in enumerate(
        (
            f"nobody@example.com' UNION SELECT {victim}, '{planted}' --",
            f"nobody@example.com' UNION SELECT {victim}, '{planted}', 'x', 'y' --",
            "' OR '1'='1' --",
        )
    ):
        r = attacker.login(email, "pwned", address=f"198.51.100.{20 + n}")
        expect(
            r.status_code != 200,
            f"POST /login with the email {email[:60]!r}… and the password 'pwned' logged in "
            f"({r.text[:80]}): the email became SQL, and the UNION handed the server a hash "
            "the attacker made, for someone else's account id. Bound parameters, never an "
            "f-string in text().",
        )
        expect(r.status_code in (401, 422, 429), f"POST /login with an injected email answered "
               f"{r.status_code}: {r.text[:120]}")  # fmt: skip


def _cpu_cost(hasher: PasswordHasher, good: str) -> float:
    """The CPU time of one password check: the least of five, since whatever else the
    process does while it runs only ever adds to it."""
    timings = []
    for _ in range(5):
        cpu = time.process_time()
        with contextlib.suppress(Exception):
            hasher.verify(good, "not the password")
        timings.append(time.process_time() - cpu)
    return min(timings)


async def _timing_round(login: _Login, known: list[str], round_: int) -> tuple[float, float]:
    """One round of the probe: the least CPU time an unknown email's login cost the process
    and the least a wrong password's did, interleaved in random order, each login from an
    address of its own. Each login's answer is checked too.

    The least, not the median: the clock counts every thread of the process, and another
    thread's work (the kernel's output, an earlier check's server winding down) only ever
    adds to a login's time, in bursts that can cover half a round. The least of nine is
    the login's own work."""
    order = [("unknown", n) for n in range(len(known))] + [("known", n) for n in range(len(known))]
    random.Random(9 + round_).shuffle(order)
    first_address = 100 + round_ * len(order)
    seconds: dict[str, list[float]] = {"unknown": [], "known": []}
    answers: dict[str, set[tuple[int, str]]] = {"unknown": set(), "known": set()}
    with gc_paused():
        for n, (kind, i) in enumerate(order):
            email = known[i] if kind == "known" else f"nobody{i:02d}@example.com"
            cpu = time.process_time()
            r = await login(email, "wrong-guess-123", address=f"192.0.2.{first_address + n}")
            seconds[kind].append(time.process_time() - cpu)
            answers[kind].add((r.status_code, r.text))
    statuses = {status for kind in answers.values() for status, _ in kind}
    expect(
        429 not in statuses,
        f"the timing probe's logins each came from an address of its own (the last entry of "
        f"X-Forwarded-For, from the trusted proxy 127.0.0.1) and went to an account of its "
        f"own, and some got 429 ({sorted(statuses)}): the attempts were counted against an "
        "address they all share. The entries before the last one are whatever the client "
        "wrote; the last one is what the proxy saw.",
    )
    expect(
        answers["unknown"] == answers["known"] and len(answers["known"]) == 1,
        f"a wrong password answered {sorted(answers['known'])!r:.120} and an unknown email "
        f"{sorted(answers['unknown'])!r:.120}: the answer itself tells who has an account. "
        "Answer both with the same 401.",
    )
    return min(seconds["unknown"]), min(seconds["known"])


async def _timing_probe(login: _Login, hasher: PasswordHasher, good: str) -> None:
    """Unknown emails against wrong passwords, interleaved in random order: the least CPU
    time each kind of answer costs this process. Wall-clock times on a loaded 2-core
    machine vary by tens of milliseconds from one request to the next, so two dozen of
    them prove nothing either way; an attacker averages thousands. The work does not
    vary: a password check costs the same CPU time however busy the machine is."""
    cost = _cpu_cost(hasher, good)
    known = _accounts(40)[10:19]  # 9 of each kind
    # A real difference is one whole password check, in every round; noise is not. So a
    # round that shows a difference is measured again, and only three agreeing fail.
    for round_ in range(3):
        unknown, wrong = await _timing_round(login, known, round_)
        if abs(unknown - wrong) < cost / 2:
            break
    expect(
        abs(unknown - wrong) < cost / 2,
        f"an unknown email cost the server at least {unknown * 1000:.1f} ms of CPU time (the "
        f"least of {len(known)}; 3 rounds agreed) and a wrong password "
        f"{wrong * 1000:.1f} ms: a difference of "
        f"{abs(unknown - wrong) * 1000:.1f} ms, where one password check costs "
        f"{cost * 1000:.1f} ms and the bound is half of that. An attacker who averages enough "
        "response times sees the same difference, learns which emails have an account (user "
        "enumeration), and aims the brute force at them. Do the same work either way: when "
        "there is no such user, verify against a dummy hash made once with the same hasher "
        "(sleeping to pad the time is not the same work: under load, the real check outlasts "
        "the pad).",
    )


def _retry_after(response: httpx.Response, what: str) -> int:
    value = response.headers.get("Retry-After")
    expect(
        value is not None,
        f"{what} answered 429 without a Retry-After header: a well-behaved client (and a "
        "user) cannot tell when to try again, so it retries at once",
    )
    assert value is not None
    expect(
        value.strip().isdigit() and 1 <= int(value) <= math.ceil(_WINDOW) + 1,
        f"{what} answered Retry-After: {value!r}; expected whole seconds, at least 1 and at "
        f"most the window ({_WINDOW:g} s, rounded up)",
    )
    return int(value)


def _brute_force(attacker: _Attacker, world: _World) -> None:
    victim = _accounts(40)[2]
    statuses = []
    first_retry: int | None = None
    guesses = 2 * _ACCOUNT_LIMIT + 2  # with a count per worker, both workers' 429s show
    for n in range(guesses):  # each guess from a new address, the workers in turn
        r = attacker.login(victim, f"guess-{n}", address=f"198.51.100.{100 + n}")
        statuses.append(r.status_code)
        if r.status_code == 429 and first_retry is None:
            first_retry = _retry_after(r, f"guess {n + 1} at one account")
    expect(
        statuses[:_ACCOUNT_LIMIT] == [401] * _ACCOUNT_LIMIT,
        f"the first {_ACCOUNT_LIMIT} wrong guesses at one account, each from a new client "
        f"address, answered {statuses[:_ACCOUNT_LIMIT]}; expected 401 each "
        f"(account_limit={_ACCOUNT_LIMIT}). A 429 this early means the attempts were counted "
        "against an address they share: behind the proxy, the client's address is the last "
        "entry of X-Forwarded-For (the proxy wrote it); the entries before it are whatever "
        "the client sent.",
    )
    expect(
        statuses[_ACCOUNT_LIMIT:] == [429] * (guesses - _ACCOUNT_LIMIT),
        f"{guesses} guesses at one account from {guesses} addresses, sent to two worker "
        f"processes in turn, answered {statuses}; with account_limit={_ACCOUNT_LIMIT}, every "
        "guess past the limit must get 429. "
        + (
            "Each worker counted on its own (a counter in memory is one counter per "
            "process): keep the counts in the database both workers share."
            if 429 in statuses
            else "Nothing limited them: an attacker who rotates addresses is not slowed at "
            "all unless the account itself is limited."
        ),
    )
    r = attacker.login(victim, _PASSWORD, address="198.51.100.200")
    expect(
        r.status_code == 429,
        f"during the lockout the right password logged in ({r.status_code}): a locked "
        "account must refuse every attempt until its window ends, without checking the "
        "password, or the brute force goes on and its lucky guess gets in",
    )
    burst_victim = _accounts(40)[3]

    def attempt(n: int) -> int:
        return attacker.login(burst_victim, f"burst-{n}", address=f"198.51.100.{150 + n}",
                              worker=n % 2).status_code  # fmt: skip

    with _thread_pool(6) as pool:
        burst = list(pool.map(attempt, range(6)))
    checked = burst.count(401)
    expect(
        checked <= _ACCOUNT_LIMIT and set(burst) <= {401, 429},
        f"6 guesses at one account at the same moment, over two workers, answered {burst}: "
        f"{checked} passwords were checked, with account_limit={_ACCOUNT_LIMIT}. The count is "
        "read, then written, in two steps, and concurrent requests slip between them. Count "
        "and decide in one atomic statement (INSERT ... ON CONFLICT DO UPDATE ... RETURNING).",
    )
    assert first_retry is not None
    world.retry_after = first_retry


@contextlib.contextmanager
def _thread_pool(n: int) -> Iterator[Any]:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        yield pool


def _password_spraying(attacker: _Attacker, world: _World) -> None:
    sprayed = _accounts(40)[30 : 30 + _ADDRESS_LIMIT + 1]
    statuses = [attacker.login(email, "Winter2030!", address="198.51.100.77").status_code
                for email in sprayed]  # fmt: skip
    expect(
        statuses == [401] * _ADDRESS_LIMIT + [429],
        f"one client address tried one password on {len(sprayed)} accounts (password "
        f"spraying) and got {statuses}; with address_limit={_ADDRESS_LIMIT}, the attempt past "
        "the limit must get 429. A per-account limit alone never sees an attacker who tries "
        "each account once. "
        + (
            "Behind the trusted proxy (127.0.0.1, here), the client's address is the last "
            "one in X-Forwarded-For."
            if statuses.count(429) == 0
            else ""
        ),
    )
    other = attacker.login(_accounts(40)[36], "Winter2030!", address="198.51.100.78")
    expect(
        other.status_code == 401,
        f"another client address, under its limit, got {other.status_code} for its first "
        "attempt: the address limit must count per address (behind the proxy, the last "
        "entry of X-Forwarded-For), not for everyone at once",
    )
    owner = attacker.login(sprayed[0], _PASSWORD, address="198.51.100.90")
    _token(owner, "the owner of a sprayed account, from her own address,")


def _recovery(attacker: _Attacker, world: _World) -> None:
    wait = world.retry_after
    world.clock.advance(wait + 0.5)
    for email in (_accounts(40)[2], _accounts(40)[3]):
        r = attacker.login(email, _PASSWORD, address="198.51.100.201")
        expect(
            r.status_code == 200,
            f"{wait} s after the lockout (the Retry-After it was given), the account's owner "
            f"still got {r.status_code}: locked-out users must recover when the window ends. "
            "Does the app tell the time with settings.clock (the check moves it)?",
        )


async def _spoofed_addresses(login: _Login) -> None:
    """No trusted proxy: made-up X-Forwarded-For headers must not escape the address limit."""
    accounts = _accounts(40)
    statuses = []
    for n, email in enumerate(accounts[10 : 10 + _ADDRESS_LIMIT + 2]):
        r = await login(email, "Winter2030!", address=f"10.{n}.{n}.{n}")
        statuses.append(r.status_code)
    if statuses[_ADDRESS_LIMIT:] == [429, 429]:
        return
    plain = [(await login(email, "Winter2030!")).status_code for email in accounts[20:27]]
    expect(
        429 in plain,
        f"one client address tried one password on {len(plain)} accounts (password "
        f"spraying) and got {plain}; with address_limit={_ADDRESS_LIMIT}, the attempts past "
        "the limit must get 429. A per-account limit alone never sees an attacker who tries "
        "each account once.",
    )
    raise Fail(
        f"with no trusted proxy, one client sent {len(statuses)} attempts, each with a "
        f"different made-up X-Forwarded-For, and got {statuses}: the app believed the "
        "header, so an attacker escapes the address limit by writing a new address into "
        "each request. Read X-Forwarded-For only from a trusted proxy; otherwise the "
        "client's address is the connection's."
    )
