"""Module 02's headline figures: medians of 5 runs on SQLite files in a scratch folder.

Run: .venv/bin/python benchmarks/bench_sessions.py
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, insert, select, update
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, selectinload, sessionmaker

from prodready._checks.sessions import Account, Author, Base, Book, Reading
from prodready._course import scratch_dir

RUNS = 5
ROWS = 200
AUTHORS = 50


def median_seconds(work: Callable[[], object], runs: int = RUNS) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def new_engine(name: str, **options: Any) -> Engine:
    engine = create_engine(f"sqlite:///{scratch_dir('prodready-bench-')}/{name}.db", **options)
    Base.metadata.create_all(engine)
    return engine


def imports() -> None:
    engine = new_engine("import")
    factory = sessionmaker(engine)
    rows: list[dict[str, Any]] = [{"sensor": f"t-{i % 17}", "value": i / 4} for i in range(ROWS)]

    def per_row() -> None:
        for row in rows:
            with factory.begin() as session:
                session.add(Reading(**row))

    def one_transaction() -> None:
        with factory.begin() as session:
            session.add_all(Reading(**row) for row in rows)

    def bulk() -> None:
        with factory.begin() as session:
            session.execute(insert(Reading), rows)

    slow = median_seconds(per_row)
    middle = median_seconds(one_transaction)
    fast = median_seconds(bulk)
    engine.dispose()
    print(f"import of {ROWS} rows, median of {RUNS} runs:")
    print(f"  commit per row      {slow * 1000:9.1f} ms")
    print(f"  one transaction     {middle * 1000:9.1f} ms   ({slow / middle:.0f}x faster)")
    print(f"  bulk insert()       {fast * 1000:9.1f} ms   ({slow / fast:.0f}x faster)")
    print(f"  bulk faster by >=10x: {slow / fast >= 10}")


def n_plus_one() -> None:
    engine = new_engine("library")
    with Session(engine) as session, session.begin():
        session.add_all(
            Author(name=f"A{a}", books=[Book(title=f"B{a}-{b}") for b in range(3)])
            for a in range(AUTHORS)
        )
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    def report(eager: bool) -> Callable[[], object]:
        query = select(Author)
        if eager:
            query = query.options(selectinload(Author.books))

        def run() -> object:
            with Session(engine) as session:
                return {a.name: [b.title for b in a.books] for a in session.scalars(query)}

        return run

    figures = {}
    for eager in (False, True):
        statements = 0
        event.listen(engine, "before_cursor_execute", count)
        report(eager)()
        event.remove(engine, "before_cursor_execute", count)
        figures[eager] = (statements, median_seconds(report(eager)))
    engine.dispose()
    (lazy_n, lazy_s), (eager_n, eager_s) = figures[False], figures[True]
    print(f"report over {AUTHORS} authors, median of {RUNS} runs:")
    print(f"  lazy loading   {lazy_n:3d} statements {lazy_s * 1000:7.1f} ms")
    print(f"  selectinload   {eager_n:3d} statements {eager_s * 1000:7.1f} ms")
    print(f"  ratio: {lazy_n / eager_n:.1f}x statements, {lazy_s / eager_s:.1f}x time")


def checked_out(engine: Engine) -> int:
    return int(engine.pool.checkedout())  # type: ignore[attr-defined]


def pool() -> None:
    engine = new_engine("pool", pool_size=2, max_overflow=0, pool_timeout=1)
    factory = sessionmaker(engine)
    leaked: list[Session] = []
    gc.disable()
    try:
        failed_after: float | None = None
        for _ in range(3):
            session = factory()
            leaked.append(session)
            started = time.perf_counter()
            try:
                session.scalar(select(func.count()).select_from(Author))
            except PoolTimeout:
                failed_after = time.perf_counter() - started
        leaked_count = checked_out(engine)
    finally:
        for session in leaked:
            session.close()
        gc.enable()

    def fifty_requests() -> None:
        for _ in range(50):
            with factory() as session:
                session.scalar(select(func.count()).select_from(Author))

    fixed = median_seconds(fifty_requests)
    print("pool of 2, no overflow, pool_timeout=1:")
    if failed_after is not None:
        print(f"  leaky handler: {leaked_count} checked out, request 3 failed after "
              f"{failed_after:.2f} s")  # fmt: skip
    print(f"  with Session(...) as session: 50 requests in {fixed * 1000:.1f} ms (median), "
          f"{checked_out(engine)} checked out")  # fmt: skip
    engine.dispose()


def lost_updates(threads: int = 4, transfers: int = 25) -> None:
    """Transfers of 1 from one account, from several threads at once, with no choreography:
    how many debits a read-modify-write loses by chance, against a relative UPDATE."""
    engine = new_engine("race", connect_args={"timeout": 60})  # writers queue, never give up
    factory = sessionmaker(engine)

    def read_modify_write() -> None:
        with factory.begin() as session:
            source, target = session.get(Account, 1), session.get(Account, 2)
            assert source is not None and target is not None
            source.balance -= 1
            target.balance += 1

    def relative_update() -> None:
        with factory.begin() as session:
            session.execute(
                update(Account).where(Account.id == 1).values(balance=Account.balance - 1)
            )
            session.execute(
                update(Account).where(Account.id == 2).values(balance=Account.balance + 1)
            )

    print(f"{threads} threads x {transfers} transfers of 1 from one account, no choreography:")
    for label, transfer in (
        ("read-modify-write", read_modify_write),
        ("relative UPDATE", relative_update),
    ):
        with factory.begin() as session:
            session.execute(delete(Account))
            session.add_all(
                [Account(id=1, owner="a", balance=10_000), Account(id=2, owner="b", balance=0)]
            )

        def worker() -> None:
            for _ in range(transfers):
                transfer()  # noqa: B023 - runs before the loop moves on

        started = time.perf_counter()
        pool_of_threads = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in pool_of_threads:
            thread.start()
        for thread in pool_of_threads:
            thread.join()
        took = time.perf_counter() - started
        with engine.connect() as conn:
            debited = 10_000 - int(conn.scalar(select(Account.balance).where(Account.id == 1)) or 0)
        lost = threads * transfers - debited
        print(f"  {label:18} {lost:4d} of {threads * transfers} debits lost  ({took:.2f} s)")
    engine.dispose()


def main() -> None:
    imports()
    n_plus_one()
    pool()
    lost_updates()


if __name__ == "__main__":
    main()
