"""The readiness report's runs: the learner's service for real, in a process of its own.

Each run copies the service into a scratch folder (its SQLite database and its logs go
there too), starts the course's payment provider and mail service on loopback
(``_upstream``), and runs the service under uvicorn (``_serve``). Three runs, each bounded
in count and in time, each for some of the requirements:

- ``load``: accounts sign up and log in; then more than a hundred clients at once place
  orders (retrying with the same Idempotency-Key when an attempt gets no answer, a 5xx or a
  409), send bad orders, log in, read orders back and guess two accounts' passwords, while
  a probe asks ``/health`` all along and the provider is slow and flaky; then every
  account's orders are read back through the API.
- ``export``: ``python -m shop.seed`` stores ``EXPORT_ROWS`` orders for one account; its CSV
  export is downloaded while the process's peak memory is read before and after.
- ``receipts``: orders are placed (the provider behaves), then the job runner
  ``python -m shop.worker`` is killed while a receipt is in flight and run again until
  it is done, against a mail service that fails now and then.

Every process is stopped on every path; a service that never starts, crashes or stops
answering ends its run early, and the requirements that needed the rest say so. A run is
kept per folder digest and kind, so the stages of one notebook judge one run of the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import httpx

from ..._check import Fail, run_in_fresh_loop
from ..._child import command
from .._support import serve
from . import _forks
from ._upstream import FLAKY_MAIL, FLAKY_PAYMENTS, STEADY_PAYMENTS, Upstream, upstream_app

Kind = Literal["load", "export", "receipts"]

CLIENTS = 104  # clients at once at the start of the load (buyers, attackers, the careless...)
ACCOUNTS = 8
ORDERS_EACH = 5  # logical orders per buyer account in the load
RECEIPT_ACCOUNTS, RECEIPT_ORDERS_EACH = 4, 6
EXPORT_ROWS = 60_000
ATTEMPTS = 5  # a client tries an order this many times, with the same key
CLIENT_TIMEOUT_S = 8.0  # per request of the load: no answer by then counts as this long
PROBE_EVERY_S = 0.05
GUESSES = 12  # wrong passwords per attacked account, all at once
LOGINS = 5  # good logins during the load
LOOKERS = 15  # clients asking for an order that does not exist
SET_UP_S = 10.0  # per sign-up or log-in call of the set-up, which is not measured
SEED_S = 15.0
STARTUP_S = 15.0  # for the service to import and run its lifespan
LOAD_S = 15.0
EXPORT_S = 15.0
READBACK_S = 6.0
WORKER_S = 10.0  # each run of the job runner
HUNG_S = 4.0  # no answer to anything for this long: the service hangs, the run stops
PRICE_CENTS = {"KB-1": 435, "MS-2": 1999, "CB-3": 10, "HD-4": 115, "PD-5": 29, "LT-6": 123456}
EXPORT_COLUMNS = ("id", "sku", "qty", "total_cents", "status")
PAYMENTS_SEED = 26  # a hang, a lying 500 and a 503 come early in the provider's schedule
SKIPPED = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ipynb_checkpoints", ".venv", ".git"}
_DATA_SUFFIXES = (".db", ".sqlite", ".sqlite3", "-wal", "-shm", "-journal", ".pyc")


@dataclass
class Attempt:
    op: str  # "order", "bad order", "login", "guess", "health", ...
    method: str
    path: str
    status: int | None  # None: no answer
    seconds: float
    request_id: str
    started: float = 0.0  # time.monotonic() when it was sent
    error: str = ""
    body: Any = None  # the JSON answer (orders, logins)
    target: str = ""  # the account a login was for


@dataclass
class OrderPlan:
    account: int
    key: str
    sku: str
    qty: int
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acknowledged(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status == 201]


@dataclass
class Account:
    email: str
    password: str
    token: str = ""


@dataclass
class WorkerRun:
    exit_code: int | None  # None: killed by the course
    killed_in_flight: bool = False
    overran: bool = False
    seconds: float = 0.0


@dataclass
class Evidence:
    """Everything a run saw. Empty where a phase did not run; ``problem`` says why."""

    kind: Kind
    digest: str
    problem: str = ""  # the run stopped early: why (it never started, crashed, hung...)
    phases: list[str] = field(default_factory=list)  # the phases that ran to their end
    attempts: list[Attempt] = field(default_factory=list)
    orders: list[OrderPlan] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    bad_account: Account | None = None
    victims: list[Account] = field(default_factory=list)
    stored: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # email -> rows
    readback_problems: list[str] = field(default_factory=list)
    export_rows: int | None = None
    export_problem: str = ""
    memory_before: int | None = None
    memory_after: int | None = None
    upstream: Upstream | None = None
    workers: list[WorkerRun] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)  # "service (stdout)" -> text
    secrets: list[str] = field(default_factory=list)
    service_exit: int | None = None  # set if the service died during the run
    hung: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds

    def ran(self, phase: str) -> bool:
        return phase in self.phases

    def of(self, op: str) -> list[Attempt]:
        return [a for a in self.attempts if a.op == op]


# --- the folder -----------------------------------------------------------------------


def _skipped(relative: Path) -> bool:
    return any(p in SKIPPED for p in relative.parts) or relative.name.endswith(_DATA_SUFFIXES)


def digest(folder: Path) -> str:
    """What the service's files hold (caches and databases aside): one run per version."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not _skipped(relative) and path.is_file() and not path.is_symlink():
            h.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def copy_service(folder: Path, target: Path) -> None:
    def ignored(where: str, names: list[str]) -> set[str]:
        return {n for n in names if _skipped(Path(n)) or Path(where, n).is_symlink()}

    shutil.copytree(folder, target, ignore=ignored)


def resolve(folder: str | os.PathLike[str]) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise Fail(
            f"there is no folder {str(folder)!r} next to this notebook: the service's files "
            "are in `10_capstone/` beside the workbook (`prodready reset 10` puts them back)"
        )
    if not (path / "shop" / "main.py").is_file():
        raise Fail(
            f"{folder}/shop/main.py is missing: the report starts the service as "
            "`shop.main:app` (10_capstone/README.md, 'What the report relies on')"
        )
    return path


# --- processes --------------------------------------------------------------------------


class Process:
    """A child Python process running learner code; its output goes to two files."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict[str, str], logs: Path):
        argv, child_env = command(args)
        child_env.update(env)
        self.name = name
        self.out_path, self.err_path = logs / f"{name}.out", logs / f"{name}.err"
        self._out, self._err = self.out_path.open("wb"), self.err_path.open("wb")
        self.started = time.monotonic()
        self.proc = _forks.start(argv, str(cwd), child_env, self._out, self._err)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, seconds: float) -> int | None:
        try:
            return self.proc.wait(timeout=max(seconds, 0.01))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the output files are closed."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            if self.wait(grace) is None:
                self.kill()
        for f in (self._out, self._err):
            f.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()

    def output(self) -> tuple[str, str]:
        def read(path: Path) -> str:
            return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

        return read(self.out_path), read(self.err_path)

    def tail(self) -> str:
        out, err = self.output()
        lines = (err.strip() or out.strip()).splitlines()
        return "\n    ".join(lines[-6:]) if lines else "(it printed nothing)"


# --- runs -------------------------------------------------------------------------------

_RUNS: dict[tuple[str, Kind], Evidence] = {}


def evidence_for(folder: str | os.PathLike[str], kind: Kind) -> Evidence:
    """The run of this kind for these files: made once, kept while the files stay the same."""
    path = resolve(folder)
    key = (digest(path), kind)
    if key not in _RUNS:
        if len(_RUNS) >= 12:  # a learner's versions come and go: keep the latest few
            _RUNS.pop(next(iter(_RUNS)))
        _RUNS[key] = run(path, kind, key[0])
    return _RUNS[key]


def forget() -> None:
    _RUNS.clear()


class _Run:
    """The scratch folder, the upstream services and the processes of one run."""

    def __init__(self, ev: Evidence, folder: Path, scratch: Path, upstream_url: str) -> None:
        self.ev, self.scratch = ev, scratch
        self.service_dir, self.logs = scratch / "service", scratch / "logs"
        copy_service(folder, self.service_dir)
        self.logs.mkdir()
        state = ev.upstream
        assert state is not None
        secret_key = "sk_" + secrets.token_hex(16)
        ev.secrets += [state.payments_key, state.mail_key, secret_key]
        self.env = {
            "SHOP_DATABASE_PATH": str(scratch / "shop.db"),
            "SHOP_PAYMENTS_URL": upstream_url,
            "SHOP_PAYMENTS_API_KEY": state.payments_key,
            "SHOP_MAIL_URL": upstream_url,
            "SHOP_MAIL_API_KEY": state.mail_key,
            "SHOP_SECRET_KEY": secret_key,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[Process] = []

    def process(self, name: str, args: list[str]) -> Process:
        started = Process(name, args, self.service_dir, self.env, self.logs)
        self.processes.append(started)
        return started

    def timed(self, phase: str, started: float, *, finished: bool = True) -> None:
        self.ev.timings[phase] = round(time.monotonic() - started, 2)
        if finished:
            self.ev.phases.append(phase)

    def seed(self, account: Account, rows: int) -> bool:
        started = time.monotonic()
        seed = self.process("seed", ["-m", "shop.seed", account.email, account.password, str(rows)])
        code = seed.wait(SEED_S)
        if code is None:
            seed.kill()
            self.ev.problem = f"`python -m shop.seed` was still running after {SEED_S:g} s"
        elif code != 0:
            self.ev.problem = f"`python -m shop.seed` failed (exit code {code}):\n    {seed.tail()}"
        self.timed("seed", started, finished=code == 0)
        return code == 0

    def start_service(self) -> tuple[Process, str] | None:
        started = time.monotonic()
        port_file = self.scratch / "port"
        service = self.process(
            "service", ["-m", "prodready._checks.capstone._serve", str(port_file)]
        )
        deadline = started + STARTUP_S
        while not port_file.exists():
            if not service.alive():
                self.ev.problem = (
                    f"the service exited while starting (exit code {service.proc.returncode}); "
                    f"its last output:\n    {service.tail()}"
                )
                return None
            if time.monotonic() > deadline:
                self.ev.problem = (
                    f"the service was not ready {STARTUP_S:g} s after it was started (does its "
                    f"lifespan finish?); its last output:\n    {service.tail()}"
                )
                return None
            time.sleep(0.02)
        self.timed("start", started)
        return service, f"http://127.0.0.1:{port_file.read_text(encoding='utf-8').strip()}"

    def stop_service(self, service: Process) -> None:
        started = time.monotonic()
        self.ev.service_exit = service.proc.poll()
        service.stop(grace=2.0)
        self.timed("stop", started, finished=False)

    def close(self) -> None:
        for process in self.processes:
            process.stop(grace=0.5)
        for process in self.processes:
            out, err = process.output()
            self.ev.logs[f"{process.name} (stdout)"] = out
            self.ev.logs[f"{process.name} (stderr)"] = err


def run(folder: Path, kind: Kind, key: str = "") -> Evidence:
    """One run of ``kind``; every process it starts is stopped before it returns."""
    payments = {"load": FLAKY_PAYMENTS, "export": STEADY_PAYMENTS, "receipts": STEADY_PAYMENTS}
    state = Upstream(
        payments_key="pk_" + secrets.token_hex(12), mail_key="mk_" + secrets.token_hex(12),
        payment_mix=dict(payments[kind]), mail_mix=dict(FLAKY_MAIL), seed=PAYMENTS_SEED,
    )  # fmt: skip
    ev = Evidence(kind, key or digest(folder), upstream=state)
    scratch = Path(tempfile.mkdtemp(prefix="prodready-capstone-"))
    try:
        with serve(upstream_app(state)) as upstream_url:
            session = _Run(ev, folder, scratch, upstream_url)
            try:
                {"load": _load_run, "export": _export_run, "receipts": _receipts_run}[kind](session)
            finally:
                session.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ev


def _with_service(session: _Run, drive: Callable[[Load], Awaitable[None]]) -> bool:
    """Start the service, drive it, stop it. False if it never came up."""
    started = session.start_service()
    if started is None:
        return False
    service, url = started
    try:
        run_in_fresh_loop(lambda: _driven(session.ev, url, service, drive))
    finally:
        session.stop_service(service)
    return True


async def _driven(
    ev: Evidence, url: str, service: Process, drive: Callable[[Load], Awaitable[None]]
) -> None:
    # A connection for every client that can be waiting at once: a request never waits for
    # a connection on our side. The health probe has a client of its own.
    room = CLIENTS + 40
    limits = httpx.Limits(max_connections=room, max_keepalive_connections=room)
    async with (
        httpx.AsyncClient(base_url=url, limits=limits, timeout=CLIENT_TIMEOUT_S) as client,
        httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S) as probe_client,
    ):
        await drive(Load(ev, client, probe_client, service))


def _load_run(session: _Run) -> None:
    async def drive(load: Load) -> None:
        ev, rng = load.ev, random.Random(10)
        if not await load.set_up(ACCOUNTS, victims=2):
            return
        plans = [
            OrderPlan(n, f"k-{uuid.UUID(int=rng.getrandbits(128)).hex}", sku, qty)
            for n in range(ACCOUNTS)
            for sku, qty in rng.sample(
                [(s, q) for s in PRICE_CENTS for q in range(1, 11)], ORDERS_EACH
            )
        ]  # fmt: skip
        ev.orders = plans
        started = time.monotonic()
        with load.probing():
            finished = await load.bounded(load.mixed(plans, rng), started + LOAD_S, watch=True)
        session.timed("load", started, finished=finished)
        if not finished:
            ev.problem = ev.problem or f"the load did not finish within {LOAD_S:g} s"
            return
        started = time.monotonic()
        read = await load.bounded(load.read_back([*ev.accounts, *filter(None, [ev.bad_account])]),
                                  started + READBACK_S)  # fmt: skip
        if not read:
            ev.readback_problems.append(f"reading the orders back took more than {READBACK_S:g} s")
        session.timed("read-back", started, finished=read)

    _with_service(session, drive)


def _export_run(session: _Run) -> None:
    owner = Account("export@shop.test", "export-" + secrets.token_urlsafe(12))
    session.ev.secrets.append(owner.password)
    if not session.seed(owner, EXPORT_ROWS):
        return

    async def drive(load: Load) -> None:
        started = time.monotonic()
        if not await load.bounded(load.log_in(owner), started + SET_UP_S) or not owner.token:
            load.ev.problem = load.ev.problem or "the seeded account could not log in"
            return
        session.timed("set-up", started)
        started = time.monotonic()
        with load.probing():  # no hang watch: a blocking export must still be measured
            done = await load.bounded(load.export(owner), started + EXPORT_S)
        if not done:
            load.ev.export_problem = load.ev.export_problem or (
                f"the export did not finish within {EXPORT_S:g} s"
            )
        session.timed("export", started, finished=done)

    _with_service(session, drive)


def _receipts_run(session: _Run) -> None:
    async def drive(load: Load) -> None:
        ev, rng = load.ev, random.Random(11)
        if not await load.set_up(RECEIPT_ACCOUNTS, victims=0):
            return
        skus = sorted(PRICE_CENTS)
        ev.orders = [
            OrderPlan(n, f"r-{uuid.UUID(int=rng.getrandbits(128)).hex}", skus[i], 1 + n)
            for n in range(RECEIPT_ACCOUNTS)
            for i in range(RECEIPT_ORDERS_EACH)
        ]
        started = time.monotonic()

        async def one_by_one() -> None:  # this run is about receipts: no load, no hurry
            for plan in ev.orders:
                await load.order(plan, timeout=SET_UP_S, read=False)

        placed = await load.bounded(one_by_one(), started + LOAD_S)
        session.timed("orders", started, finished=placed)
        if not placed:
            ev.problem = (
                ev.problem or f"placing {len(ev.orders)} orders took more than {LOAD_S:g} s"
            )
            return
        started = time.monotonic()
        read = await load.bounded(load.read_back(ev.accounts), started + READBACK_S)
        session.timed("read-back", started, finished=read)

    if _with_service(session, drive) and session.ev.ran("read-back"):
        _workers(session)


def _workers(session: _Run) -> None:
    ev, state = session.ev, session.ev.upstream
    assert state is not None
    paid = sum(row.get("status") == "paid" for rows in ev.stored.values() for row in rows)
    state.hold_delivery = max(2, paid // 3)  # a third of the way through
    started = time.monotonic()
    first = session.process("worker-1", ["-m", "shop.worker"])
    deadline = started + WORKER_S
    while first.alive() and not state.holding.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    crash = WorkerRun(first.proc.poll(), seconds=time.monotonic() - first.started)
    if first.alive():
        crash.killed_in_flight = state.holding.is_set()
        crash.overran = not crash.killed_in_flight
        first.kill()  # a crash: SIGKILL, no chance to clean up
    state.released.set()
    ev.workers.append(crash)
    if crash.overran:
        session.timed("worker", started, finished=False)
        return
    second = session.process("worker-2", ["-m", "shop.worker"])
    code = second.wait(WORKER_S)
    again = WorkerRun(code, seconds=time.monotonic() - second.started)
    if code is None:
        again.overran = True
        second.kill()
    ev.workers.append(again)
    session.timed("worker", started, finished=not again.overran)


# --- the clients ------------------------------------------------------------------------


class Load:
    """The clients of one run, and what they saw."""

    def __init__(
        self,
        ev: Evidence,
        client: httpx.AsyncClient,
        probe_client: httpx.AsyncClient,
        service: Process,
    ) -> None:
        self.ev, self.client, self.probe_client, self.service = ev, client, probe_client, service

    async def bounded(self, work: Awaitable[Any], deadline: float, *, watch: bool = False) -> bool:
        """Run one phase until it ends or its deadline passes (then it is cancelled). With
        ``watch``, also stop it when the service has answered nothing for ``HUNG_S``."""
        task = asyncio.ensure_future(work)
        started = time.monotonic()
        while not task.done():
            now = time.monotonic()
            if now >= deadline:
                break
            if watch and now - started > HUNG_S and not self.answered_since(now - HUNG_S):
                self.ev.hung = True
                self.ev.problem = self.ev.problem or (
                    f"the service stopped answering: no request got an answer for {HUNG_S:g} s, "
                    "so the report stopped there"
                )
                break
            await asyncio.wait({task}, timeout=min(0.1, deadline - now))
        if task.done():
            task.result()
            return True
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return False

    def answered_since(self, moment: float) -> bool:
        return any(
            a.status is not None and a.started + a.seconds >= moment for a in self.ev.attempts
        )

    async def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str = "",
        timeout: float = CLIENT_TIMEOUT_S,
        client: httpx.AsyncClient | None = None,
        target: str = "",
    ) -> Attempt:
        """One request, its id sent as X-Request-ID and as ``?trace=`` (so that uvicorn's
        access line names it), recorded whatever happens."""
        rid = uuid.uuid4().hex
        sent = {"X-Request-ID": rid, **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if content is not None:
            sent["Content-Type"] = "application/json"
        attempt = Attempt(op, method, path, None, 0.0, rid, started=time.monotonic(), target=target)
        try:
            async with asyncio.timeout(timeout):  # the whole request: connecting, waiting, reading
                response = await (client or self.client).request(
                    method, f"{path}{'&' if '?' in path else '?'}trace={rid}", json=json_body,
                    content=content, headers=sent, timeout=timeout,
                )  # fmt: skip
            attempt.status = response.status_code
            with contextlib.suppress(ValueError):
                attempt.body = response.json() if len(response.content) < 10_000 else None
        except (httpx.TimeoutException, TimeoutError):
            attempt.error = f"no answer within {timeout:g} s"
        except httpx.TransportError as e:
            attempt.error = f"the connection failed ({type(e).__name__})"
        except asyncio.CancelledError:
            attempt.error = "no answer when the phase's time limit ran out"
            if op != "health":  # the probe is stopped when its phase ends: not a failure
                self.ev.attempts.append(attempt)
            attempt.seconds = time.monotonic() - attempt.started
            raise
        attempt.seconds = time.monotonic() - attempt.started
        self.ev.attempts.append(attempt)
        return attempt

    @contextlib.contextmanager
    def probing(self) -> Any:
        """Ask /health every PROBE_EVERY_S, one request at a time, while the block runs."""

        async def probe() -> None:
            while True:
                started = time.monotonic()
                await self.call("health", "GET", "/health", client=self.probe_client)
                await asyncio.sleep(max(PROBE_EVERY_S - (time.monotonic() - started), 0.001))

        task = asyncio.ensure_future(probe())
        try:
            yield
        finally:
            task.cancel()

    # -- set-up --------------------------------------------------------------------

    async def patiently(self, op: str, path: str, body: dict[str, str], ok: set[int]) -> Attempt:
        """Set-up is not measured: generous timeouts, a retry when nothing came back."""
        for _ in range(3):
            answer = await self.call(op, "POST", path, json_body=body, timeout=SET_UP_S)
            if answer.status in ok or (answer.status is not None and answer.status < 500):
                break
        return answer

    async def log_in(self, account: Account, sign_up: bool = False) -> None:
        body = {"email": account.email, "password": account.password}
        if sign_up:
            await self.patiently("sign-up", "/accounts", body, {201, 409})
        answer = await self.patiently("set-up login", "/login", body, {200})
        if answer.status == 200 and isinstance(answer.body, dict):
            account.token = str(answer.body.get("token", ""))
            self.ev.secrets.append(account.token)

    async def set_up(self, buyers: int, victims: int) -> bool:
        ev = self.ev
        ev.accounts = [
            Account(f"buyer{n}@shop.test", f"pw-{n}-" + secrets.token_urlsafe(12))
            for n in range(buyers)
        ]
        if victims:
            ev.bad_account = Account("careless@shop.test", "pw-bad-" + secrets.token_urlsafe(12))
            ev.victims = [
                Account(f"victim{n}@shop.test", f"pw-victim-{n}-" + secrets.token_urlsafe(12))
                for n in range(victims)
            ]
        everyone = [*ev.accounts, *filter(None, [ev.bad_account]), *ev.victims]
        ev.secrets += [a.password for a in everyone]
        started = time.monotonic()
        work = asyncio.gather(*(self.log_in(a, sign_up=True) for a in everyone))
        finished = await self.bounded(work, started + SET_UP_S * 2)
        ev.timings["set-up"] = round(time.monotonic() - started, 2)
        missing = [a for a in everyone if not a.token]
        if finished and not missing:
            ev.phases.append("set-up")
            return True
        failed = [
            a for a in ev.attempts
            if a.op in ("sign-up", "set-up login") and a.status not in (200, 201, 409)
        ]  # fmt: skip
        shown = "; ".join(f"{a.method} {a.path} -> {a.status or a.error}" for a in failed[:2])
        ev.problem = (
            f"the set-up failed: {len(missing)} of {len(everyone)} accounts could not sign up "
            f"and log in ({shown or 'no answer in time'}). `POST /accounts`, then `POST /login`, "
            "must work before anything else can be measured"
        )
        if not self.service.alive():
            ev.problem += f". The service died; its last output:\n    {self.service.tail()}"
        return False

    # -- the load ------------------------------------------------------------------

    async def mixed(self, plans: list[OrderPlan], rng: random.Random) -> None:
        """Every client at once: buyers, careless clients, strangers, people logging in,
        and attackers guessing two accounts' passwords. Work is made of factories, so a
        coroutine exists only once its client starts."""
        ev = self.ev
        assert ev.bad_account is not None
        work: list[Callable[[], Awaitable[Any]]] = [partial(self.order, p) for p in plans]
        work += [partial(self.bad_order, n, body) for n, body in enumerate(BAD_ORDERS)]
        work += [partial(self.stranger, n) for n in range(6)]
        work += [partial(self.log_in_again, a) for a in ev.accounts[:LOGINS]]
        work += [partial(self.look, ev.accounts[n % len(ev.accounts)]) for n in range(LOOKERS)]
        work += [partial(self.guess, v, n) for v in ev.victims for n in range(GUESSES)]
        rng.shuffle(work)
        await asyncio.gather(*(job() for job in work))
        for victim in ev.victims:  # the right password, after the guessing: still locked
            body = {"email": victim.email, "password": victim.password}
            await self.call("locked login", "POST", "/login", json_body=body, target=victim.email)

    async def order(
        self, plan: OrderPlan, timeout: float = CLIENT_TIMEOUT_S, read: bool = True
    ) -> None:
        token = self.ev.accounts[plan.account].token
        for attempt_no in range(ATTEMPTS):
            attempt = await self.call(
                "order", "POST", "/orders", json_body={"sku": plan.sku, "qty": plan.qty},
                headers={"Idempotency-Key": plan.key}, token=token, timeout=timeout,
            )  # fmt: skip
            plan.attempts.append(attempt)
            if (
                attempt.status is not None
                and attempt.status < 500
                and attempt.status not in (409, 429)
            ):
                break
            await asyncio.sleep(0.2 * (attempt_no + 1))  # the same key: a retry, not a new order
        body = plan.acknowledged[-1].body if plan.acknowledged else None
        if read and isinstance(body, dict) and "id" in body and plan.account % 2 == 0:
            await self.call("read", "GET", f"/orders/{body['id']}", token=token)

    async def bad_order(self, n: int, body: Any) -> None:
        assert self.ev.bad_account is not None
        raw = body if isinstance(body, bytes) else None
        await self.call(
            "bad order", "POST", "/orders", json_body=None if raw else body, content=raw,
            headers={"Idempotency-Key": f"bad-{n}"}, token=self.ev.bad_account.token,
        )  # fmt: skip

    async def stranger(self, n: int) -> None:
        token = "" if n % 2 else "1.9999999999.forged-signature"
        await self.call(
            "stranger", "POST", "/orders", json_body={"sku": "KB-1", "qty": 1},
            headers={"Idempotency-Key": f"anon-{n}"}, token=token,
        )  # fmt: skip

    async def look(self, account: Account) -> None:
        await self.call("look", "GET", "/orders/987654321", token=account.token)

    async def log_in_again(self, account: Account) -> None:
        body = {"email": account.email, "password": account.password}
        await self.call("login", "POST", "/login", json_body=body)

    async def guess(self, victim: Account, n: int) -> None:
        guess = f"guess-{n}-{victim.email}"
        self.ev.secrets.append(guess)
        body = {"email": victim.email, "password": guess}
        await self.call("guess", "POST", "/login", json_body=body, target=victim.email)

    # -- export and read-back ------------------------------------------------------

    async def export(self, owner: Account) -> None:
        ev = self.ev
        ev.memory_before = await self.memory()
        rid = uuid.uuid4().hex
        attempt = Attempt("export", "GET", "/orders.csv", None, 0.0, rid, started=time.monotonic())
        lines = 0
        try:
            async with self.client.stream(
                "GET", f"/orders.csv?trace={rid}", timeout=EXPORT_S,
                headers={"X-Request-ID": rid, "Authorization": f"Bearer {owner.token}"},
            ) as response:  # fmt: skip
                attempt.status = response.status_code
                async for line in response.aiter_lines():
                    lines += bool(line.strip())
        except httpx.TimeoutException:
            attempt.error = ev.export_problem = f"the export stalled: no data for {EXPORT_S:g} s"
        except httpx.TransportError as e:
            attempt.error = ev.export_problem = (
                f"the export broke off ({type(e).__name__}) after {lines:,} lines"
            )
        finally:
            attempt.seconds = time.monotonic() - attempt.started
            ev.attempts.append(attempt)
        if attempt.status != 200:
            ev.export_problem = ev.export_problem or f"GET /orders.csv answered {attempt.status}"
        ev.export_rows = max(lines - 1, 0)  # the header
        ev.memory_after = await self.memory()

    async def memory(self) -> int | None:
        try:
            response = await self.probe_client.get("/__prodready__/memory", timeout=EXPORT_S)
            return int(response.json()["peak_rss_bytes"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    async def read_back(self, accounts: list[Account]) -> None:
        async def read(account: Account) -> None:
            try:
                response = await self.client.get(
                    "/orders.csv", headers={"Authorization": f"Bearer {account.token}"},
                    timeout=READBACK_S,
                )  # fmt: skip
            except httpx.HTTPError as e:
                self.ev.readback_problems.append(
                    f"GET /orders.csv for {account.email} failed ({type(e).__name__})"
                )
                return
            if response.status_code != 200:
                self.ev.readback_problems.append(
                    f"GET /orders.csv for {account.email} answered {response.status_code}"
                )
                return
            rows = list(csv.DictReader(io.StringIO(response.text)))
            missing = [c for c in EXPORT_COLUMNS if rows and c not in rows[0]]
            if missing:
                self.ev.readback_problems.append(
                    f"the CSV export has no column {missing[0]!r} (it needs "
                    f"{', '.join(EXPORT_COLUMNS)})"
                )
                return
            self.ev.stored[account.email] = rows

        await asyncio.gather(*(read(a) for a in accounts))


BAD_ORDERS: list[Any] = [
    {"sku": "KB-1", "qty": "3"},
    {"sku": "KB-1", "qty": 0},
    {"sku": "KB-1", "qty": -2},
    {"sku": "KB-1", "qty": 101},
    {"sku": "KB-1", "qty": 2.5},
    {"sku": "KB-1", "qty": True},
    {"sku": "KB-1", "qty": 10**12},
    {"sku": "KB-1"},
    {"qty": 2},
    {"sku": None, "qty": 1},
    {"sku": "ZZ-9", "qty": 1},
    {"sku": "KB-1", "qty": 1, "unit_price_cents": 1},
    ["KB-1", 1],
    b'{"sku": "KB-1", "qty": ',
]
