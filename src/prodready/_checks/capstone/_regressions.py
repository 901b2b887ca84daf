"""Regressions the readiness report plants under the learner's tests (a pytest plugin).

Every test runs on the service as it is; then each test that talks to the service runs again
with each regression below planted in the same process: mistakes that real changes bring in
without touching the code under test. A good suite fails at least once for each. Once a
regression has made a test fail, the rest of its runs are skipped (it is caught). The
outcome of every (test, regression) goes, one JSON line each, to the file named by
``PRODREADY_CAPSTONE_RESULTS``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

RESULTS_ENV = "PRODREADY_CAPSTONE_RESULTS"
REGRESSIONS: dict[str, str] = {
    "lost_commit": (
        "a refactoring lost the commit: every write is rolled back, although the API still "
        "answers 201"
    ),
    "new_key_per_retry": (
        "a proxy in front of the service makes the Idempotency-Key unique per request: a "
        "client's retry now looks like a new order"
    ),
    "headers_logged": (
        "someone added a debug line that logs every request's headers and body: tokens and "
        "passwords go to the logs"
    ),
    "provider_key_dropped": (
        "an upgrade of the HTTP client stopped sending the Idempotency-Key to the payment "
        "provider: a retried charge is a second charge"
    ),
}


def _lost_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.engine.default import DefaultDialect

    monkeypatch.setattr(DefaultDialect, "do_commit", lambda self, conn: conn.rollback())


def _wrap(wrapper: Callable[[Any], Any], name: str) -> Iterator[str]:
    from . import conftest_course

    conftest_course.WRAP_APP.append(wrapper)
    try:
        yield name
    finally:
        conftest_course.WRAP_APP.remove(wrapper)


def _new_key_per_retry(app: Any) -> Any:
    async def proxied(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [
                (k, v + b"-" + uuid.uuid4().hex.encode() if k == b"idempotency-key" else v)
                for k, v in scope["headers"]
            ]
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return proxied


def _headers_logged(app: Any) -> Any:
    async def logged(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        body, more = b"", True
        messages = []
        while more:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        logging.getLogger().warning(
            "debug: %s %s headers=%s body=%s", scope["method"], scope["path"], headers,
            body.decode("utf-8", "replace"),
        )  # fmt: skip

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await app(scope, replay, send)

    return logged


def _provider_key_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    def without_key(request: httpx.Request) -> None:
        if request.url.path.endswith("/charges"):
            request.headers.pop("Idempotency-Key", None)

    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, **kw: Any) -> httpx.Response:
        without_key(request)
        return sync_send(self, request, **kw)

    async def asend(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> httpx.Response:
        without_key(request)
        return await async_send(self, request, **kw)

    monkeypatch.setattr(httpx.Client, "send", send)
    monkeypatch.setattr(httpx.AsyncClient, "send", asend)


_USES_THE_SERVICE = {"_service", "service", "client", "account", "logs", "run_worker"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    uses = _USES_THE_SERVICE & set(metafunc.fixturenames)
    names = ["none", *REGRESSIONS] if uses else ["none"]
    metafunc.parametrize("_prodready_regression", names, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test as it is first, then one regression at a time."""
    order = ["none", *REGRESSIONS]
    items.sort(key=lambda item: order.index(_regression_of(item)))


def pytest_runtest_setup(item: pytest.Item) -> None:
    regression = _regression_of(item)
    if regression == "none":
        return
    if any(not e["passed"] for (_, r), e in _OUTCOMES.items() if r == regression):
        pytest.skip("this regression is caught already")
    if not _OUTCOMES.get((_test_of(item), "none"), {}).get("passed", False):
        pytest.skip("this test fails without a regression")


@pytest.fixture(autouse=True)
def _prodready_regression(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    name = str(getattr(request, "param", "none"))
    if name == "lost_commit":
        _lost_commit(monkeypatch)
    elif name == "provider_key_dropped":
        _provider_key_dropped(monkeypatch)
    elif name == "new_key_per_retry":
        yield from _wrap(_new_key_per_retry, name)
        return
    elif name == "headers_logged":
        yield from _wrap(_headers_logged, name)
        return
    yield name


def _regression_of(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return str(callspec.params.get("_prodready_regression", "none")) if callspec else "none"


def _test_of(item: pytest.Item) -> str:
    """The test's name without our parameter (but with its own, if it has any)."""
    callspec = getattr(item, "callspec", None)
    others = (
        {k: v for k, v in callspec.params.items() if k != "_prodready_regression"}
        if callspec
        else {}
    )
    base = item.nodeid.split("[")[0]
    return (
        f"{base}[{', '.join(f'{k}={v!r}' for k, v in sorted(others.items()))}]" if others else base
    )


_OUTCOMES: dict[tuple[str, str], dict[str, Any]] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.skipped:
        return report
    key = (_test_of(item), _regression_of(item))
    entry = _OUTCOMES.setdefault(
        key, {"test": key[0], "regression": key[1], "passed": True, "error": ""}
    )
    if report.failed:
        entry["passed"] = False
        if not entry["error"]:
            text = str(report.longrepr) if report.longrepr else report.outcome
            lines = [line for line in text.splitlines() if line.startswith("E ")]
            entry["error"] = (lines[0][2:].strip() if lines else text.splitlines()[-1])[:300]
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(RESULTS_ENV)
    if not target:
        return
    with open(target, "w", encoding="utf-8") as out:
        for entry in _OUTCOMES.values():
            out.write(json.dumps(entry) + "\n")
