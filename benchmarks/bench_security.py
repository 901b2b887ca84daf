"""Module 09's headline figures: guesses per second through a login before and after a limit,
offline hash rates, the user-enumeration timing difference, and how long each check takes.

- an online brute force, one guess after another over loopback (uvicorn on 127.0.0.1), against
  a login without a limit (Argon2id with the lesson's light parameters, and with argon2-cffi's
  defaults) and against the same login limited to 5 attempts a minute per account, counted in
  SQLite with one atomic statement;
- offline guesses per second on one core: unsalted SHA-256, Argon2id with OWASP's minimum
  (19 MiB, t=2) and with argon2-cffi's defaults (64 MiB, t=3, p=4): median of 5 runs;
- unknown email against wrong password, 40 interleaved pairs through an in-process app whose
  password check costs a few milliseconds, without and with a dummy hash: the median paired
  difference in wall-clock time and in the CPU time the server spent;
- each check of the workbook on the solution's answers: median of 5 runs.

Run: .venv/bin/python benchmarks/bench_security.py (or benchmarks/run.py security)
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import inspect
import io
import linecache
import random
import shutil
import sqlite3
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import httpx
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi import FastAPI, HTTPException

from prodready._check import find_checker
from prodready._checks._support import serve
from prodready._course import scratch_dir
from prodready._notebooks import ANSWER, CHECK, cell_role, read_notebook

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
GUESSES = 60
PAIRS = 40
LIMIT, WINDOW = 5, 60.0
CHECK_BUDGET_SECONDS = 3.0  # the lead's budget for this module's check cells together
LIGHT = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}  # the lesson's demo hasher

COUNT = (
    "INSERT INTO attempts (key, window_start, count) VALUES (:key, :now, 1)"
    " ON CONFLICT (key) DO UPDATE SET"
    "  count = CASE WHEN :now - window_start < :window THEN count + 1 ELSE 1 END,"
    "  window_start = CASE WHEN :now - window_start < :window THEN window_start ELSE :now END"
    " RETURNING count, window_start"
)


# ---- 1. online brute force ------------------------------------------------------------
def login_app(hasher: PasswordHasher, database: Path, *, limited: bool) -> FastAPI:
    stored = hasher.hash("the-real-password")
    app = FastAPI()

    @app.post("/login")
    def login(body: dict[str, str]) -> dict[str, str]:
        if limited:
            with closing(sqlite3.connect(database, timeout=10)) as db, db:
                [(count, _)] = db.execute(
                    COUNT, {"key": body["email"], "now": time.time(), "window": WINDOW}
                ).fetchall()
            if count > LIMIT:
                raise HTTPException(429, "too many attempts")
        try:
            hasher.verify(stored, body["password"])
        except VerificationError:
            raise HTTPException(401, "wrong email or password") from None
        return {"token": "..."}

    return app


def brute_force(hasher: PasswordHasher, *, limited: bool, guesses: int) -> tuple[float, int]:
    """(guesses a second, passwords checked) for `guesses` wrong guesses, one at a time."""
    root = scratch_dir("prodready-bench-security-")
    try:
        database = root / "attempts.db"
        with closing(sqlite3.connect(database)) as db, db:
            db.execute(
                "CREATE TABLE attempts (key TEXT PRIMARY KEY, window_start REAL, count INTEGER)"
            )
        with (
            serve(login_app(hasher, database, limited=limited)) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            client.post("/login", json={"email": "warm-up", "password": "x"})
            started, statuses = time.perf_counter(), []
            for n in range(guesses):
                response = client.post("/login", json={"email": "ada", "password": f"guess-{n}"})
                statuses.append(response.status_code)
            seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return guesses / seconds, statuses.count(401)


# ---- 2. offline hash rates ------------------------------------------------------------
def rate(guess: Callable[[int], object], at_least: float, minimum: int = 2) -> float:
    rates = []
    for _ in range(RUNS):
        n, started = 0, time.perf_counter()
        while n < minimum or time.perf_counter() - started < at_least:
            guess(n)
            n += 1
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates)


def argon2_rate(hasher: PasswordHasher, at_least: float) -> float:
    stored = hasher.hash("bluefish77")

    def guess(n: int) -> None:
        with contextlib.suppress(VerificationError):
            hasher.verify(stored, f"guess-{n}")

    return rate(guess, at_least)


# ---- 3. user enumeration --------------------------------------------------------------
def one_check_seconds(hasher: PasswordHasher) -> float:
    stored, timings = hasher.hash("x"), []
    for _ in range(7):
        started = time.perf_counter()
        with contextlib.suppress(VerificationError):
            hasher.verify(stored, "y")
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def enumeration_app(hasher: PasswordHasher, *, dummy: bool) -> FastAPI:
    stored, fake = hasher.hash("the real password"), hasher.hash("nobody's password")
    app = FastAPI()

    @app.post("/login")
    def login(body: dict[str, str]) -> None:
        known = body["email"].startswith("user")
        if known or dummy:
            with contextlib.suppress(VerificationError):
                hasher.verify(stored if known else fake, body["password"])
        raise HTTPException(401, "wrong email or password")

    return app


async def paired_differences(app: FastAPI) -> tuple[float, float]:
    """Median (unknown minus known) of PAIRS interleaved pairs: wall-clock, CPU seconds."""
    rng, wall, cpu = random.Random(3), [], []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for n in range(PAIRS):
            took: dict[str, tuple[float, float]] = {}
            for kind in rng.sample(["unknown", "known"], 2):
                email = f"user{n}@example.com" if kind == "known" else f"nobody{n}@example.com"
                started, cpu_started = time.perf_counter(), time.process_time()
                await client.post("/login", json={"email": email, "password": "guess"})
                took[kind] = (time.perf_counter() - started, time.process_time() - cpu_started)
            wall.append(took["unknown"][0] - took["known"][0])
            cpu.append(took["unknown"][1] - took["known"][1])
    return statistics.median(wall), statistics.median(cpu)


# ---- 4. check latency -----------------------------------------------------------------
def _run_cell(source: str, name: str, namespace: dict[str, object]) -> None:
    filename = f"<bench-cell-{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def check_latencies() -> dict[str, list[float]]:
    solution = read_notebook(ROOT / "solutions" / "09_security.ipynb")
    module = types.ModuleType("bench_security_answers")  # dataclasses need a real module
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
            with _quiet():
                if inspect.iscoroutinefunction(checker):
                    asyncio.run(checker(*args))  # checked with check_async in the notebook
                else:
                    checker(*args)
            timings.append(time.perf_counter() - started)
        latencies[exercise] = timings
    return latencies


def main() -> None:
    light, production = PasswordHasher(**LIGHT), PasswordHasher()
    print(f"online brute force, {GUESSES} wrong guesses one after another over loopback:")
    open_rate, open_checked = brute_force(light, limited=False, guesses=GUESSES)
    print(f"  no limit, light Argon2id (1 MiB)  {open_rate:7.1f} guesses/s, "
          f"{open_checked} passwords checked")  # fmt: skip
    prod_rate, _ = brute_force(production, limited=False, guesses=6)
    print(f"  no limit, Argon2id defaults       {prod_rate:7.1f} guesses/s "
          f"({prod_rate * 86400:,.0f} a day)")  # fmt: skip
    limited_rate, limited_checked = brute_force(light, limited=True, guesses=GUESSES)
    print(f"  limited to {LIMIT} a minute per account: {limited_checked} of {GUESSES} checked "
          f"(the rest answered 429 at {limited_rate:.0f}/s): {LIMIT / WINDOW:.3f} guesses/s, "
          f"{open_rate / (LIMIT / WINDOW):,.0f}x fewer")  # fmt: skip

    targets = {hashlib.sha256(b"bluefish77").hexdigest()}
    sha = rate(lambda n: hashlib.sha256(b"guess-%d" % n).hexdigest() in targets, 0.2, 1000)
    owasp = argon2_rate(PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1), 0.5)
    default = argon2_rate(production, 0.5)
    print(f"offline guesses a second on one core, median of {RUNS}:")
    print(f"  SHA-256, unsalted              {sha:12,.0f}")
    print(f"  Argon2id, OWASP minimum        {owasp:12,.1f}   ({sha / owasp:,.0f}x fewer)")
    print(f"  Argon2id, argon2-cffi defaults {default:12,.1f}   ({sha / default:,.0f}x fewer)")

    timed = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    cost = one_check_seconds(timed)
    early_wall, early_cpu = asyncio.run(paired_differences(enumeration_app(timed, dummy=False)))
    dummy_wall, dummy_cpu = asyncio.run(paired_differences(enumeration_app(timed, dummy=True)))
    print(f"unknown email minus wrong password, median of {PAIRS} pairs "
          f"(one password check: {cost * 1000:.1f} ms):")  # fmt: skip
    print(f"  no dummy hash   wall {early_wall * 1000:+7.2f} ms   CPU {early_cpu * 1000:+7.2f} ms")
    print(f"  a dummy hash    wall {dummy_wall * 1000:+7.2f} ms   CPU {dummy_cpu * 1000:+7.2f} ms")

    latencies = check_latencies()
    print(f"workbook checks on the solution, median of {RUNS} runs (first run in brackets):")
    for exercise, timings in latencies.items():
        print(f"  {exercise:28} {statistics.median(timings):6.2f} s   ({timings[0]:.2f} s)")
    total = sum(statistics.median(t) for t in latencies.values())
    print(f"all six checks: {total:.2f} s (budget about {CHECK_BUDGET_SECONDS:g} s): "
          f"{total <= CHECK_BUDGET_SECONDS}")  # fmt: skip


if __name__ == "__main__":
    main()
