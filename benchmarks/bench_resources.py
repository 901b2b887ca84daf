"""Module 08's headline figures: leaked descriptors, per-request resources, test isolation,
and how long each workbook check takes.

- 200 failed exports whose errors are kept (as an error report keeps them): descriptors
  left open by the leaky export and by the one with `with` (counted by ResourceWarning, on
  every OS, and by /proc/self/fd or /dev/fd where there is one);
- quotes through an app that builds an engine and an HTTP client per request, against one
  whose lifespan owns them (a real uvicorn upstream): median of 30 quotes each;
- a suite of 20 integration tests: a fresh in-memory database per test against one
  database and a rolled-back transaction per test: median of 5 suites;
- each check of the workbook on the solution's answers: median of 5 runs.

Run: .venv/bin/python benchmarks/bench_resources.py
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import csv
import gc
import inspect
import linecache
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import types
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from prodready._check import find_checker
from prodready._checks.resources import Base, Order, Stock
from prodready._course import scratch_dir
from prodready._notebooks import ANSWER, CHECK, cell_role, read_notebook

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
FAILED_EXPORTS = 200
QUOTES = 30
SUITE = 20
CHECK_BUDGET_SECONDS = 2.0  # issue 21: the module's check cells together, about 2 s


def open_fds() -> int | None:
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return len(os.listdir(folder))
    return None


# ---- 1. leaked descriptors ------------------------------------------------------------
def export_leaky(rows: list[dict[str, object]], out: Path) -> None:
    workdir = Path(tempfile.mkdtemp(dir=out.parent))
    f = open(workdir / out.name, "w", newline="", encoding="utf-8")  # noqa: SIM115 (the bug)
    writer = csv.writer(f)
    for row in rows:
        writer.writerow([row["sku"], row["qty"], row["cents"]])
    f.close()
    os.replace(workdir / out.name, out)
    shutil.rmtree(workdir)


def export_fixed(rows: list[dict[str, object]], out: Path) -> None:
    with tempfile.TemporaryDirectory(dir=out.parent) as workdir:
        part = Path(workdir) / out.name
        with part.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            for row in rows:
                writer.writerow([row["sku"], row["qty"], row["cents"]])
        os.replace(part, out)


def leaks(export: Callable[[list[dict[str, object]], Path], None]) -> tuple[int | None, int, int]:
    folder = scratch_dir("prodready-bench-")
    rows: list[dict[str, object]] = [{"sku": "A", "qty": 1, "cents": 100}] * 50
    rows.append({"sku": "BAD", "qty": 1})  # no price: KeyError halfway
    kept: list[BaseException] = []
    before = open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(FAILED_EXPORTS):
            try:
                export(rows, folder / "daily.csv")
            except KeyError as e:
                kept.append(e)
        after = open_fds()
        kept.clear()
        gc.collect()
    folders = sum(1 for p in folder.iterdir() if p.is_dir())
    shutil.rmtree(folder, ignore_errors=True)
    warned = sum(issubclass(w.category, ResourceWarning) for w in caught)
    fds = None if before is None or after is None else after - before
    return fds, warned, folders


# ---- 2. per-request resources -------------------------------------------------------
@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()


def quote_apps(db_url: str, prices_url: str) -> tuple[FastAPI, FastAPI]:
    per_request = FastAPI()

    @per_request.get("/quote/{sku}")
    async def quote_per_request(sku: str) -> dict[str, object]:
        engine = create_async_engine(db_url)
        try:
            async with httpx.AsyncClient(base_url=prices_url) as prices:
                async with engine.connect() as conn:
                    qty = await conn.scalar(select(Stock.qty).where(Stock.sku == sku))
                cents = (await prices.get(f"/prices/{sku}")).json()["cents"]
        finally:
            await engine.dispose()
        return {"qty": qty, "cents": cents}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(db_url)
        try:
            async with httpx.AsyncClient(base_url=prices_url) as prices:
                app.state.engine, app.state.prices = engine, prices
                yield
        finally:
            await engine.dispose()

    shared = FastAPI(lifespan=lifespan)

    @shared.get("/quote/{sku}")
    async def quote(sku: str, request: Request) -> dict[str, object]:
        async with request.app.state.engine.connect() as conn:
            qty = await conn.scalar(select(Stock.qty).where(Stock.sku == sku))
        cents = (await request.app.state.prices.get(f"/prices/{sku}")).json()["cents"]
        return {"qty": qty, "cents": cents}

    return per_request, shared


async def median_quote(app: FastAPI) -> float:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            await client.get("/quote/KB-1")
            timings = []
            for _ in range(QUOTES):
                started = time.perf_counter()
                (await client.get("/quote/KB-1")).raise_for_status()
                timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def per_request_resources() -> tuple[float, float]:
    prices = FastAPI()

    @prices.get("/prices/{sku}")
    async def price(sku: str) -> dict[str, object]:
        return {"sku": sku, "cents": 4999}

    db = scratch_dir("prodready-bench-") / "shop.db"
    seed = create_engine(f"sqlite:///{db}")
    Base.metadata.create_all(seed)
    with Session(seed) as session, session.begin():
        session.add(Stock(sku="KB-1", qty=5))
    seed.dispose()
    with serve(prices) as prices_url:
        per_request, shared = quote_apps(f"sqlite+aiosqlite:///{db}", prices_url)
        return asyncio.run(median_quote(per_request)), asyncio.run(median_quote(shared))


# ---- 3. isolating integration tests ---------------------------------------------------
def orders_app(sessions: async_sessionmaker[AsyncSession]) -> FastAPI:
    app = FastAPI()

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    @app.post("/orders", status_code=201)
    async def place(sku: str, session: AsyncSession = Depends(get_session)) -> dict[str, int]:  # noqa: B008
        order = Order(sku=sku, qty=1)
        session.add(order)
        await session.commit()
        return {"id": order.id}

    return app


async def one_test(sessions: async_sessionmaker[AsyncSession]) -> int:
    transport = httpx.ASGITransport(app=orders_app(sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
        return int((await client.post("/orders", params={"sku": "A"})).json()["id"])


async def fresh_database_per_test() -> list[int]:
    ids = []
    for _ in range(SUITE):
        engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        ids.append(await one_test(async_sessionmaker(engine, expire_on_commit=False)))
        await engine.dispose()
    return ids


async def rolled_back_transaction_per_test() -> list[int]:
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)

    @event.listens_for(engine.sync_engine, "connect")
    def no_driver_transactions(dbapi_connection: Any, _: object) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's recipe for SAVEPOINTs on pysqlite

    @event.listens_for(engine.sync_engine, "begin")
    def begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    ids = []
    for _ in range(SUITE):
        async with engine.connect() as conn:
            outer = await conn.begin()
            sessions = async_sessionmaker(
                bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
            ids.append(await one_test(sessions))
            await outer.rollback()
    await engine.dispose()
    return ids


def suite_seconds(run: Callable[[], Any]) -> float:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        ids = asyncio.run(run())
        timings.append(time.perf_counter() - started)
        assert set(ids) == {1}, f"{run.__name__} did not isolate the tests: ids {ids}"
    return statistics.median(timings)


# ---- 4. check latency -----------------------------------------------------------------
def _run_cell(source: str, name: str, namespace: dict[str, object]) -> None:
    filename = f"<bench-cell-{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


def check_latencies() -> dict[str, list[float]]:
    solution = read_notebook(ROOT / "solutions" / "08_resources.ipynb")
    module = types.ModuleType("bench_resources_answers")  # dataclasses need a real module
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    setup = next(c for c in solution.cells if c.cell_type == "code")
    _run_cell(setup.source, "setup", namespace)
    latencies: dict[str, list[float]] = {}
    for cell in solution.cells:
        role = cell_role(cell)
        if role is None or cell.cell_type != "code":
            continue
        exercise, kind = role
        if kind == ANSWER:
            _run_cell(cell.source, exercise, namespace)
            continue
        assert kind == CHECK
        statement = ast.parse(cell.source).body[0]
        assert isinstance(statement, ast.Expr)
        call = statement.value.value if isinstance(statement.value, ast.Await) else statement.value
        assert isinstance(call, ast.Call)
        args = [namespace[a.id] for a in call.args[1:] if isinstance(a, ast.Name)]
        checker = find_checker(exercise)
        timings = []
        for _ in range(RUNS):
            started = time.perf_counter()
            if inspect.iscoroutinefunction(checker):
                asyncio.run(checker(*args))  # checked with check_async in the notebook
            else:
                checker(*args)
            timings.append(time.perf_counter() - started)
        latencies[exercise] = timings
    return latencies


def main() -> None:
    leaky, fixed = leaks(export_leaky), leaks(export_fixed)
    print(f"{FAILED_EXPORTS} failed exports, their errors kept for a report:")
    for label, (fds, warned, folders) in (("leaky", leaky), ("with", fixed)):
        shown = "n/a on this OS" if fds is None else str(fds)
        print(f"  {label:>5}: descriptors left open {shown:>4}, ResourceWarnings when the errors "
              f"go {warned:>4}, temp folders left {folders:>4}")  # fmt: skip

    per_request, shared = per_request_resources()
    print(f"quotes through the app, median of {QUOTES}:")
    print(f"  engine + client per request {per_request * 1000:7.1f} ms")
    print(f"  owned by the lifespan       {shared * 1000:7.1f} ms   ({per_request / shared:.0f}x)")

    fresh = suite_seconds(fresh_database_per_test)
    rollback = suite_seconds(rolled_back_transaction_per_test)
    print(f"a suite of {SUITE} integration tests, median of {RUNS} suites:")
    print(f"  fresh in-memory database per test {fresh / SUITE * 1000:6.1f} ms a test")
    print(f"  rolled-back transaction per test  {rollback / SUITE * 1000:6.1f} ms a test "
          f"({fresh / rollback:.1f}x)")  # fmt: skip

    latencies = check_latencies()
    print(f"workbook checks on the solution, median of {RUNS} runs (first run in brackets):")
    for exercise, timings in latencies.items():
        print(f"  {exercise:28} {statistics.median(timings):6.2f} s   ({timings[0]:.2f} s)")
    total = sum(statistics.median(t) for t in latencies.values())
    print(f"all six checks: {total:.2f} s (budget about {CHECK_BUDGET_SECONDS:g} s): "
          f"{total <= CHECK_BUDGET_SECONDS}")  # fmt: skip


if __name__ == "__main__":
    main()
