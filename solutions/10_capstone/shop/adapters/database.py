"""Two engines on one SQLite file. SQLite has one writer at a time, so the writer engine has
one connection: requests queue for it in the pool (in order, and quickly) instead of
sleeping in SQLite's busy handler. Every write transaction starts with BEGIN IMMEDIATE, so it
never fails with "database is locked" halfway (another process, the worker, may be writing).
Readers use WAL snapshots: they never block the writer, a long export included."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event

BUSY_TIMEOUT_MS = 10_000


def _engine(path: str, begin: str, pool_size: int) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}", pool_size=pool_size, max_overflow=0, pool_timeout=10,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )  # fmt: skip

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not the driver, sends BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable when the process crashes
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def start(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def writer_engine(path: str) -> Engine:
    return _engine(path, "BEGIN IMMEDIATE", pool_size=1)


def reader_engine(path: str) -> Engine:
    return _engine(path, "BEGIN", pool_size=8)
