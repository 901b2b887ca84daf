"""Checks for module 05: logging you can debug production with.

Every check builds its own loggers (unique names, ``propagate=False``, handlers that
collect records in a list), so nothing reaches the notebook's stderr and nothing leaks
into the next cell. The checks that need uvicorn's own loggers (``request_id``,
``setup``) borrow them and give back exactly what they found. ``write_incident_log``
generates the incident drill's log; the committed ``data/logs_incident.jsonl`` is
``write_incident_log(path, seed=5)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import io
import itertools
import json
import logging
import logging.config
import os
import random
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlparse

import httpx

from .._check import Fail, checker, expect, run_in_fresh_loop
from ._support import Overran, serve, within

if TYPE_CHECKING:  # imported where they are used: FastAPI alone takes a while to import
    from fastapi import FastAPI

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

# The records are stamped with this creation time before they are formatted, so a
# formatter that writes the time of formatting (now()) is years off.
_CREATED = datetime(2021, 3, 4, 5, 6, 7, 89_000, tzinfo=UTC)
# Formatting runs with the process's local zone at UTC+05:45 (POSIX TZ: west is
# positive), so local time written as if it were UTC is off by hours, whatever zone the
# machine is in.
_FAR_ZONE = "NPT-5:45"
_CORE_KEYS = ("time", "level", "logger", "message")


@contextmanager
def _local_zone(tz: str) -> Iterator[None]:
    """Switch the process's local time zone for the duration (where the OS allows)."""
    if not hasattr(time, "tzset"):  # Windows: the check just runs in the machine's zone
        yield
        return
    saved = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def _format(formatter: logging.Formatter, record: logging.LogRecord, what: str) -> str:
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
    return line


def _json_line(line: str, what: str) -> Any:
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


def _check_time(data: dict[str, Any]) -> None:
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
    off = (when - _CREATED).total_seconds()
    expect(
        abs(off) < 1,
        f'"time" is {value!r} for a record created at {_CREATED.isoformat()}'
        + (
            f": {abs(off) / 3600:.2f} hours off, which is a local time labelled as UTC (the "
            "check formats in a zone 5:45 ahead of UTC; formatTime() and a naive "
            "datetime.fromtimestamp() both use local time)"
            if abs(abs(off) - 5.75 * 3600) < 2
            else ": the line must carry when the record was created (record.created), not "
            "when it was formatted. Handlers may format much later (a queue, a slow disk)."
        ),
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
        # extras whose names are the line's own keys (a loyalty "level", a service name)
        logger.info(
            "tier changed",
            extra={"level": "gold", "logger": "loyalty-v2", "time": "yesterday", "user_id": 7},
        )
    plain, with_args, with_extra, with_exc, clashing = out.records
    for record in out.records:  # as if a queue handed them over years later
        record.created = _CREATED.timestamp()
        record.msecs = _CREATED.microsecond / 1000
    cases = [
        (plain, "a message with quotes, a backslash and a newline"),
        (with_args, 'logger.warning("order %s total %s", 42, Decimal("9.99"))'),
        (with_extra, "a record with extra={order_id, amount, paid_at, tags}"),
        (with_exc, "logger.exception(...)"),
        (clashing, 'a record with extra={"level": "gold", "logger": "loyalty-v2", ...}'),
    ]
    lines: dict[int, dict[str, Any]] = {}
    messages = {id(record): record.getMessage() for record, _ in cases}
    # what the second formatting must repeat: the record's own content (a line may also
    # carry a sequence number or a line id of the formatter's, which may differ)
    own_keys = {id(record): {*_CORE_KEYS, "exception", *_extras(record)} for record, _ in cases}
    with _local_zone(_FAR_ZONE):
        for record, what in cases:
            lines[id(record)] = _json_line(_format(formatter, record, what), what)
        again = {
            id(record): _json_line(_format(formatter, record, what), f"{what}, formatted again")
            for record, what in cases
        }
    for record, what in cases:
        data = lines[id(record)]
        missing = [k for k in _CORE_KEYS if k not in data]
        expect(not missing, f"the line for {what} has no {', '.join(map(repr, missing))} key")
        clash = (
            " An extra= field must never replace one of the line's own keys: the log "
            "platform filters and alerts on them (an ERROR relabelled 'gold' never pages "
            "anyone). Keep such an extra under another name, or drop it."
            if record is clashing
            else ""
        )
        expect(
            data["level"] == record.levelname,
            f'"level" is {data["level"]!r}, the record\'s level is {record.levelname!r}.{clash}',
        )
        expect(
            data["logger"] == record.name,
            f'"logger" is {data["logger"]!r}: it must be the logger\'s name ({record.name}).'
            f"{clash}",
        )
        expect(
            data["message"] == messages[id(record)],
            f'"message" is {data["message"]!r} for {what}; it should be the message with its '
            f"%s arguments filled in: {messages[id(record)]!r}",
        )
        if record is clashing and data["time"] == "yesterday":
            raise Fail(f"\"time\" is 'yesterday' for {what}.{clash}")
        _check_time(data)
    extra = lines[id(with_extra)]
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
    expect(
        lines[id(clashing)].get("user_id") == 7,
        "the user_id=7 passed with extra= next to the clashing names is not in the line",
    )
    failure = lines[id(with_exc)]
    trace = str(failure.get("exception", ""))
    expect(
        "Traceback" in trace and "ValueError: gateway said boom" in trace,
        "a record logged with logger.exception(...) must carry its traceback under "
        f'"exception"; the line was {json.dumps(failure)[:200]}',
    )
    for record, what in cases:
        first, second = lines[id(record)], again[id(record)]
        keys = own_keys[id(record)] & (set(first) | set(second))
        expect(
            all(first.get(k) == second.get(k) for k in keys)
            and record.getMessage() == messages[id(record)],
            f"formatting the record for {what} a second time gave another line (or changed "
            "the record's message). One record often goes to several handlers (the console "
            "and a file, or a log shipper): format() must leave the record as it found it.",
        )
    return (
        "one parseable line per record, quotes and all; extras kept, never over the line's own "
        "keys; the record's UTC time; tracebacks."
    )


# --- logs.log_failures ---------------------------------------------------------------


def _everything_said(record: logging.LogRecord) -> str:
    """What a formatter would print: the message, the traceback with its notes, extras."""
    try:
        text = logging.Formatter("%(message)s").format(copy.copy(record))
    except Exception:
        text = str(record.msg)
    return text + " " + " ".join(str(v) for v in _extras(record).values())


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
    for order_id, error in (("ord-4242", TimeoutError()), ("ord-5151", KeyError("currency"))):
        name = f"{type(error).__name__}({str(error) if str(error) else ''})"

        def charge(order_id: str, error: Exception = error) -> Any:
            raise error

        raised: BaseException | None = None
        with _root_records() as records:
            try:
                place_order(order_id, charge)
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
        expect(
            order_id in _everything_said(record),
            f"the error record says {said!r}, but nothing in it (message, fields, traceback) "
            f"says which order failed ({order_id}): nobody can look the order up",
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
    "headers": "Bearer sk_live_headers_77",
    "mutable": "Bearer sk_live_mutable_31",
    "model": "pydantic-hunter3",
    "secret_str": "tok_secretstr_66",
    "dataclass": "tok_dataclass_12",
    "grouped": "tok_grouped_40",
    "url_key": "ak_live_query_93",
    "as_message": "hunter4-as-the-message",
}


@cache
def _signup_model() -> Any:
    """A request body model, the way FastAPI hands it to the endpoint (built on first use)."""
    from pydantic import BaseModel, SecretStr

    class Signup(BaseModel):
        email: str
        password: str
        api_token: SecretStr

    return Signup


@dataclass
class _Session:
    user_id: int
    token: str


class _Holder(NamedTuple):
    label: str
    payload: dict[str, Any]


def _rendered(record: logging.LogRecord, where: str) -> str:
    """What a formatter prints from the record: message, traceback, and the extras."""
    try:
        text = logging.Formatter("%(message)s").format(record)
    except Exception as e:
        raise Fail(
            f"after RedactSecrets ran on the record with {where}, the record could not be "
            f"formatted ({type(e).__name__}: {e}). A handler would print '--- Logging error "
            "---' instead of the line. When a single mapping is logged, record.args is that "
            "mapping itself, not a tuple; whatever you put back must still fit the message's "
            "%s placeholders."
        ) from None
    extras = _extras(record)
    return text + (f" extra={extras!r}" if extras else "")


def _failing_rates_call(api_key: str) -> httpx.HTTPStatusError:
    """A real httpx error whose text carries the URL, query string and all."""
    url = f"https://rates.example/v1/latest?api_key={api_key}&currency=EUR"
    response = httpx.Response(401, request=httpx.Request("GET", url))
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as e:
        return e
    raise AssertionError("raise_for_status() did not raise")  # pragma: no cover


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
    from pydantic import SecretStr
    from starlette.datastructures import Headers, MutableHeaders

    request_headers = Headers(
        {"authorization": s["headers"], "content-type": "application/json", "x-shop": "eu-1"}
    )
    response_headers = MutableHeaders({"Authorization": s["mutable"], "X-Cache": "MISS"})
    body = _signup_model()(
        email="grace@example.com", password=s["model"], api_token=SecretStr(s["secret_str"])
    )
    session = _Session(user_id=77, token=s["dataclass"])
    grouped: defaultdict[str, list[Any]] = defaultdict(list)
    grouped["gift"].append({"sku": "SKU-9", "token": s["grouped"]})
    holder = _Holder("nested", {"card_number": s["card_number"], "sku": "SKU-31"})
    parsed = urlparse("https://rates.example/v1/latest?currency=EUR&page=2")
    client = httpx.Client(verify=False)  # never connects; no certificates to load
    upload = tempfile.TemporaryFile()  # noqa: SIM115  # closed in the finally below
    http_error = _failing_rates_call(s["url_key"])
    as_message = {"event": "signup", "email": "lin@example.com", "password": s["as_message"]}

    def log_failure() -> None:
        try:
            raise http_error
        except httpx.HTTPStatusError:
            child.exception("exchange rate lookup failed")

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
        ("a namedtuple from urlparse()",
         lambda: child.info("calling %s", parsed),
         [], ["rates.example", "currency=EUR"]),
        ("an httpx.Client (it holds a lock) and an open file passed with extra=",
         lambda: child.info("client %s ready", client, extra={"upload": upload}),
         [], ["httpx.Client"]),
        ("Starlette's request.headers (a Headers object: a Mapping, not a dict)",
         lambda: child.info("request headers %s", request_headers),
         [s["headers"]], ["application/json", "eu-1"]),
        ("a MutableHeaders passed with extra=",
         lambda: child.info("response ready", extra={"response_headers": response_headers}),
         [s["mutable"]], ["MISS"]),
        ("a Pydantic model with a password field (and a SecretStr), as FastAPI passes a body",
         lambda: child.info("signup body %s", body),
         [s["model"], s["secret_str"]], ["grace@example.com"]),
        ("a defaultdict of lists passed with extra=",
         lambda: child.info("cart grouped", extra={"lines": grouped}),
         [s["grouped"]], ["SKU-9"]),
        ("a message with no arguments",
         lambda: child.info("health check ok"),
         [], ["health check ok"]),
        # Beyond the task's rule (dicts and lists at any depth, any mapping, Pydantic
        # models): what hides in a tuple's contents, a dataclass, a traceback's text or a
        # dict logged as the message need not be hidden (the lesson shows how, the
        # reference does it). Still checked: never raise, never change the caller's
        # objects, keep the line and its other values.
        ("a namedtuple holding a dict",
         lambda: child.info("holder %s", holder),
         [], ["SKU-31", "nested"]),
        ("a dataclass with a token field, inside a list",
         lambda: child.info("sessions %s", [session]),
         [], ["77"]),
        ("logger.exception() for an httpx error whose text holds the URL with ?api_key=...",
         log_failure,
         [], ["exchange rate lookup failed", "HTTPStatusError", "401"]),
        ("a dict logged as the message itself (log.info({...}), as JSON logging invites)",
         lambda: child.info(as_message),
         [], ["lin@example.com", "signup"]),
    ]  # fmt: skip

    def fingerprints() -> dict[str, Any]:
        """The caller's objects, as values to compare before and after each log call."""
        return {
            "headers": copy.deepcopy(headers),
            "signup": copy.deepcopy(signup),
            "checkout": copy.deepcopy(checkout),
            "webhook": copy.deepcopy(webhook),
            "login": copy.deepcopy(upper),
            "the namedtuple's dict": copy.deepcopy(holder.payload),
            "the defaultdict": copy.deepcopy(dict(grouped)),
            "the MutableHeaders": list(response_headers.items()),
            "the Pydantic body": body.model_dump(),
            "the dataclass": (session.user_id, session.token),
            "the exception": (str(http_error), http_error.args),
            "the dict logged as the message": copy.deepcopy(as_message),
        }

    originals = fingerprints()
    handler = _Collect()
    handler.addFilter(redactor)  # on the handler: it sees the child loggers' records too
    parent.addHandler(handler)
    try:
        for where, log, secrets, keep in cases:
            before = len(handler.records)
            try:
                log()
            except Exception as e:
                raise Fail(
                    f"logging a record with {where} raised {type(e).__name__}: {e}. It came "
                    "out of RedactSecrets.filter: logging runs filters inside the log call, "
                    "so the exception escapes into the request that was logging, and one log "
                    "line takes the request down. A filter must never raise. (type(value)(...) "
                    "cannot rebuild every type; copy.deepcopy cannot copy a lock or a file.)"
                ) from None
            changed = [k for k, v in fingerprints().items() if v != originals[k]]
            expect(
                not changed,
                f"logging a record with {where} changed the caller's own objects "
                f"({', '.join(changed)}): after the log call they no longer hold their real "
                "values. The request that follows the log line would be sent without its "
                "credentials, or an error re-raised with another message. Redact a copy, "
                "never the original.",
            )
            expect(
                len(handler.records) == before + 1,
                f"the record with {where} never reached the handler: the filter returned a "
                "false value, which drops the line. Redact the secret, keep the record.",
            )
            shown = _rendered(handler.records[-1], where)
            for secret in secrets:
                expect(
                    secret not in shown,
                    f"a secret in {where} still reached the log: {shown[:200]}. Secrets hide "
                    "at any depth and in any container of what you log; anyone who can read "
                    "the logs can now use it.",
                )
            for value in keep:
                expect(
                    value in shown,
                    f"with {where}, the line lost {value!r}, which is not a secret: "
                    f"{shown[:200]}. Hide only the sensitive values and leave everything else "
                    "(including objects you do not know) as it is, or the logs stop being "
                    "useful.",
                )
    finally:
        parent.removeHandler(handler)
        client.close()
        upload.close()
    return (
        "secrets hidden at every depth, in any mapping, Pydantic model or list, in arguments "
        "and extras; nothing raised; other values and the caller's data untouched."
    )


# --- logs.request_id -----------------------------------------------------------------

# Python 3.12 logs the LogRecord a filter returns; 3.11 only tests it for truth.
_FILTERS_MAY_REPLACE = sys.version_info >= (3, 12)
_REQUESTS = 25


class _GuardedFilter:
    """Runs the learner's filter the way logging would, and keeps what it raised instead
    of breaking a request (and whether it handed back a copy of the record)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.raised: list[BaseException] = []
        self.copies = 0

    def filter(self, record: logging.LogRecord) -> Any:
        try:
            result = getattr(self.inner, "filter", self.inner)(record)  # logging takes callables
        except Exception as e:
            self.raised.append(e)
            return True
        if isinstance(result, logging.LogRecord) and result is not record:
            self.copies += 1
            # pass the copy on exactly where logging itself honours it
            return result if _FILTERS_MAY_REPLACE else True
        return bool(result)


@contextmanager
def _borrowed_logger(name: str, handler: logging.Handler) -> Iterator[logging.Logger]:
    """Point a logger someone else owns (uvicorn's) at ``handler`` alone; give it back."""
    logger = logging.getLogger(name)
    saved = logger.handlers[:], logger.level, logger.propagate, logger.disabled
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.disabled = False
    try:
        yield logger
    finally:
        logger.handlers, level, logger.propagate, logger.disabled = saved
        logger.setLevel(level)


def _install(app: FastAPI, middleware: Any) -> None:
    """An ASGI middleware class (or factory of one app) goes through add_middleware; a
    function of (request, call_next) is an HTTP middleware."""
    if isinstance(middleware, type):
        app.add_middleware(middleware)  # type: ignore[arg-type]
        return
    try:
        required = [
            p
            for p in inspect.signature(middleware).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        required = []
    if len(required) == 1:
        app.add_middleware(middleware)
    else:
        app.middleware("http")(middleware)


def _shop_app(middleware: Any, log: logging.Logger) -> FastAPI:
    """A small shop: each request logs in its handler, in a task it spawns, in a thread."""
    from fastapi import FastAPI

    app = FastAPI()
    _install(app, middleware)

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


async def _shop_traffic(url: str, ids: dict[str, str | None]) -> dict[str, httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def get(order: str, request_id: str | None) -> tuple[str, httpx.Response]:
            headers = {"X-Request-ID": request_id} if request_id else {}
            return order, await client.get(f"/orders/{order}", headers=headers)

        pairs = await within(20, asyncio.gather(*(get(o, rid) for o, rid in ids.items())))
    return dict(pairs)


def _rid(record: logging.LogRecord) -> object:
    return getattr(record, "request_id", None)


def _order_of(record: logging.LogRecord) -> str:
    """The order a line is about: the app's first %s argument, or the access line's path."""
    args = record.args if isinstance(record.args, tuple) else ()
    if record.name == "uvicorn.access" and len(args) >= 3:
        return str(args[2]).rsplit("/", 1)[-1]
    return str(args[0]) if args else ""


@checker("logs.request_id")
def request_id(request_id_middleware: object, RequestIdFilter: object) -> str:
    expect(
        callable(request_id_middleware),
        "request_id_middleware must stay a middleware: a pure ASGI one (a class, or a "
        "function, that takes the app), or an HTTP middleware function of (request, call_next)",
    )
    guarded = _GuardedFilter(_instance(RequestIdFilter, "RequestIdFilter"))
    log = _fresh_logger("shop")
    handler = _Collect()
    handler.addFilter(guarded)  # a duck-typed filter, as logging allows
    log.addHandler(handler)
    try:
        app = _shop_app(request_id_middleware, log)
    except Exception as e:
        raise Fail(
            f"installing the middleware on a FastAPI app raised {type(e).__name__}: {e}"
        ) from None
    ids: dict[str, str | None] = {f"o{n:02d}": f"req-{n:02d}" for n in range(20)}
    ids.update({f"o{n:02d}": None for n in range(20, _REQUESTS)})  # these clients send no id
    server_log = _Collect()  # uvicorn's own lines (a crash in the middleware): kept, not printed
    try:
        # log_config=None: uvicorn leaves logging to us, and its access line reaches `handler`
        with (
            _borrowed_logger("uvicorn.access", handler),
            _borrowed_logger("uvicorn.error", server_log),
            serve(app, log_config=None, log_level=None) as url,
        ):
            try:
                responses = run_in_fresh_loop(lambda: _shop_traffic(url, ids))
            except Overran:
                raise Fail(
                    f"{_REQUESTS} requests to the app were still unanswered after 20 s"
                ) from None
            log.info("outside any request")  # startup code, a background job
    finally:
        log.removeHandler(handler)
    if guarded.raised:
        first_error = guarded.raised[0]
        raise Fail(
            f"RequestIdFilter.filter raised {type(first_error).__name__}: {first_error}. "
            "A filter runs for every "
            "log line, including lines logged outside any request (startup, background "
            "jobs): it must never raise. Give the request id a default."
        )
    expect(
        not (guarded.copies and not _FILTERS_MAY_REPLACE),
        "RequestIdFilter.filter returned a new LogRecord instead of setting request_id on the "
        "record it was given. Python 3.12 and later log the record a filter returns; this "
        f"Python ({sys.version_info.major}.{sys.version_info.minor}) only checks that the "
        "result is true and logs the original record, so every line lost its id. Set the "
        "attribute on the record itself: that works on every version.",
    )
    broken = {o: r.status_code for o, r in responses.items() if r.status_code != 200}
    if broken:
        crashes = [r.exc_info[1] for r in server_log.records if r.exc_info and r.exc_info[1]]
        raise Fail(
            f"requests failed: status {sorted(set(broken.values()))} for {sorted(broken)}"
            + (f"; the app raised {type(crashes[0]).__name__}: {crashes[0]}" if crashes else "")
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
    expected = {o: ids[o] or str(r.headers.get("x-request-id")) for o, r in responses.items()}
    fresh = [expected[o] for o, rid in ids.items() if rid is None]
    expect(
        len(set(fresh)) == len(fresh),
        f"{len(fresh)} requests without an id were given {len(set(fresh))} distinct ids: each "
        "request needs its own",
    )
    outside = handler.records[-1]
    records = [r for r in handler.records[:-1] if r.name != "uvicorn.access"]
    access = [r for r in handler.records if r.name == "uvicorn.access"]
    expect(
        len(records) == 4 * _REQUESTS,
        f"{_REQUESTS} requests logged {4 * _REQUESTS} lines, and {len(records)} reached the "
        "handler: the filter must return True to keep a line",
    )
    expect(
        len(access) == _REQUESTS,
        f"uvicorn wrote {len(access)} access lines for {_REQUESTS} requests: the filter must "
        "keep uvicorn's lines too",
    )
    without = [r for r in [*records, *access] if not hasattr(r, "request_id")]
    expect(
        not without,
        f"{len(without)} of {len(records) + len(access)} records have no request_id "
        "attribute: the filter sets record.request_id, so a formatter can print "
        "%(request_id)s",
    )
    wrong = [r for r in records if _rid(r) != expected.get(_order_of(r))]
    if wrong:
        first = wrong[0]
        places = sorted({r.getMessage().split()[0] for r in wrong})
        raise Fail(
            f"{len(wrong)} of {len(records)} log lines carried another request's id (or none): "
            f"the line {first.getMessage()!r} said request_id={_rid(first)!r}, "
            f"but its request was {expected.get(_order_of(first))!r} ({', '.join(places)} "
            f"lines were affected). {_REQUESTS} requests were in flight at once; a "
            "module-level variable (or a thread-local: they all run on one thread) holds "
            "whichever id was set last."
        )
    wrong_access = [r for r in access if _rid(r) != expected.get(_order_of(r))]
    if wrong_access:
        first = wrong_access[0]
        raise Fail(
            f"{len(wrong_access)} of {len(access)} of uvicorn's access lines carried the wrong "
            f"request id: {first.getMessage()!r} said request_id={_rid(first)!r}, but "
            f"that request was {expected.get(_order_of(first))!r}. The access line is the one "
            "line every request writes, the one support searches first. uvicorn writes it "
            "inside send(), while the response goes out, and the response of an HTTP "
            "middleware goes out after the function has returned: by then its `finally` has "
            "run. The id must still be current when the response is sent."
        )
    leaked = getattr(outside, "request_id", None)
    expect(
        leaked not in expected.values(),
        f"a line logged outside any request carried request_id={leaked!r}: the id of a "
        "finished request leaked into unrelated lines",
    )
    return (
        f"{_REQUESTS} concurrent requests on uvicorn: every line, in spawned tasks and threads "
        "and on the access log too, carries its own request's id."
    )


# --- logs.setup ----------------------------------------------------------------------

_PRE_EXISTING = "payments_sdk"  # a library imported, and its logger made, before the config
_CARD = "4111111111111111"
_LoggerState = tuple[int, list[logging.Handler], list[Any], bool, bool]


def _all_loggers() -> list[logging.Logger]:
    known = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(lg for lg in known if isinstance(lg, logging.Logger))]


def _state(logger: logging.Logger) -> _LoggerState:
    return logger.level, logger.handlers[:], logger.filters[:], logger.propagate, logger.disabled


def _set_state(logger: logging.Logger, state: _LoggerState) -> None:
    level, handlers, filters, propagate, disabled = state
    logger.setLevel(level)
    logger.handlers, logger.filters = list(handlers), list(filters)
    logger.propagate, logger.disabled = propagate, disabled


_PRISTINE: _LoggerState = (logging.NOTSET, [], [], True, False)


def _listeners() -> list[Any]:
    """QueueListeners that a config started (dictConfig does, for a queue handler)."""
    handlers = [h for lg in _all_loggers() for h in lg.handlers]
    listeners = [getattr(h, "listener", None) for h in handlers]
    return [listener for listener in listeners if listener is not None]


def _stop_listeners() -> None:
    for listener in _listeners():
        if getattr(listener, "_thread", None) is not None:
            with contextlib.suppress(Exception):
                listener.stop()


@contextmanager
def _logging_put_back() -> Iterator[None]:
    """Whatever the learner's config does to the process's loggers is undone afterwards."""
    saved = {lg: _state(lg) for lg in _all_loggers()}
    try:
        yield
    finally:
        _stop_listeners()
        for lg in _all_loggers():
            _set_state(lg, saved.get(lg, _PRISTINE if lg is not logging.getLogger() else
                                     (logging.WARNING, [], [], True, False)))  # fmt: skip


def _where_it_writes(stream: object, out: io.StringIO, err: io.StringIO) -> io.StringIO | None:
    """The check's buffer for a stream a handler holds: stdout, stderr, or neither."""
    if stream is out or stream is err:
        return stream
    name = getattr(stream, "name", None)
    if stream is sys.__stdout__ or name in ("stdout", "<stdout>"):
        return out
    if stream is sys.__stderr__ or name in ("stderr", "<stderr>"):
        return err
    return None


def _capture_std_streams(out: io.StringIO, err: io.StringIO) -> None:
    """Handlers that hold the real stdout/stderr (``"stream": sys.stdout`` instead of
    ``ext://sys.stdout``) write into the check's buffers instead."""
    handlers = {h for lg in _all_loggers() for h in lg.handlers}
    for listener in _listeners():
        handlers.update(listener.handlers)
    for handler in handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            target = _where_it_writes(handler.stream, out, err)
            if target is not None and target is not handler.stream:
                handler.setStream(target)


def _apply(config: dict[str, Any]) -> None:
    try:
        logging.config.dictConfig(copy.copy(config))
    except Exception as e:
        cause = f" ({type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else ""
        raise Fail(
            f"logging.config.dictConfig(LOGGING) raised {type(e).__name__}: {e}{cause}"
        ) from None


def _setup_app() -> FastAPI:
    from fastapi import FastAPI

    app = FastAPI()
    orders = logging.getLogger("shop.orders")
    payments = logging.getLogger("shop.payments")

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        orders.debug("cart for order %s: 3 lines", order_id)
        orders.info("order %s loaded", order_id)
        payments.info("charging %s", {"card_number": _CARD, "amount": "9.99"})
        return {"order_id": order_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("the shop's own bug")

    return app


@dataclass
class _Flow:
    name: str  # what the process did before the learner's config ran
    out: io.StringIO = field(default_factory=io.StringIO)
    err: io.StringIO = field(default_factory=io.StringIO)
    queued: bool = False  # the config hands records to a QueueHandler
    guards: list[_GuardedFilter] = field(default_factory=list)

    def filter_error(self) -> str:
        """What the first filter that raised said, for a message; "" if none raised."""
        for guard in self.guards:
            if guard.raised:
                name = getattr(guard.inner, "__qualname__", None) or type(guard.inner).__name__
                error = guard.raised[0]
                return (
                    f"{name}.filter raised {type(error).__name__}: {error} on a record the "
                    "process logged outside any request (uvicorn's and the libraries' records "
                    "pass through it too). A filter must never raise: in production the "
                    "exception escapes into whatever was logging. Fix that filter first."
                )
        return ""


def _guard_filters(flow: _Flow) -> None:
    """The learner's filters run as they are, but one that raises is noted, not fatal:
    this check is about the wiring (exercises 3 and 4 check the filters themselves)."""
    owners: list[logging.Filterer] = [*_all_loggers()]
    owners += list({h for lg in _all_loggers() for h in lg.handlers})
    for listener in _listeners():
        owners += list(listener.handlers)
    for owner in owners:
        guarded = [_GuardedFilter(f) for f in owner.filters]
        flow.guards += guarded
        owner.filters = list(guarded)


@contextmanager
def _noticing_errors(name: str) -> Iterator[threading.Event]:
    """An event set once ``name`` has handled an ERROR record, whatever the config did
    with it (the logger's own handle() is wrapped; its handlers and levels are not)."""
    logger = logging.getLogger(name)
    seen = threading.Event()
    handle = logger.handle

    def handle_then_notice(record: logging.LogRecord) -> None:
        try:
            handle(record)
        finally:
            if record.levelno >= logging.ERROR:
                seen.set()

    setattr(logger, "handle", handle_then_notice)  # noqa: B010  # this instance only
    try:
        yield seen
    finally:
        vars(logger).pop("handle", None)


def _run_flow(flow: _Flow, config: dict[str, Any], url: str) -> None:
    import uvicorn.config

    for lg in _all_loggers():  # a fresh process: nothing configured yet
        _set_state(lg, _PRISTINE if lg is not logging.getLogger() else
                   (logging.WARNING, [], [], True, False))  # fmt: skip
    with redirect_stdout(flow.out), redirect_stderr(flow.err):
        if flow.name == "uvicorn":
            # `uvicorn app:app` configures its own loggers before it imports the app
            logging.config.dictConfig(copy.deepcopy(uvicorn.config.LOGGING_CONFIG))
        _apply(config)
        _capture_std_streams(flow.out, flow.err)
        _guard_filters(flow)
        flow.queued = bool(_listeners())
        for listener in _listeners():  # a queue handler's listener, started as startup code would
            if getattr(listener, "_thread", None) is None:
                listener.start()
        with _noticing_errors("uvicorn.error") as crash_logged:
            try:
                with httpx.Client(base_url=url, timeout=5) as client:  # it logs each call at INFO
                    client.get("/orders/7", headers={"X-Request-ID": "req-setup-7"})
                    client.get("/boom")
            except httpx.HTTPError as e:
                raise Fail(
                    f"with your LOGGING applied, the app on uvicorn did not answer "
                    f"({type(e).__name__}: {e}): something in the logging setup broke the server"
                ) from None
            # uvicorn logs the crash just after the 500 has gone out: wait for it
            if logging.getLogger("uvicorn.error").isEnabledFor(logging.ERROR):
                crash_logged.wait(5)
        logging.getLogger(_PRE_EXISTING).warning("payment provider slow: 2.4 s")
        logging.getLogger("httpx").warning("connection pool is full, discarding a connection")
        _stop_listeners()  # a queue handler's lines reach the stream when its listener stops
        for lg in _all_loggers():
            for handler in lg.handlers:
                with contextlib.suppress(Exception):
                    handler.flush()


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _lines_of(flow: _Flow) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    parsed: list[dict[str, Any]] = []
    plain: list[str] = []
    for line in flow.out.getvalue().splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if isinstance(data, dict):
            parsed.append(data)
        elif line.strip():
            plain.append(line)
    return parsed, plain, [x for x in flow.err.getvalue().splitlines() if x.strip()]


_FLOW_NAMES = {
    "fresh": "in a process where nothing configured logging before (uvicorn.run(app, "
    "log_config=None) after your dictConfig)",
    "uvicorn": "in a process started with `uvicorn app:app`, where uvicorn configured its "
    "own loggers before your dictConfig ran",
}


def _judge(flow: _Flow) -> None:
    parsed, plain, stderr = _lines_of(flow)
    where = _FLOW_NAMES[flow.name]

    def having(text: str) -> list[dict[str, Any]]:
        return [d for d in parsed if any(text in str(v) for v in d.values())]

    stray = plain + stderr
    if stray:
        first = stray[0]
        which = "stdout" if plain else "stderr"
        if _is_json_object(first):
            raise Fail(
                f"{where}, this line went to stderr: {first[:160]!r}. Logs go to stdout, one "
                "JSON object per line (container platforms collect stdout; stderr is for the "
                "process's own crashes). The handler needs stream ext://sys.stdout."
            )
        uvicorn_line = any(marker in first for marker in ('"GET /', "ASGI application"))
        raise Fail(
            f"{where}, this line went to {which} as plain text, not as JSON on stdout: "
            f"{first[:160]!r}. "
            + (
                "uvicorn's loggers (uvicorn, uvicorn.error, uvicorn.access) have handlers of "
                "their own and do not propagate: name them in your config so that they lose "
                "their handlers and send their records up to the root handler."
                if uvicorn_line
                else "Every record must leave through the one JSON handler, to stdout."
            )
        )
    expect(
        bool(parsed),
        f"{where}, nothing at all reached stdout: the root logger needs the JSON handler, "
        "writing to ext://sys.stdout",
    )
    expect(
        bool(having("payment provider slow")),
        f"{where}, the warning of a library whose logger was created before your "
        f"dictConfig ran ({_PRE_EXISTING!r}) never appeared: dictConfig switches off every "
        "logger that exists and is not named in the config, unless told otherwise. "
        "Libraries are imported before logging is configured, so their warnings vanish.",
    )
    expect(
        bool(having('"GET /orders/7 HTTP/1.1" 200')),
        f"{where}, uvicorn's access line for GET /orders/7 never reached the JSON handler: "
        "uvicorn.access must propagate to the root handler, at level INFO",
    )
    expect(
        bool(having("Exception in ASGI application")),
        f"{where}, uvicorn.error's record of the crash in GET /boom never reached the JSON "
        "handler: uvicorn and uvicorn.error must propagate to the root handler (INFO and up)",
    )
    loaded = having("order 7 loaded")
    expect(
        len(loaded) == 1,
        f"{where}, the shop's INFO line 'order 7 loaded' appeared {len(loaded)} times: "
        + (
            "the shop's loggers must log INFO and up"
            if not loaded
            else "each record must be written once (a logger with a handler of its own that "
            "also propagates to the root handler prints twice)"
        ),
    )
    no_id = [d for d in parsed if "request_id" not in d]
    if no_id and not flow.filter_error():  # a filter that raised is reported after the wiring
        raise Fail(
            f"{where}, {len(no_id)} of {len(parsed)} lines have no request_id, for example "
            f"{json.dumps(no_id[0], default=str)[:160]}. A filter on a logger sees only the "
            "records logged on that very logger; records from other loggers (uvicorn's, a "
            "library's, the shop's child loggers) propagate straight to the handlers. Put "
            "the filters on the handler."
        )
    if having(_CARD):
        raise Fail(
            f"{where}, the card number that shop.payments logged reached stdout: "
            f"{json.dumps(having(_CARD)[0], default=str)[:160]}. RedactSecrets must run on "
            "the handler, where it sees the records of every logger"
            + (
                ": on the QueueHandler itself, since it merges the arguments into the message "
                "before the listener's handlers see the record."
                if flow.queued
                else "."
            )
        )
    expect(
        not having("cart for order 7"),
        f"{where}, the shop's DEBUG line reached the log: in production the shop logs INFO "
        "and up (DEBUG on every request multiplies the volume and the bill)",
    )
    if having("HTTP Request: GET"):
        raise Fail(
            f"{where}, httpx logged every outgoing request at INFO "
            f"({having('HTTP Request')[0].get('message', '')!r}): a chatty library drowns the "
            "shop's own lines. Set httpx (and httpcore) to WARNING."
        )
    expect(
        bool(having("connection pool is full")),
        f"{where}, httpx's WARNING never appeared: quiet a chatty library down to WARNING, "
        "not further, or its real problems vanish too",
    )


@checker("logs.setup")
def setup(LOGGING: object) -> str:
    expect(
        isinstance(LOGGING, dict),
        f"LOGGING must stay a dict for logging.config.dictConfig, not {type(LOGGING).__name__}",
    )
    config: dict[str, Any] = LOGGING  # type: ignore[assignment]
    flows = [_Flow("fresh"), _Flow("uvicorn")]
    with _logging_put_back():
        logging.getLogger(_PRE_EXISTING)  # exists before any config, like an imported library
        with serve(_setup_app()) as url:
            for flow in flows:
                _run_flow(flow, config, url)
    for flow in flows:
        _judge(flow)
    for flow in flows:
        expect(not flow.filter_error(), f"{_FLOW_NAMES[flow.name]}, {flow.filter_error()}")
    return (
        "one JSON handler on the root, filters on it; uvicorn's and every library's records "
        "reach it, at the levels the policy sets."
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
        big_truth = write_incident_log(big, seed=31, requests=1200, padding=3000)
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
