"""Fixtures for the shop's tests, brought in by the service's `tests/conftest.py`. That file
belongs to the course: the readiness report runs your tests with its own copy of it (put
fixtures of your own in a `conftest.py` of a subfolder, such as `tests/e2e/conftest.py`).

- `service`: the app (`shop.main:app`) on uvicorn, on 127.0.0.1, with its own database and
  the course's payment provider and mail service; its base URL. One service (and one
  database) serves the whole session: each test makes its own accounts.
- `client`: an `httpx.Client` for `service`.
- `account`: a new account, signed up and logged in: `.email`, `.password`, `.token`,
  `.headers` (the `Authorization` header).
- `provider`: the payment provider. `.charges` lists the charges it made (a retry with the
  same Idempotency-Key makes none); `.fail_next()`, `.charge_then_fail_next()` and
  `.hang_next()` choose how it treats the next new charge.
- `mailbox`: the mail service. `.receipts` lists what it delivered (a resend with the same
  key is not a new delivery); `.fail_next()`, `.accept_then_fail_next()`.
- `logs`: every log record of the test (from any logger), as text, for assertions such as
  `assert account.password not in logs.text`.
- `run_worker()`: runs `python -m shop.worker` on the service's database (every pending
  receipt of the session, not only this test's); its exit code.

Tests are plain functions (no async): the service runs in a thread of its own.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

__all__ = [
    "Account", "Logs", "Mailbox", "Provider", "_service", "_settings", "_upstream", "account",
    "client", "logs", "mailbox", "provider", "run_worker", "service",
]  # fmt: skip

from prodready._checks.capstone._upstream import Charge, Delivery, Upstream, upstream_app

_SESSION_DB = Path(tempfile.mkdtemp(prefix="shop-tests-")) / "shop.db"  # one per session
_ENV = {
    "SHOP_DATABASE_PATH": str(_SESSION_DB),  # for code that reads settings at import time
    "SHOP_PAYMENTS_API_KEY": "pk_test_" + uuid.uuid4().hex,
    "SHOP_MAIL_API_KEY": "mk_test_" + uuid.uuid4().hex,
    "SHOP_SECRET_KEY": "sk_test_" + uuid.uuid4().hex,
}
os.environ.update(_ENV)
_SERVICE_ROOT = Path.cwd()  # pytest runs from the service's folder (`python -m pytest tests`)
if str(_SERVICE_ROOT) not in sys.path:
    sys.path.insert(0, str(_SERVICE_ROOT))
# A hook for the readiness report: it wraps the app to plant a regression.
WRAP_APP: list[Callable[[Any], Any]] = []


class _Server:
    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, log_level="info", lifespan="on",
            timeout_graceful_shutdown=1,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start (does its lifespan raise?)")
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def _upstream() -> Iterator[tuple[str, Upstream]]:
    state = Upstream(
        payments_key=_ENV["SHOP_PAYMENTS_API_KEY"], mail_key=_ENV["SHOP_MAIL_API_KEY"],
        payment_mix={"quick": 1}, mail_mix={"ok": 1},
    )  # fmt: skip
    with _Server(upstream_app(state)) as url:
        yield url, state


@dataclass
class Provider:
    state: Upstream

    @property
    def charges(self) -> list[Charge]:
        return list(self.state.charges)

    def fail_next(self, times: int = 1) -> None:
        """The next new charges get a 503 and charge nothing."""
        self.state.forced_payments += ["fail"] * times

    def charge_then_fail_next(self) -> None:
        """The next new charge is made, then answered 500."""
        self.state.forced_payments.append("charge_then_500")

    def hang_next(self) -> None:
        """The next new charge is made, then its answer held for 5 s."""
        self.state.forced_payments.append("charge_then_hang")


@dataclass
class Mailbox:
    state: Upstream

    @property
    def receipts(self) -> list[Delivery]:
        return list(self.state.deliveries)

    def fail_next(self, times: int = 1) -> None:
        self.state.forced_mail += ["fail"] * times

    def accept_then_fail_next(self) -> None:
        self.state.forced_mail.append("accept_then_500")


@pytest.fixture
def provider(_upstream: tuple[str, Upstream]) -> Provider:
    _upstream[1].reset()
    return Provider(_upstream[1])


@pytest.fixture
def mailbox(_upstream: tuple[str, Upstream]) -> Mailbox:
    _upstream[1].reset()
    return Mailbox(_upstream[1])


@pytest.fixture(scope="session")
def _settings(_upstream: tuple[str, Upstream]) -> Iterator[dict[str, str]]:
    env = {**_ENV, "SHOP_PAYMENTS_URL": _upstream[0], "SHOP_MAIL_URL": _upstream[0]}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, value in before.items():
        if value is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = value


class Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        """Each record's message and every field it carries."""
        lines = []
        for record in self.records:
            try:
                message = record.getMessage()
            except Exception:  # a record whose arguments do not fit its format
                message = str(record.msg)
            lines.append(f"{message} {vars(record)!r}")
        return "\n".join(lines)


def _with_wrappers(app: Any) -> Any:
    """The app, behind whatever WRAP_APP holds at the time of each request."""

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        target = app
        if scope["type"] == "http":
            for wrap in WRAP_APP:
                target = wrap(target)
        await target(scope, receive, send)

    return dispatch


@pytest.fixture(scope="session")
def _service(_settings: dict[str, str]) -> Iterator[str]:
    from shop.main import app  # type: ignore[import-not-found]

    with _Server(_with_wrappers(app)) as url:
        yield url


@pytest.fixture
def logs(_service: str) -> Iterator[Logs]:
    captured = Logs()
    root = logging.getLogger()
    root.addHandler(captured)
    level = root.level
    root.setLevel(min(level or logging.WARNING, logging.INFO))
    try:
        yield captured
    finally:
        root.removeHandler(captured)
        root.setLevel(level)


@pytest.fixture
def service(_service: str, provider: Provider, mailbox: Mailbox) -> str:
    return _service


@pytest.fixture
def client(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=15) as c:
        yield c


@dataclass
class Account:
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def account(client: httpx.Client) -> Account:
    email, password = f"test-{uuid.uuid4().hex[:12]}@shop.test", "pw-" + uuid.uuid4().hex
    signed_up = client.post("/accounts", json={"email": email, "password": password})
    assert signed_up.status_code == 201, f"POST /accounts answered {signed_up.status_code}"
    login = client.post("/login", json={"email": email, "password": password})
    assert login.status_code == 200, f"POST /login answered {login.status_code}"
    return Account(email, password, login.json()["token"])


@pytest.fixture
def run_worker(service: str) -> Callable[[], int]:
    """`python -m shop.worker`, in this process (fast): its exit code."""

    def run() -> int:
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level  # the worker configures logging
        try:
            runpy.run_module("shop.worker", run_name="__main__", alter_sys=False)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
        return 0

    return run
