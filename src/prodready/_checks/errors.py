"""Checks for module 06: errors by design.

Every check drives the learner's code with fakes: a recording ``save``, a flaky call and an
injected ``sleep`` that never waits, and FastAPI apps called in-process through
``httpx.ASGITransport`` (``raise_app_exceptions=False``, so a check sees what a client sees).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from .._check import Fail, checker, expect, run_in_fresh_loop

_PROBLEM = "application/problem+json"
_PROBLEM_FIELDS = ("type", "title", "status", "detail")


# --- shared helpers ---------------------------------------------------------------------


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception and everything chained to it (cause or context)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _problem_trouble(body: object, status: int) -> str | None:
    """Why ``body`` is not an RFC 9457 problem for ``status``, or None if it is one."""
    if not isinstance(body, dict):
        return f"the body is {type(body).__name__}, not a JSON object"
    missing = [f for f in _PROBLEM_FIELDS if f not in body]
    if missing:
        return f"the body has no {', '.join(repr(m) for m in missing)} (it has {sorted(body)})"
    if body["status"] != status:
        return f'its "status" is {body["status"]!r} but the HTTP status is {status}'
    wrong = [f for f in ("type", "title", "detail") if not isinstance(body[f], str)]
    if wrong:
        return f"{', '.join(repr(w) for w in wrong)} must be strings"
    if not body["title"]:
        return 'its "title" is empty'
    return None


def _asgi_client(app: object) -> httpx.AsyncClient:
    # raise_app_exceptions=False: the check sees the response a real client would get
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://shop.test")


Request = tuple[str, dict[str, Any] | str | None, dict[str, str]]  # path, body, headers


def _post_all(app: object, requests: list[Request]) -> list[httpx.Response]:
    """POST the requests in order, one client, on a fresh event loop."""

    async def run() -> list[httpx.Response]:
        responses = []
        async with _asgi_client(app) as client:
            for path, body, headers in requests:
                if isinstance(body, str):
                    headers = {"content-type": "application/json", **headers}
                    responses.append(await client.post(path, content=body, headers=headers))
                else:
                    responses.append(await client.post(path, json=body, headers=headers))
        return responses

    result: list[httpx.Response] = run_in_fresh_loop(run)
    return result


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _shown(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content-type").split(";")[0]
    text = response.text if len(response.text) <= 120 else response.text[:117] + "..."
    return f"{response.status_code} {kind} {text!r}"


# --- errors.hierarchy --------------------------------------------------------------------

_TREE = {  # class -> its parent in the tree
    "PaymentError": None,
    "InvalidPayment": "PaymentError",
    "AmountTooLarge": "InvalidPayment",
    "CardError": "PaymentError",
    "CardDeclined": "CardError",
    "CardExpired": "CardError",
    "ProviderUnavailable": "PaymentError",
}
_STATUS = {"InvalidPayment": 400, "CardError": 402, "ProviderUnavailable": 503}


def _ancestors(name: str) -> set[str]:
    found = set()
    parent = _TREE[name]
    while parent is not None:
        found.add(parent)
        parent = _TREE[parent]
    return found


def _expected_status(name: str) -> int:
    for branch in [name, *_ancestors(name)]:
        if branch in _STATUS:
            return _STATUS[branch]
    return 500


def _call_problem_for(problem_for: Callable[..., Any], exc: Exception) -> tuple[int, Any]:
    result = problem_for(exc)
    expect(
        isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int),
        f"problem_for({exc!r}) returned {result!r}; it must return (status, body), "
        "an int and a dict",
    )
    status, body = result
    try:
        json.dumps(body)
    except (TypeError, ValueError):
        raise Fail(
            f"the body for {exc!r} cannot be sent as JSON ({body!r}): keep it to strings and ints"
        ) from None
    return status, body


@checker("errors.hierarchy")
def hierarchy(problem_for: Callable[..., Any], classes: list[type[Exception]]) -> str:
    by_name = {c.__name__: c for c in classes if isinstance(c, type)}
    missing = [name for name in _TREE if name not in by_name]
    expect(not missing, f"these classes of the tree are missing: {', '.join(missing)}")
    expect(
        issubclass(by_name["PaymentError"], Exception),
        "PaymentError must derive from Exception (never BaseException: `except Exception` "
        "has to catch it)",
    )
    for name, cls in by_name.items():
        if name not in _TREE:
            continue
        for other, other_cls in by_name.items():
            if other == name or other not in _TREE:
                continue
            should = other in _ancestors(name)
            if issubclass(cls, other_cls) != should:
                if should:
                    raise Fail(
                        f"{name} is not a subclass of {other}, but the tree puts it under "
                        f"{other}: code that says `except {other}:` would not catch {name}."
                    )
                raise Fail(
                    f"{name} is a subclass of {other}, but the tree does not put it there: "
                    f"`except {other}:` would catch {name} by mistake."
                )
    for name in _TREE:
        exc = by_name[name](f"{name} test message 7741")
        status, body = _call_problem_for(problem_for, exc)
        expected = _expected_status(name)
        if status != expected:
            reason = (
                "a PaymentError that fits no branch is a bug of ours: 500"
                if expected == 500
                else f"the tree maps its branch to {expected}"
            )
            raise Fail(f"problem_for({name}(...)) gave status {status}; {reason}.")
        trouble = _problem_trouble(body, status)
        expect(trouble is None, f"the body for {name}(...) is not an RFC 9457 problem: {trouble}")
        if expected != 500:
            expect(
                "7741" in str(body.get("detail", "")),
                f'the "detail" of the problem for {name}(...) does not carry the '
                "exception's message; for an error we raise on purpose, the message is "
                "written for the client and tells them what to fix",
            )
    for parent in ("CardDeclined", "InvalidPayment", "ProviderUnavailable"):
        newcomer = type(f"Newer{parent}", (by_name[parent],), {})
        status, _ = _call_problem_for(problem_for, newcomer("added next year"))
        expect(
            status == _expected_status(parent),
            f"a new subclass of {parent}, added after your mapping was written, got "
            f"status {status} instead of {_expected_status(parent)}. A mapping keyed by "
            "the exact class misses every subclass; walk the hierarchy so that new errors "
            "inherit their parent's status.",
        )
    secret = "postgresql://pay:hunter2@db.internal/pay"
    for bug in (KeyError(secret), RuntimeError(f"could not connect to {secret}")):
        status, body = _call_problem_for(problem_for, bug)
        expect(
            status == 500,
            f"problem_for({type(bug).__name__}(...)) gave {status}: an exception we did not "
            "raise on purpose is a bug on our side, a 500",
        )
        trouble = _problem_trouble(body, 500)
        expect(trouble is None, f"the body for an unexpected error is not a problem: {trouble}")
        text = json.dumps(body)
        for leak in ("hunter2", "postgresql", type(bug).__name__, "Traceback"):
            expect(
                leak not in text,
                f"the 500 body for an unexpected {type(bug).__name__} contains {leak!r}: "
                f"{text}. Its message can hold passwords, paths and queries; the client must "
                "learn nothing from it (log it on the server instead).",
            )
    return (
        "the classes form the tree, subclasses inherit their branch's status, "
        "and an unexpected error is a 500 that reveals nothing."
    )


# --- errors.importer -----------------------------------------------------------------------

_CSV = [
    "sku,qty,price",
    "MUG-01,2,12.00",
    "TEE-02,two,25.00",  # line 3: qty
    "CAP-03,1,8.50",
    "HAT-04,1,cheap",  # line 5: price
    "PEN-05,10,1.20",
    ",3,4.00",  # line 7: sku
]
_BAD_LINES = {3: "qty", 5: "price", 7: "sku"}
_GOOD_SKUS = ["MUG-01", "CAP-03", "PEN-05"]


class _Outage(ConnectionError):
    pass


def _run_import(import_orders: Callable[..., Any], save: Callable[[Any], None]) -> Any:
    return import_orders(list(_CSV), save)


@checker("errors.importer")
def importer(import_orders: Callable[..., Any]) -> str:
    saved: list[Any] = []
    report = _run_import(import_orders, saved.append)
    expect(
        report is not None and hasattr(report, "saved") and hasattr(report, "rejected"),
        f"import_orders returned {report!r}; it must return the ImportReport",
    )
    skus = [getattr(order, "sku", order) for order in saved]
    expect(
        skus == _GOOD_SKUS,
        f"save() received {skus}, but the good rows are {_GOOD_SKUS}: every valid row must "
        "be saved, in file order, even after a bad one",
    )
    expect(
        report.saved == len(_GOOD_SKUS),
        f"the report says saved={report.saved!r}, but {len(_GOOD_SKUS)} rows were saved",
    )
    rejected = list(report.rejected)
    lines = [getattr(r, "line", None) for r in rejected]
    expect(
        bool(lines),
        f"the report rejects no line at all, yet lines {sorted(_BAD_LINES)} are bad: "
        f"{len(_BAD_LINES)} rows vanished without a trace, and the import looks complete. "
        "Record each bad row in report.rejected.",
    )
    expect(
        lines == sorted(_BAD_LINES),
        f"the report rejects lines {lines}, but the bad rows are on lines {sorted(_BAD_LINES)} "
        "of the file (the header is line 1). Whoever fixes the file needs every bad line, "
        "numbered as their editor numbers it.",
    )
    for r in rejected:
        field = _BAD_LINES[r.line]
        reason = str(getattr(r, "reason", ""))
        expect(
            field in reason,
            f"the reason given for line {r.line} is {reason!r}, which does not say what is "
            f"wrong with it (its {field}). Record the message of the error the row raised.",
        )

    def database_down(order: Any) -> None:
        raise _Outage("could not connect to db.internal:5432")

    try:
        report = _run_import(import_orders, database_down)
    except Exception as e:
        expect(
            any(isinstance(x, _Outage) for x in _chain(e)),
            f"with the database down, the import raised {type(e).__name__}: {e}, which hides "
            "the real cause (a ConnectionError). Let it through, or chain it with `from e`.",
        )
    else:
        raise Fail(
            "with the database down, import_orders returned a report "
            f"(saved={report.saved!r}, {len(list(report.rejected))} rejected) instead of "
            "raising. An outage is not a bad row: the import must stop loudly, or the "
            "operator reads 'import finished' while nothing was saved. Catch only the "
            "row's own error."
        )

    def interrupted(order: Any) -> None:
        raise KeyboardInterrupt

    try:
        _run_import(import_orders, interrupted)
    except KeyboardInterrupt:
        pass
    else:
        raise Fail(
            "a Ctrl-C (KeyboardInterrupt) during save() was swallowed and the import went on: "
            "a bare `except:` catches it. Nobody can stop this import."
        )
    return (
        "good rows are saved, every bad row is reported with its line and reason, "
        "and an outage or Ctrl-C stops the import."
    )


# --- errors.retry_policy -------------------------------------------------------------------


class _Runaway(BaseException):
    """Raised by the fake after too many calls, to end a retry loop that has no limit."""


_RUNAWAY_AFTER = 40


def _status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://inventory.test/stock")
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError(f"{status} from inventory", request=request, response=response)


class _Flaky:
    """Fails with the errors from ``make_error`` ``failures`` times, then returns "stock"."""

    def __init__(self, make_error: Callable[[], BaseException], failures: int) -> None:
        self.make_error, self.failures = make_error, failures
        self.calls = 0
        self.raised: list[BaseException] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.calls > _RUNAWAY_AFTER:
            raise _Runaway
        if self.calls <= self.failures:
            error = self.make_error()
            self.raised.append(error)
            raise error
        return "stock"


class _Sleeps:
    """An injected sleep: records each wait on a fake clock, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        expect(
            isinstance(seconds, int | float),
            f"sleep() was called with {seconds!r}; it takes seconds as a number",
        )
        self.waits.append(float(seconds))


def _attempt(
    call_with_retries: Callable[..., Any], flaky: _Flaky
) -> tuple[object, BaseException | None, _Sleeps, float]:
    sleeps = _Sleeps()
    started = time.perf_counter()
    try:
        result: object = call_with_retries(flaky, sleep=sleeps)
        error: BaseException | None = None
    except _Runaway:
        raise Fail(
            f"your code called the failing dependency more than {_RUNAWAY_AFTER} times and "
            "was still going: a retry loop needs a limit (5 attempts in total), or it "
            "hammers a sick dependency forever."
        ) from None
    except Exception as e:
        result, error = None, e
    return result, error, sleeps, time.perf_counter() - started


_TRANSIENT: list[tuple[str, Callable[[], BaseException]]] = [
    ("HTTP 503", lambda: _status_error(503)),
    ("HTTP 429", lambda: _status_error(429)),
    ("HTTP 502", lambda: _status_error(502)),
    ("HTTP 504", lambda: _status_error(504)),
    ("httpx.ConnectError", lambda: httpx.ConnectError("connection refused")),
    ("httpx.ReadTimeout", lambda: httpx.ReadTimeout("timed out")),
]
_PERMANENT: list[tuple[str, Callable[[], BaseException]]] = [
    ("HTTP 400", lambda: _status_error(400)),
    ("HTTP 404", lambda: _status_error(404)),
    ("HTTP 422", lambda: _status_error(422)),
    ("a KeyError (a bug in the caller)", lambda: KeyError("sku")),
]


@checker("errors.retry_policy")
def retry_policy(call_with_retries: Callable[..., Any]) -> str:
    flaky = _Flaky(lambda: _status_error(503), failures=10**6)
    result, error, sleeps, elapsed = _attempt(call_with_retries, flaky)
    if error is None:
        raise Fail(f"the dependency never recovered, yet your code returned {result!r}")
    if not sleeps.waits and flaky.calls > 1:
        raise Fail(
            f"your code made {flaky.calls} attempts "
            + (
                f"and really waited {elapsed:.1f} s without calling the `sleep` it was given: "
                "wait through `sleep(seconds)`, so tests (and this check) need not wait."
                if elapsed > 0.05
                else "with no wait between them: that is hammering. Back off between attempts, "
                "through the `sleep` you are given."
            )
        )
    expect(
        flaky.calls == 5,
        f"against a dependency that stays down, your code made {flaky.calls} attempt(s); the "
        "policy is 5 in total, then give up.",
    )
    expect(
        len(sleeps.waits) == 4,
        f"5 attempts need 4 waits between them; `sleep` was called {len(sleeps.waits)} times",
    )
    if error is not flaky.raised[-1]:
        raise Fail(
            f"after the last attempt your code raised {type(error).__name__}: {error}. The "
            "caller must get the real error (the last HTTPStatusError), unchanged: its "
            "handlers look for that type. With tenacity, that is what `reraise=True` does."
        )
    runs = [sleeps.waits]
    for _ in range(39):
        _, _, more, _ = _attempt(call_with_retries, _Flaky(lambda: _status_error(503), 10**6))
        runs.append(more.waits)
    waits = [w for run in runs for w in run]
    expect(
        all(w > 0 for w in waits),
        "some waits were 0 seconds or less; every retry must wait a little",
    )
    expect(
        max(waits) <= 2.0 + 1e-9,
        f"a wait of {max(waits):.2f} s exceeds the 2 s cap: an uncapped exponential "
        "grows to minutes, and the request that waits is long dead",
    )
    first = [run[0] for run in runs if len(run) == 4]
    last = [run[3] for run in runs if len(run) == 4]
    expect(
        statistics.mean(first) <= 0.75,
        f"the first wait averages {statistics.mean(first):.2f} s; start around 0.1 s, so a "
        "blip costs the user little",
    )
    expect(
        statistics.mean(last) >= 2 * statistics.mean(first),
        f"the waits do not grow: on average {statistics.mean(first):.3f} s before the first "
        f"retry and {statistics.mean(last):.3f} s before the fourth. Back off exponentially "
        "(double the wait each time), so a struggling dependency gets room to recover.",
    )
    expect(
        len(set(first)) > 1 and len(set(last)) > 1,
        "every run waited exactly the same times: without random jitter, all the clients "
        "that failed together retry together, in synchronized waves that knock the "
        "dependency over again. Add jitter.",
    )
    for label, make_error in _TRANSIENT:
        flaky = _Flaky(make_error, failures=2)
        result, error, sleeps, _ = _attempt(call_with_retries, flaky)
        if error is not None:
            raise Fail(
                f"a dependency that failed twice with {label} and then answered made your code "
                f"raise {type(error).__name__} after {flaky.calls} call(s). {label} is "
                "transient: retry it."
            )
        expect(
            result == "stock",
            f"after two {label} failures the call succeeded, but your code returned "
            f"{result!r} instead of its result",
        )
        expect(
            flaky.calls == 3 and len(sleeps.waits) == 2,
            f"two {label} failures then success should take 3 calls and 2 waits; your code "
            f"made {flaky.calls} calls and {len(sleeps.waits)} waits",
        )
    for label, make_error in _PERMANENT:
        flaky = _Flaky(make_error, failures=10**6)
        result, error, sleeps, _ = _attempt(call_with_retries, flaky)
        expect(
            flaky.calls == 1 and not sleeps.waits,
            f"your code retried {label}: {flaky.calls} calls and {len(sleeps.waits)} waits. "
            f"{label} fails the same way every time; retrying it only adds load and delay. "
            "Retry transient errors only.",
        )
        expect(
            error is flaky.raised[0],
            f"{label} should reach the caller unchanged, but your code "
            + (f"returned {result!r}" if error is None else f"raised {type(error).__name__}"),
        )
    result, error, sleeps, _ = _attempt(call_with_retries, _Flaky(lambda: KeyError(), 0))
    expect(
        error is None and result == "stock" and not sleeps.waits,
        "a call that succeeds at once must return its result without waiting",
    )
    return (
        "transient errors are retried with capped, jittered exponential backoff, 5 attempts "
        "at most; permanent ones fail at once."
    )


# --- errors.idempotent_payment --------------------------------------------------------------


@checker("errors.idempotent_payment")
def idempotent_payment(make_payment_app: Callable[..., Any], Gateway: type) -> str:
    gateway = Gateway()
    app = make_payment_app(gateway)

    def pay(body: dict[str, Any], headers: dict[str, str]) -> tuple[httpx.Response, list[int]]:
        (response,) = _post_all(app, [("/payments", body, headers)])
        return response, [amount for _card, amount in gateway.charges]

    first_key, second_key = (
        {"Idempotency-Key": str(uuid.uuid4())},
        {"Idempotency-Key": str(uuid.uuid4())},
    )
    card = {"card": "4242-4242-4242-4242", "amount_cents": 5000}
    first, charges = pay(card, first_key)
    expect(
        first.status_code == 201 and charges == [5000],
        f"the first payment got {_shown(first)} and charged {charges}; a new payment charges "
        "the card once and answers 201 Created",
    )
    retry, charges = pay(card, first_key)
    expect(
        charges == [5000],
        f"the retry charged the card again: charges {charges}. A retry whose first reply was "
        "lost must be answered from what the first request did, without calling the gateway.",
    )
    expect(
        retry.status_code == first.status_code and _json(retry) == _json(first),
        "a retry with the same Idempotency-Key must get the first reply again, unchanged, so "
        f"the client learns what happened. First: {_shown(first)}; retry: {_shown(retry)}",
    )
    second, charges = pay(card, second_key)
    expect(
        second.status_code == 201 and charges == [5000, 5000] and _json(second) != _json(first),
        f"a second payment with a new Idempotency-Key got {_shown(second)} and the charges are "
        f"{charges}. A new key is a new payment: charge it and answer 201 with its own reply. "
        "The key, not the body, identifies a payment (a customer may buy the same thing twice).",
    )
    reused, charges = pay({**card, "amount_cents": 7000}, first_key)
    expect(
        reused.status_code == 422 and charges == [5000, 5000],
        f"the first key sent again with a different amount got {_shown(reused)} (charges "
        f"{charges}). Replaying the old reply tells the client a 7000 payment went through "
        "when it did not, and charging breaks the key's promise; answer 422 (this key was "
        "used for another request).",
    )
    keyless, charges = pay(card, {})
    expect(
        keyless.status_code == 400 and charges == [5000, 5000],
        f"a payment without an Idempotency-Key got {_shown(keyless)} (charges {charges}). "
        "Without a key a retry cannot be recognized; refuse it with 400 so the client fixes "
        "its request.",
    )
    return (
        "one charge per Idempotency-Key, retries replay the first reply, a reused key with "
        "another body is 422 and a missing key 400."
    )


# --- errors.order_service --------------------------------------------------------------------


@checker("errors.order_service")
def order_service(build_app: Callable[..., Any], OrderService: Any) -> str:
    def key() -> dict[str, str]:
        return {"Idempotency-Key": str(uuid.uuid4())}

    mug = {"sku": "MUG-01", "qty": 1, "card": "4242-4242-4242-4242"}
    service = OrderService()
    app = build_app(service)
    expect(
        not getattr(app, "debug", False),
        "the app runs with debug=True: Starlette then answers every unexpected error with "
        "its traceback, before your handlers get a say, and the traceback shows the "
        "database password. Debug mode stays on your laptop.",
    )
    retried = key()
    (ok,) = _post_all(app, [("/orders", mug, retried)])
    expect(
        ok.status_code == 201 and isinstance(_json(ok), dict) and len(service.charges) == 1,
        f"a valid order got {_shown(ok)} and charged {service.charges}; it should be 201 "
        "with the order, charged once",
    )
    (again,) = _post_all(app, [("/orders", mug, retried)])
    expect(
        len(service.charges) == 1,
        f"the same order sent again with the same Idempotency-Key (a client retrying after a "
        f"lost reply) was charged again: charges {service.charges}. The retry must not charge; "
        "answer it with the first reply.",
    )
    expect(
        again.status_code == ok.status_code and _json(again) == _json(ok),
        "a retry with the same Idempotency-Key must get the first reply again; it got "
        f"{_shown(again)} instead of {_shown(ok)}",
    )
    (second,) = _post_all(app, [("/orders", mug, key())])
    expect(
        second.status_code == 201 and len(service.charges) == 2,
        f"a second order with a new Idempotency-Key got {_shown(second)} (charges "
        f"{service.charges}): a new key is a new order",
    )
    broken = OrderService()
    broken.gateway_up = False
    cases: list[tuple[str, object, Request, int]] = [
        ("an unknown product", service, ("/orders", {**mug, "sku": "NOPE-9"}, key()), 404),
        ("an out-of-stock product", service, ("/orders", {**mug, "sku": "TEE-02"}, key()), 409),
        (
            "a declined card",
            service,
            ("/orders", {**mug, "card": service.DECLINED_CARD}, key()),
            402,
        ),
        ("the payment gateway being down", broken, ("/orders", mug, key()), 503),
        ("qty 0", service, ("/orders", {**mug, "qty": 0}, key()), 422),
        ("a body that is not JSON", service, ("/orders", "{sku: MUG-01", key()), 422),
        ("no Idempotency-Key header", service, ("/orders", mug, {}), 400),
    ]
    responses: list[httpx.Response] = []
    for label, target, request, status in cases:
        charges_before = len(getattr(target, "charges", []))
        (response,) = _post_all(build_app(target) if target is broken else app, [request])
        responses.append(response)
        if response.is_success:
            raise Fail(
                f"{label} was answered {_shown(response)}. A {response.status_code} tells the "
                "client the order was placed: it will wait for a parcel that never ships, "
                "and nobody is told. A failure must carry a failure status."
            )
        expect(
            response.status_code == status,
            f"{label} got {_shown(response)}; it should be {status}",
        )
        kind = response.headers.get("content-type", "").split(";")[0]
        expect(
            kind == _PROBLEM,
            f"{label} got the right status but content-type {kind!r}; errors are "
            f"{_PROBLEM}, so clients parse one format for every failure",
        )
        trouble = _problem_trouble(_json(response), response.status_code)
        expect(trouble is None, f"the response to {label} is not an RFC 9457 problem: {trouble}")
        expect(
            len(getattr(target, "charges", [])) == charges_before,
            f"{label} was refused, yet the card was charged",
        )
    down = OrderService()
    down.database_up = False
    (crash,) = _post_all(build_app(down), [("/orders", mug, key())])
    responses.append(crash)
    expect(
        crash.status_code == 500,
        f"with the database down the service raised ConnectionError and the client got "
        f"{_shown(crash)}; an unexpected error is a 500",
    )
    url = str(OrderService.DATABASE_URL)
    password = url.split(":")[2].split("@")[0]
    for response in [ok, again, second, *responses]:
        for leak, what in (
            (password, "the database password"),
            ("db.internal", "the database host"),
            ("Traceback", "a traceback"),
            ("ConnectionError", "the name of the internal exception"),
        ):
            expect(
                leak not in response.text,
                f"a response leaks {what}: {_shown(response)}. Log the exception on the "
                "server; the client gets a generic 500 problem.",
            )
    trouble = _problem_trouble(_json(crash), 500)
    expect(
        crash.headers.get("content-type", "").startswith(_PROBLEM) and trouble is None,
        f"the 500 is not an {_PROBLEM} problem: {_shown(crash)}",
    )
    return (
        "every failure has its status and a problem+json body, the 500 reveals nothing, "
        "and a retried order is charged once."
    )
