"""Checks for module 05: logging you can debug production with.

Every check builds its own loggers (unique names, ``propagate=False``, handlers that
collect records in a list), so nothing reaches the notebook's stderr and nothing leaks
into the next cell. ``write_incident_log`` generates the incident drill's log; the
committed ``data/logs_incident.jsonl`` is ``write_incident_log(path, seed=5)``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import random
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from .._check import Fail, checker, expect, run_in_fresh_loop

# What every LogRecord has; anything else on a record came from ``extra=``.
STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_names = itertools.count()


def _fresh_logger(purpose: str) -> logging.Logger:
    """A logger no other check or cell uses: its own name, no parents' handlers."""
    logger = logging.getLogger(f"prodready.check.{purpose}{next(_names)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


class _Collect(logging.Handler):
    """Keeps every record it is given, prints nothing."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _collecting(logger: logging.Logger) -> Iterator[_Collect]:
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@contextmanager
def _root_records() -> Iterator[list[logging.LogRecord]]:
    """Every record that reaches the root logger, while no root handler prints."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = _Collect()
    root.handlers = [handler]
    try:
        yield handler.records
    finally:
        root.handlers = saved


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in STANDARD_ATTRS}


def _instance(thing: object, name: str) -> Any:
    expect(
        isinstance(thing, type), f"{name} must stay a class (the check creates it with {name}())"
    )
    try:
        return thing()  # type: ignore[operator]
    except TypeError as e:
        raise Fail(f"{name}() must work without arguments, but it raised TypeError: {e}") from None


# --- logs.json_formatter -------------------------------------------------------------


def _json_line(formatter: logging.Formatter, record: logging.LogRecord, what: str) -> Any:
    try:
        line = formatter.format(record)
    except Exception as e:
        raise Fail(
            f"format() raised {type(e).__name__}: {e} for {what}. In production a formatter "
            "that raises loses the log line (logging prints '--- Logging error ---' to stderr "
            "instead). Values JSON cannot encode (Decimal, datetime, UUID) must be written "
            "as strings."
        ) from None
    expect(isinstance(line, str), f"format() must return a str, it returned {type(line).__name__}")
    expect(
        "\n" not in line.strip(),
        f"the record for {what} became {line.count(chr(10)) + 1} lines. One record must be one "
        "line: log shippers split on newlines, and a traceback or an indented dump would "
        "arrive as many broken records.",
    )
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise Fail(
            f"the line for {what} is not valid JSON ({e.msg} at column {e.colno}): "
            f"{line[:140]}. A quote, a backslash or a newline in a message must not break "
            "the line: let a JSON encoder do the escaping."
        ) from None
    expect(isinstance(data, dict), f"each line must be a JSON object, not {type(data).__name__}")
    return data


def _check_time(data: dict[str, Any], record: logging.LogRecord) -> None:
    value = data["time"]
    expect(isinstance(value, str), f'"time" must be an ISO 8601 string, not {value!r}')
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Fail(
            f'"time" is {value!r}, which is not ISO 8601 (like 2026-11-20T14:03:12.345+00:00)'
        ) from None
    expect(
        when.tzinfo is not None,
        f'"time" is {value!r}, with no timezone: logs from servers in different zones could '
        "not be put in order. Write it in UTC and say so.",
    )
    created = datetime.fromtimestamp(record.created, UTC)
    expect(
        abs((when - created).total_seconds()) < 2,
        f'"time" is {value!r}, but the record was created at {created.isoformat()}: use the '
        "record's own creation time (record.created), not the time of formatting",
    )


@checker("logs.json_formatter")
def json_formatter(JsonFormatter: object) -> str:
    expect(
        isinstance(JsonFormatter, type) and issubclass(JsonFormatter, logging.Formatter),
        "JsonFormatter must stay a subclass of logging.Formatter",
    )
    formatter = _instance(JsonFormatter, "JsonFormatter")
    logger = _fresh_logger("json")
    tricky = 'customer wrote "refund me" \\ twice\nsecond line, naïve café ✓'
    with _collecting(logger) as out:
        logger.info(tricky)
        logger.warning("order %s total %s", 42, Decimal("9.99"))
        logger.info(
            "payment captured",
            extra={
                "order_id": 42,
                "amount": Decimal("9.99"),
                "paid_at": datetime(2026, 11, 20, 14, 3, tzinfo=UTC),
                "tags": ["gift", "express"],
            },
        )
        try:
            raise ValueError("gateway said boom")
        except ValueError:
            logger.exception("charge failed for order %s", 42)
    plain, with_args, with_extra, with_exc = out.records
    cases = [
        (plain, "a message with quotes, a backslash and a newline"),
        (with_args, 'logger.warning("order %s total %s", 42, Decimal("9.99"))'),
        (with_extra, "a record with extra={order_id, amount, paid_at, tags}"),
        (with_exc, "logger.exception(...)"),
    ]
    for record, what in cases:
        data = _json_line(formatter, record, what)
        missing = [k for k in ("time", "level", "logger", "message") if k not in data]
        expect(not missing, f"the line for {what} has no {', '.join(map(repr, missing))} key")
        expect(
            data["level"] == record.levelname,
            f'"level" is {data["level"]!r}, the record\'s level is {record.levelname!r}',
        )
        expect(
            data["logger"] == record.name, f'"logger" must be the logger\'s name ({record.name})'
        )
        expect(
            data["message"] == record.getMessage(),
            f'"message" is {data["message"]!r} for {what}; it should be the message with its '
            f"%s arguments filled in: {record.getMessage()!r}",
        )
        _check_time(data, record)
    extra = _json_line(formatter, with_extra, "the extra= record")
    for key in ("order_id", "amount", "paid_at", "tags"):
        expect(
            key in extra,
            f"the {key!r} passed with extra= is not in the line. Fields given with extra= are "
            "what make a JSON log searchable (order_id=42); copy every one of them.",
        )
    expect(extra["order_id"] == 42, f"order_id=42 came out as {extra['order_id']!r}")
    expect(str(extra["amount"]) == "9.99", f"amount=Decimal('9.99') became {extra['amount']!r}")
    expect("2026-11-20" in str(extra["paid_at"]), f"a datetime became {extra['paid_at']!r}")
    expect(extra["tags"] == ["gift", "express"], f"tags=[...] became {extra['tags']!r}")
    failure = _json_line(formatter, with_exc, "logger.exception(...)")
    trace = str(failure.get("exception", ""))
    expect(
        "Traceback" in trace and "ValueError: gateway said boom" in trace,
        "a record logged with logger.exception(...) must carry its traceback under "
        f'"exception"; the line was {json.dumps(failure)[:200]}',
    )
    return "one parseable line per record, quotes and all; extras, UTC time and tracebacks kept."


# --- logs.log_failures ---------------------------------------------------------------


@checker("logs.log_failures")
def log_failures(place_order: Callable[..., Any]) -> str:
    expect(callable(place_order), "place_order must stay a function")
    receipt = {"order_id": "ord-1001", "status": "paid"}
    with _root_records() as records:
        result = place_order("ord-1001", lambda order_id: receipt)
    expect(result is receipt, f"place_order must return what charge returned, got {result!r}")
    noisy = [r for r in records if r.levelno >= logging.ERROR]
    expect(
        not noisy, f"a successful order logged an error: {noisy[0].getMessage()!r}" if noisy else ""
    )
    for error in (TimeoutError(), KeyError("currency")):
        name = f"{type(error).__name__}({str(error) if str(error) else ''})"

        def charge(order_id: str, error: Exception = error) -> Any:
            raise error

        raised: BaseException | None = None
        with _root_records() as records:
            try:
                place_order("ord-4242", charge)
            except Exception as e:
                raised = e
        expect(
            raised is not None,
            f"when charge raised {name}, place_order returned normally. The caller now "
            "believes the order was charged: log the failure, then let it propagate.",
        )
        expect(
            raised is error or raised.__cause__ is error,  # type: ignore[union-attr]
            f"charge raised {name}, but the caller got {type(raised).__name__}: let the "
            "original exception propagate (or chain it with `from`)",
        )
        errors = [r for r in records if r.levelno >= logging.ERROR]
        expect(
            bool(errors),
            f"charge raised {name} and nothing was logged at ERROR level: the failure leaves "
            "no trace for whoever is on call",
        )
        expect(
            len(errors) == 1,
            f"one failure produced {len(errors)} ERROR records: one failure, one record "
            "(duplicates page people twice and double the error counts)",
        )
        record = errors[0]
        said = record.getMessage()
        carries_traceback = (
            record.exc_info is not None and record.exc_info[1] is error
        ) or "Traceback (most recent call last)" in said
        expect(
            carries_traceback,
            f"for {name} the error record says {said!r} and carries no traceback. "
            f"str() of {name} is {str(error)!r}: the type of the failure and the line "
            "it happened on are lost. Log with the exception attached.",
        )
        context = said + " " + " ".join(str(v) for v in _extras(record).values())
        expect(
            "ord-4242" in context,
            f"the error record says {said!r}, but not which order failed (ord-4242): "
            "nobody can look the order up",
        )
    return (
        "one ERROR record per failure, naming the order, traceback attached; the error propagates."
    )


# --- logs.redaction ------------------------------------------------------------------

_SECRETS = {
    "Authorization": "Bearer sk_live_51HxQz",
    "password": "hunter2-correct-horse",
    "card_number": "4111111111111111",
    "token": "tok_refresh_8fJ2kq",
    "api_key": "ak_webhook_Zp91",
    "PASSWORD": "Sup3r-Secret-Upper",
}


def _leaks(record: logging.LogRecord) -> str:
    """Everything a formatter could print from the record: message and extras."""
    extras = _extras(record)
    return record.getMessage() + (f" extra={extras!r}" if extras else "")


@checker("logs.redaction")
def redaction(RedactSecrets: object) -> str:
    redactor = _instance(RedactSecrets, "RedactSecrets")
    expect(
        callable(getattr(redactor, "filter", None)),
        "RedactSecrets needs a filter(record) method (subclass logging.Filter)",
    )
    parent = _fresh_logger("redact")
    child = parent.getChild("payments")  # records propagate to the parent's handler
    s = _SECRETS
    headers = {"Authorization": s["Authorization"], "Content-Type": "application/json"}
    signup = {"user": {"email": "ada@example.com", "password": s["password"]}}
    checkout = {"order_id": 42, "items": [{"sku": "SKU-77", "card_number": s["card_number"]}]}
    webhook = {"data": {"event": "refund", "api_key": s["api_key"]}}
    upper = {"login": "ada", "PASSWORD": s["PASSWORD"]}
    cases: list[tuple[str, Callable[[], None], list[str], list[str]]] = [
        ("a dict passed as the only %s argument (logging keeps it as record.args itself)",
         lambda: child.info("calling gateway headers=%s", headers),
         [s["Authorization"]], ["application/json"]),
        ("a dict nested inside another dict, among several %s arguments",
         lambda: child.info("signup %s from %s", signup, "10.0.0.7"),
         [s["password"]], ["ada@example.com", "10.0.0.7"]),
        ("a list of dicts nested inside a dict",
         lambda: child.info("checkout %s", checkout),
         [s["card_number"]], ["SKU-77"]),
        ("a key in capitals",
         lambda: child.info("login %s", upper),
         [s["PASSWORD"]], ["ada"]),
        ("a field passed with extra=",
         lambda: child.info("token refreshed", extra={"token": s["token"], "user_id": 7}),
         [s["token"]], ["user_id"]),
        ("a dict nested inside a field passed with extra=",
         lambda: child.info("webhook received", extra={"payload": webhook}),
         [s["api_key"]], ["refund"]),
        ("a message with no arguments",
         lambda: child.info("health check ok"),
         [], ["health check ok"]),
    ]  # fmt: skip
    originals = copy.deepcopy([headers, signup, checkout, webhook, upper])
    handler = _Collect()
    handler.addFilter(redactor)  # on the handler: it sees the child loggers' records too
    parent.addHandler(handler)
    try:
        for where, log, secrets, keep in cases:
            before = len(handler.records)
            log()
            expect(
                len(handler.records) == before + 1,
                f"the record with {where} never reached the handler: the filter returned a "
                "false value, which drops the line. Redact the secret, keep the record.",
            )
            shown = _leaks(handler.records[-1])
            for secret in secrets:
                expect(
                    secret not in shown,
                    f"a secret in {where} still reached the log: {shown[:160]}. Secrets hide "
                    "at any depth of what you log; anyone who can read the logs can now use it.",
                )
            for value in keep:
                expect(
                    value in shown,
                    f"with {where}, the line lost {value!r}, which is not a secret: "
                    f"{shown[:160]}. Hide only the sensitive keys, or the logs stop being useful.",
                )
    finally:
        parent.removeHandler(handler)
    changed = [
        name
        for name, now, then in zip(
            ("headers", "signup", "checkout", "webhook", "login"),
            [headers, signup, checkout, webhook, upper],
            originals,
            strict=True,
        )
        if now != then
    ]
    expect(
        not changed,
        f"logging changed the caller's own objects ({', '.join(changed)}): after the log "
        f"call, headers is {headers}. The request that follows the log line would be sent "
        "without its credentials. Redact a copy, never the original.",
    )
    return (
        "secrets hidden at every depth, in arguments and extras; "
        "other values and the caller's data untouched."
    )


# --- logs.request_id -----------------------------------------------------------------


@dataclass
class _GuardedFilter(logging.Filter):
    """Runs the learner's filter and keeps what it raised, instead of breaking a request."""

    inner: Any
    raised: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return bool(self.inner.filter(record))
        except Exception as e:
            self.raised.append(e)
            return True


def _shop_app(middleware: Any, log: logging.Logger) -> FastAPI:
    """A small shop: each request logs in its handler, in a task it spawns, in a thread."""
    app = FastAPI()
    app.middleware("http")(middleware)

    async def audit(order_id: str) -> None:
        await asyncio.sleep(0.001)
        log.info("audit order %s", order_id)

    def render(order_id: str) -> None:
        log.info("render order %s", order_id)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, str]:
        log.info("load order %s", order_id)
        await asyncio.sleep(0.001 * (int(order_id[1:]) % 7))
        task = asyncio.create_task(audit(order_id))
        await asyncio.to_thread(render, order_id)
        await task
        log.info("done order %s", order_id)
        return {"order_id": order_id}

    return app


async def _shop_traffic(app: FastAPI, ids: dict[str, str | None]) -> dict[str, httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:

        async def get(order: str, request_id: str | None) -> tuple[str, httpx.Response]:
            headers = {"X-Request-ID": request_id} if request_id else {}
            return order, await client.get(f"/orders/{order}", headers=headers)

        pairs = await asyncio.gather(*(get(order, rid) for order, rid in ids.items()))
    return dict(pairs)


@checker("logs.request_id")
def request_id(request_id_middleware: object, RequestIdFilter: object) -> str:
    expect(callable(request_id_middleware), "request_id_middleware must stay a function")
    guarded = _GuardedFilter(_instance(RequestIdFilter, "RequestIdFilter"))
    log = _fresh_logger("shop")
    handler = _Collect()
    handler.addFilter(guarded)
    log.addHandler(handler)
    app = _shop_app(request_id_middleware, log)
    ids: dict[str, str | None] = {f"o{n:02d}": f"req-{n:02d}" for n in range(20)}
    ids.update({f"o{n:02d}": None for n in range(20, 25)})  # these clients send no id
    try:
        solo = run_in_fresh_loop(lambda: _shop_traffic(app, {"o99": "req-solo"}))["o99"]
        del handler.records[:]
        responses = run_in_fresh_loop(lambda: _shop_traffic(app, ids))
        log.info("outside any request")  # startup code, a background job
    finally:
        log.removeHandler(handler)
    if guarded.raised:
        e = guarded.raised[0]
        raise Fail(
            f"RequestIdFilter.filter raised {type(e).__name__}: {e}. A filter runs for every "
            "log line, including lines logged outside any request (startup, background "
            "jobs): it must never raise. Give the request id a default."
        )
    broken = {
        o: r.status_code for o, r in [*responses.items(), ("o99", solo)] if r.status_code != 200
    }
    expect(
        not broken, f"requests failed: status {sorted(set(broken.values()))} for {sorted(broken)}"
    )
    echoed = solo.headers.get("x-request-id")
    expect(
        echoed == "req-solo",
        f"a client sent X-Request-ID: req-solo and the response carried X-Request-ID: {echoed}. "
        "Reuse the caller's id (so one id follows a request across services) and send it "
        "back, so a support ticket can quote it.",
    )
    expected = {o: ids[o] or str(r.headers.get("x-request-id")) for o, r in responses.items()}
    records = handler.records[:-1]
    outside = handler.records[-1]
    expect(
        len(records) == 4 * len(ids),
        f"25 requests logged {4 * len(ids)} lines, and {len(records)} reached the handler: the "
        "filter must return True to keep a line",
    )
    without = [r for r in records if not hasattr(r, "request_id")]
    expect(
        not without,
        f"{len(without)} of {len(records)} records have no request_id attribute: the filter "
        "sets record.request_id, so a formatter can print %(request_id)s",
    )

    def order_of(record: logging.LogRecord) -> str:
        return str(record.args[0]) if isinstance(record.args, tuple) else ""

    wrong = [r for r in records if getattr(r, "request_id") != expected[order_of(r)]]  # noqa: B009
    if wrong:
        first = wrong[0]
        places = sorted({r.getMessage().split()[0] for r in wrong})
        raise Fail(
            f"{len(wrong)} of {len(records)} log lines carried another request's id (or none): "
            f"the line {first.getMessage()!r} said request_id={getattr(first, 'request_id')!r}, "  # noqa: B009
            f"but its request was {expected[order_of(first)]!r} ({', '.join(places)} lines were "
            "affected). 25 requests were in flight at once; a module-level variable (or a "
            "thread-local: they all run on one thread) holds whichever id was set last."
        )
    for order, response in responses.items():
        echoed = response.headers.get("x-request-id")
        if ids[order]:
            expect(
                echoed == ids[order],
                f"a client sent X-Request-ID: {ids[order]} and the response carried "
                f"X-Request-ID: {echoed}. Reuse the caller's id (so one id follows a request "
                "across services) and send it back, so a support ticket can quote it.",
            )
        else:
            expect(
                bool(echoed) and echoed != "-",
                f"a request without X-Request-ID got back X-Request-ID: {echoed}. Make one up "
                "when the client sends none, and return it in the response header.",
            )
    fresh = [expected[o] for o, rid in ids.items() if rid is None]
    expect(
        len(set(fresh)) == len(fresh),
        f"5 requests without an id were given {len(set(fresh))} distinct ids: each request "
        "needs its own",
    )
    leaked = getattr(outside, "request_id", None)
    expect(
        leaked not in expected.values(),
        f"a line logged outside any request carried request_id={leaked!r}: the id of a "
        "finished request leaked into unrelated lines",
    )
    return (
        "25 concurrent requests: every line, in spawned tasks and threads too, "
        "carries its own request's id."
    )


# --- logs.incident -------------------------------------------------------------------

_ENDPOINTS = [
    ("GET", "/health", 3),
    ("GET", "/orders/{order_id}", 5),
    ("POST", "/orders", 3),
    ("POST", "/payments", 3),
    ("GET", "/search", 2),
]
# endpoint -> (logger, message, status of the request, chance per request)
_HANDLED_ERRORS = {
    "GET /orders/{order_id}": (
        "shop.orders",
        "order cache unreachable, read the database",
        200,
        0.05,
    ),
    "POST /orders": ("shop.inventory", "inventory service timed out", 503, 0.07),
    "POST /payments": ("shop.payments", "card declined by the bank", 402, 0.15),
    "GET /search": ("shop.search", "search backend returned 502", 502, 0.08),
}
_HANDLED = {
    "GET /orders/{order_id}": ("shop.orders", "order loaded"),
    "POST /orders": ("shop.orders", "order created"),
    "POST /payments": ("shop.payments", "payment captured"),
    "GET /search": ("shop.search", "search served"),
}
_CRASHES = {
    "GET /orders/{order_id}": (
        "TypeError: unsupported operand type(s) for +: 'NoneType' and 'Decimal'"
    ),
    "POST /orders": "KeyError: 'shipping_address'",
    "POST /payments": "KeyError: 'currency'",
    "GET /search": "AttributeError: 'NoneType' object has no attribute 'hits'",
}
_STRAY_LINE = (
    "WARNING:urllib3.connectionpool:Retrying (Retry(total=2, connect=None, read=None)) "
    "after connection broken by 'ReadTimeoutError'"
)


@dataclass(frozen=True)
class IncidentTruth:
    request_id: str
    endpoint: str
    errors_per_endpoint: dict[str, int]
    json_lines: int
    other_lines: int


def write_incident_log(
    path: Path, *, seed: int = 5, requests: int = 400, padding: int = 0
) -> IncidentTruth:
    """A shop's structured log: interleaved requests, handled errors, one crash (status
    500), errors from a background job (request_id "-"), and lines that are not JSON."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    crash_at = rng.randrange(requests // 3, 2 * requests // 3)
    events: list[tuple[float, int, dict[str, Any]]] = []
    counts: dict[str, int] = {}
    crashed = ("", "")
    order = itertools.count()

    def emit(t: float, level: str, logger: str, message: str, rid: str, **fields: Any) -> None:
        base = {"level": level, "logger": logger, "message": message, "request_id": rid}
        events.append((t, next(order), base | fields))

    weights = [w for *_, w in _ENDPOINTS]
    extra = {"detail": "." * padding} if padding else {}  # fat lines, for a memory test
    for i in range(requests):
        method, route, _ = rng.choices(_ENDPOINTS, weights)[0]
        if i == crash_at:
            method, route = rng.choice([k.split(" ") for k in _CRASHES])
        endpoint = f"{method} {route}"
        rid = f"{rng.getrandbits(64):016x}"
        t = i * 0.35 + rng.uniform(0, 0.3)
        url = route.replace("{order_id}", str(rng.randrange(1000, 9999)))
        emit(t, "INFO", "shop.http", "request started", rid,
             method=method, route=route, path=url, user_agent="shop-web/4.2")  # fmt: skip
        status = 200 if method == "GET" else 201
        t += rng.uniform(0.005, 0.4)
        if route != "/health" and rng.random() < 0.1:
            emit(
                t, "WARNING", "shop.db", "slow query", rid, duration_ms=round(rng.uniform(300, 900))
            )
        if i == crash_at:
            t += 0.01
            trace = f"Traceback (most recent call last):\n  ...\n{_CRASHES[endpoint]}"
            emit(t, "ERROR", "shop.http", "unhandled exception", rid, exception=trace)
            status, crashed = 500, (rid, endpoint)
            counts[endpoint] = counts.get(endpoint, 0) + 1
        elif endpoint in _HANDLED_ERRORS and rng.random() < _HANDLED_ERRORS[endpoint][3]:
            logger, message, status, _ = _HANDLED_ERRORS[endpoint]
            for _attempt in range(1 if status != 503 else rng.choice([1, 2])):
                t += 0.01
                emit(t, "ERROR", logger, message, rid)
                counts[endpoint] = counts.get(endpoint, 0) + 1
        elif route != "/health":
            logger, message = _HANDLED[endpoint]
            emit(t, "INFO", logger, message, rid, **extra)
        t += 0.01
        emit(t, "INFO", "shop.http", "request finished", rid,
             status=status, duration_ms=round(rng.uniform(2, 400), 1))  # fmt: skip
    span = requests * 0.35
    for fraction in (0.2, 0.75):
        emit(
            span * fraction,
            "ERROR",
            "shop.worker",
            "nightly export failed: disk quota exceeded",
            "-",
        )
        emit(span * fraction + 0.5, "INFO", "shop.worker", "export retry scheduled", "-")
    lines = []
    for t, _, event in sorted(events, key=lambda e: (e[0], e[1])):
        stamp = (start + timedelta(seconds=t)).isoformat(timespec="milliseconds")
        lines.append(json.dumps({"time": stamp.replace("+00:00", "Z")} | event))
    json_lines = len(lines) - 1  # the last one is cut short below
    lines.insert(len(lines) // 3, _STRAY_LINE)
    lines[-1] = lines[-1][: len(lines[-1]) // 2]  # the process was killed mid-write
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return IncidentTruth(crashed[0], crashed[1], counts, json_lines, 2)


def _reader_output(read_records: Callable[[Path], Any], path: Path, truth: IncidentTruth) -> None:
    try:
        records = read_records(path)
        got = list(records)
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise Fail(
            f"read_records raised {type(e).__name__}: {e}. Real logs hold lines that are not "
            "JSON: a library's plain-text warning, a line cut short when the process was "
            "killed. One bad line must not stop the investigation: skip it."
        ) from None
    expect(
        isinstance(records, Iterator),
        f"read_records returned a {type(records).__name__}: it read the whole file before "
        "handing over the first record. Production logs are gigabytes; yield one record per "
        "line instead (a generator).",
    )
    not_dicts = [r for r in got if not isinstance(r, dict)]
    expect(
        not not_dicts,
        f"read_records must yield dicts (parsed JSON), got {type(not_dicts[0]).__name__}"
        if not_dicts
        else "",
    )
    expect(
        len(got) == truth.json_lines,
        f"the log holds {truth.json_lines} JSON records and {truth.other_lines} lines that are "
        "not JSON (a library's plain-text warning, a line cut short when the process was "
        f"killed); read_records yielded {len(got)}. Skip what does not parse, keep the rest.",
    )


def _compare_incident(result: Any, truth: IncidentTruth, which: str) -> None:
    try:
        rid, endpoint, counts = result
    except (TypeError, ValueError):
        raise Fail(
            f"investigate must return an Incident (request_id, endpoint, errors_per_endpoint), "
            f"got {result!r:.120}"
        ) from None
    expect(
        rid == truth.request_id,
        f"in {which}, the failed request (the one that answered 500) is not {rid!r}. Find the "
        "record of the crash, and take its request_id.",
    )
    try:
        given = {str(k): int(v) for k, v in dict(counts).items() if v}
    except (TypeError, ValueError):
        raise Fail(
            f"errors_per_endpoint must be a dict of endpoint -> count, got {counts!r:.120}"
        ) from None
    if given == truth.errors_per_endpoint:
        _compare_endpoint(endpoint, truth, which)
        return
    unknown = sorted(set(given) - set(truth.errors_per_endpoint))
    if any(any(ch.isdigit() for ch in k) for k in unknown):
        raise Fail(
            f"errors were counted per raw path ({unknown[0]!r}): each order id became its own "
            "endpoint. Group by the route template ('GET /orders/{order_id}')."
        )
    if unknown and not set(given) & set(truth.errors_per_endpoint):
        raise Fail(
            f"errors_per_endpoint has the keys {unknown[:4]}: count per endpoint, written "
            "'METHOD /route' (e.g. 'POST /payments'), which the request's 'request started' "
            "line gives; the ERROR line itself names only its request_id"
        )
    if unknown:
        raise Fail(
            f"errors_per_endpoint has {unknown} which is not an endpoint: errors logged "
            "outside any request (request_id '-', a background job) belong to no endpoint"
        )
    diffs = [
        f"{k}: you counted {given.get(k, 0)}, the log has {n}"
        for k, n in sorted(truth.errors_per_endpoint.items())
        if given.get(k, 0) != n
    ]
    raise Fail(
        f"in {which}, the ERROR records per endpoint are off: {'; '.join(diffs)}. An ERROR "
        "line names its request only by request_id: join it to that request's 'request "
        "started' line to find its endpoint."
    )


def _compare_endpoint(endpoint: object, truth: IncidentTruth, which: str) -> None:
    expect(
        endpoint == truth.endpoint,
        f"in {which}, the failed request's endpoint is not {endpoint!r}: it is written as "
        "'METHOD /route' (e.g. 'GET /orders/{order_id}'), taken from the request's "
        "'request started' line, found by its request_id",
    )


def _peak_mib(call: Callable[[], Any]) -> tuple[Any, float]:
    tracemalloc.start()
    try:
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak / 2**20


@checker("logs.incident")
def incident(read_records: Callable[[Path], Any], investigate: Callable[[Path], Any]) -> str:
    expect(callable(read_records) and callable(investigate), "keep both functions")
    with tempfile.TemporaryDirectory(prefix="prodready-logs-") as tmp:
        small, big = Path(tmp, "small.jsonl"), Path(tmp, "big.jsonl")
        small_truth = write_incident_log(small, seed=23, requests=300)
        _reader_output(read_records, small, small_truth)
        _compare_incident(investigate(small), small_truth, "a freshly generated log")
        big_truth = write_incident_log(big, seed=31, requests=3000, padding=3000)
        size = big.stat().st_size / 2**20
        result, peak = _peak_mib(lambda: investigate(big))
        _compare_incident(result, big_truth, f"a {size:.0f} MB log")
    expect(
        peak < size / 3,
        f"investigate held {peak:.0f} MB in memory for a {size:.0f} MB log: it keeps the whole "
        "log (a list of every record?). Stream the records through once and keep only what "
        "the answer needs.",
    )
    return "the crashed request, its endpoint and the errors per endpoint, streamed in one pass."
