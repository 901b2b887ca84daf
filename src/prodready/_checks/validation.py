"""Checks for module 01: validation at the boundary.

Every check owns its reference: the inputs, the rules and the expected outcome live here,
never in a model or helper the learner's cell can redefine.
"""

from __future__ import annotations

import copy
import csv
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from .._check import Fail, checker, expect, run_in_fresh_loop
from .._course import data_path, scratch_dir

if TYPE_CHECKING:
    import httpx

_REQUEST_BUDGET = 10.0  # seconds for all of one check's requests: the check's own watchdog


def _validate(model: type[BaseModel], data: object) -> BaseModel | ValidationError:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        return e


def _is_model(thing: object, name: str) -> type[BaseModel]:
    expect(
        isinstance(thing, type) and issubclass(thing, BaseModel),
        f"{name} must stay a Pydantic model (a subclass of BaseModel)",
    )
    return thing  # type: ignore[return-value]


def _first_error(e: ValidationError) -> str:
    first = e.errors(include_url=False)[0]
    return f"{first['loc']} {first['msg']} [{first['type']}]"


def _must_accept(model: type[BaseModel], data: dict[str, Any], rules: str) -> BaseModel:
    result = _validate(model, data)
    if isinstance(result, ValidationError):
        raise Fail(
            f"{model.__name__} rejected a valid input {data}: {_first_error(result)}. {rules}"
        )
    return result


# --- validation.strict_types ------------------------------------------------------------

# What FastAPI gets from json.loads for valid bodies: a price is a str, a float or an int.
# (body, qty, gift, unit_price); the price is sent only to a model that declares one.
_VALID_LINES: list[tuple[dict[str, Any], int, bool, Decimal]] = [
    ({"sku": "ABC-0001", "qty": 3, "gift": True, "unit_price": "9.99"}, 3, True, Decimal("9.99")),
    ({"sku": "ABC-0001", "qty": 1, "gift": False, "unit_price": 9.99}, 1, False, Decimal("9.99")),
    ({"sku": "ABC-0001", "qty": 100, "unit_price": 5}, 100, False, Decimal("5")),
]  # fmt: skip
_SLOPPY_LINES: list[tuple[str, object]] = [
    ("qty", "3"), ("qty", "1_000"), ("qty", " 3 "), ("qty", 3.0), ("qty", True), ("qty", "3.0"),
    ("gift", "yes"), ("gift", "on"), ("gift", 1), ("gift", "true"), ("gift", 0), ("gift", "n"),
]  # fmt: skip


def _order_line_body(body: dict[str, Any], priced: bool) -> dict[str, Any]:
    """The body as this model's contract has it: without unit_price if the model has none
    (an OrderLine of sku, qty and gift alone is a complete answer to the strictness rule)."""
    return body if priced else {k: v for k, v in body.items() if k != "unit_price"}


@checker("validation.strict_types")
def strict_types(OrderLine: object) -> str:
    model = _is_model(OrderLine, "OrderLine")
    priced = "unit_price" in model.model_fields  # the Decimal rules apply to a declared price
    modes: list[tuple[str, Callable[[str], BaseModel]]] = [
        (
            "the way FastAPI validates a request body (json.loads first, then the Python "
            "objects: Python mode)",
            lambda body: model.model_validate(json.loads(body)),
        ),
        ("JSON mode (model_validate_json)", model.model_validate_json),
    ]
    for data, qty, gift, price in _VALID_LINES:
        body = json.dumps(_order_line_body(data, priced))
        for mode, parse in modes:
            try:
                line = parse(body)
            except ValidationError as e:
                why_price = (
                    "; it has no decimal type, so a price arrives as a string or a number and "
                    "must be parsed"
                    if priced
                    else ""
                )
                raise Fail(
                    f"OrderLine rejected the valid JSON body {body}, validated {mode}: "
                    f"{_first_error(e)}. JSON has integers and booleans, so qty and gift can "
                    f"insist on them{why_price}. A model that refuses this body answers 422 to "
                    "every real order."
                ) from None
            if priced:
                stored = getattr(line, "unit_price", None)
                expect(
                    type(stored) is Decimal,
                    f"OrderLine stored unit_price={stored!r} ({type(stored).__name__}) for "
                    f"{body}: money must stay a Decimal, never a float or a string, or totals "
                    "drift by fractions of a cent and comparisons go wrong.",
                )
                expect(
                    stored == price,
                    f"OrderLine stored unit_price={stored!r} for {body}, not {price}: a "
                    "Decimal built straight from a float keeps the float's binary error.",
                )
            got = (getattr(line, "qty", None), getattr(line, "gift", None))
            expect(
                type(got[0]) is int and type(got[1]) is bool and got == (qty, gift),
                f"OrderLine turned {body} into qty={got[0]!r}, gift={got[1]!r}",
            )
    base = _order_line_body(_VALID_LINES[0][0], priced)
    for name, value in _SLOPPY_LINES:
        result = _validate(model, {**base, name: value})
        if not isinstance(result, ValidationError):
            kind = "an integer" if name == "qty" else "a boolean"
            raise Fail(
                f"OrderLine accepted {name}={value!r} and stored {getattr(result, name)!r}. "
                f"The contract says {name} is {kind}; a client that sends anything else should "
                "get an error it can fix, not an order silently converted into something it "
                f"never sent. {name} still coerces."
            )
    # one summary for every correct answer, with or without a price field (grading compares it)
    return (
        'qty and gift refuse "3", 3.0, True, "yes" and 1; valid order lines parse, in Python '
        "mode (as FastAPI validates a body) and in JSON mode."
    )


# --- validation.forbid_extra --------------------------------------------------------------


@checker("validation.forbid_extra")
def forbid_extra(SignupRequest: object) -> str:
    model = _is_model(SignupRequest, "SignupRequest")
    valid = {"email": "ada@example.com", "name": "Ada"}
    accepted = _must_accept(model, valid, "Only unknown fields should be refused.")
    expect(
        (getattr(accepted, "email", None), getattr(accepted, "name", None))
        == ("ada@example.com", "Ada"),
        f"SignupRequest turned {valid} into {accepted!r}",
    )
    for extra in ({"is_admin": True}, {"emial": "ada@example.org"}, {"role": "owner"}):
        key = next(iter(extra))
        result = _validate(model, {**valid, **extra})
        if isinstance(result, ValidationError):
            named = any(
                key in map(str, err["loc"]) or key in err["msg"]
                for err in result.errors(include_url=False)
            )
            expect(named, f"the request with {key!r} was rejected, but the error does not name "
                   f"{key!r}: the client cannot tell what to fix")  # fmt: skip
            continue
        if key in (result.model_extra or {}):
            raise Fail(
                f"SignupRequest kept the unknown field {key!r} as an extra attribute: any client "
                "can now attach fields your code never declared, and some code may read them. "
                "Unknown input must become an error the client sees."
            )
        raise Fail(
            f"SignupRequest accepted {{..., {key!r}: {extra[key]!r}}} and silently dropped "
            f"{key!r}. The client believes it sent a field that was thrown away (and a typo "
            "vanishes the same way). Unknown fields must be refused, by name."
        )
    return "unknown fields such as is_admin (or a typo) are refused by name; valid sign-ups pass."


# --- validation.constraints ---------------------------------------------------------------

# The task's rules. No upper price bound: the task states none (the lesson recommends one).
_LINE_RULES = (
    "The rules: qty 1 to 100; unit_price above 0, in whole cents; sku like ABC-0042 and "
    "nothing else."
)
_WHOLE_VALUE = (
    "the pattern matched only part of the value: a rule must cover the whole value, from its "
    "first character to its last"
)


@checker("validation.constraints")
def constraints(LineItem: object) -> str:
    model = _is_model(LineItem, "LineItem")
    base: dict[str, Any] = {"sku": "ABC-0042", "qty": 1, "unit_price": "19.99"}
    for change in (
        {},
        {"qty": 100},
        {"unit_price": "0.01"},
        {"unit_price": "5"},
        {"unit_price": "9999.99"},
        {"unit_price": "0.10", "qty": 3},
        {"sku": "ZZZ-9999"},
    ):
        data = {**base, **change}
        item = _must_accept(model, data, _LINE_RULES)
        stored = getattr(item, "unit_price", None)
        expect(
            type(stored) is Decimal and stored == Decimal(data["unit_price"]),
            f"LineItem stored unit_price={stored!r} ({type(stored).__name__}) for "
            f"{data['unit_price']!r}: money must stay a Decimal. A binary float cannot hold "
            "0.10 exactly (3 x 0.10 is 0.30000000000000004), so totals drift by fractions of a "
            "cent and a line can pass a check it should fail.",
        )
    refused: list[tuple[str, object, str]] = [
        ("qty", 0, "an order line of zero items is not an order line"),
        ("qty", -5, "a negative quantity turns a charge into a refund (free tickets!)"),
        ("qty", 101, "the shop sells at most 100 per line"),
        ("unit_price", "0", "a price of 0 gives the item away"),
        ("unit_price", "-3.00", "a negative price pays the customer to take the item"),
        ("unit_price", "1.005", "a fraction of a cent cannot be charged"),
        ("sku", "abc-0042", "SKUs are upper case"),
        ("sku", "ABC0042", "the dash is part of the SKU"),
        ("sku", "ABC-42", "the number has four digits"),
        ("sku", "ABC-00421", _WHOLE_VALUE),
        ("sku", "xABC-0042", _WHOLE_VALUE),
        ("sku", "ABC-0042\n", "a SKU with a trailing newline is not a SKU (in Python's re, $ "
                              "also matches just before a final newline)"),
    ]  # fmt: skip
    for name, value, why in refused:
        result = _validate(model, {**base, name: value})
        expect(
            isinstance(result, ValidationError),
            f"LineItem accepted {name}={value!r}, but {why}. {_LINE_RULES}",
        )
    return (
        "the boundary values pass as Decimal; zero, negative, too many, fractional cents and "
        "bad SKUs are refused."
    )


# --- validation.api_boundary --------------------------------------------------------------


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _strict_json(response: httpx.Response) -> Any:
    """The body as a strict JSON parser (a browser's JSON.parse) reads it, or a Fail."""
    try:
        return json.loads(response.text, parse_constant=_refuse_constant)
    except ValueError as e:
        raise Fail(
            f"the {response.status_code} response is not valid JSON ({e}): "
            f"{response.text[:200]}. Browsers and most clients cannot read it, so they cannot "
            "show the client what to fix."
        ) from None


def _locations(body: Any) -> list[list[Any]]:
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, list):
        return []
    return [list(item.get("loc", [])) for item in detail if isinstance(item, dict)]


async def _send_all(app: Any, requests: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    from ._support import Overran, asgi_client, within  # httpx: only the checks that need it

    async def send() -> list[httpx.Response]:
        async with asgi_client(app) as client:
            return [await client.request(method, url, **kw) for method, url, kw in requests]

    try:
        return await within(_REQUEST_BUDGET, send())
    except Overran:
        raise Fail(
            f"the app was still answering after {_REQUEST_BUDGET:g} s of the check's own time "
            f"for {len(requests)} small requests; something in it blocks or waits forever"
        ) from None


def _app_routes(app: object, name: str) -> Any:
    expect(
        callable(app) and hasattr(app, "router"),
        f"{name} must stay a FastAPI application (app = FastAPI() with its routes)",
    )
    return app


_JSON = {"content-type": "application/json"}
_GOOD_ORDER: dict[str, Any] = {"sku": "ABC-0001", "qty": 2, "unit_price": "9.99"}
# (unit_price as the client sends it, qty); the grid holds prices a float cannot multiply.
_PRICED_ORDERS: list[tuple[object, int]] = [
    ("9.99", 2), (9.99, 2), ("0.10", 3), ("1.15", 7), ("19.99", 3), ("5", 2), ("0.07", 100),
]  # fmt: skip
# Bad by every version of OrderIn's rules. Not sent here: NaN, Infinity and 1e400 (FastAPI's
# default 422 handler cannot render them, so OrderIn alone answers 500: the task does not ask
# for a handler) and qty "2" (the strict qty is the strict_types exercise's rule).
_BAD_ORDERS: list[tuple[str, dict[str, Any], str]] = [
    ("without unit_price", {"json": {"sku": "ABC-0001", "qty": 2}}, "unit_price"),
    ("with qty 0", {"json": {**_GOOD_ORDER, "qty": 0}}, "qty"),
    ('with unit_price "9.999"', {"json": {**_GOOD_ORDER, "unit_price": "9.999"}}, "unit_price"),
    ("with an unknown field", {"json": {**_GOOD_ORDER, "discount": "100%"}}, "discount"),
    ("with broken JSON", {"content": b'{"sku": "ABC-0001",', "headers": _JSON}, ""),
]  # fmt: skip


def _check_total(response: httpx.Response, price: object, qty: int) -> None:
    sent = f"unit_price {price!r} and qty {qty}"
    expect(
        response.status_code == 201,
        f"a valid order ({sent}) got {response.status_code}, expected 201 Created: "
        f"{response.text[:200]}",
    )
    body = _strict_json(response)
    total = body.get("total") if isinstance(body, dict) else None
    exact = Decimal(str(price)) * qty
    if isinstance(total, float | int) and not isinstance(total, bool):
        raise Fail(
            f"POST /orders with {sent} answered total={total!r}, a JSON number. Most clients "
            "read a JSON number as a binary float, so the money is no longer exact on the "
            'other side; the response shape keeps total a string such as "19.98".'
        )
    if not isinstance(total, str):
        raise Fail(
            f"POST /orders with {sent} answered {body!r}: the response must keep its shape, "
            'with total as a string such as "19.98"'
        )
    repeated = (
        ' When nothing parses the body, "9.99" * 2 repeats the string instead of multiplying '
        "a price."
        if total.startswith(str(price) * 2)
        else ""
    )
    try:
        value = Decimal(total)
    except InvalidOperation:
        raise Fail(
            f"POST /orders with {sent} answered total={total!r}, not a number.{repeated}"
        ) from None
    if value != exact:
        why = repeated or " That is binary floating point at work: money is computed as Decimal."
        raise Fail(f"POST /orders with {sent} answered total={total!r}, expected {exact}.{why}")
    expect(
        set(body) == {"sku", "qty", "total"} and (body["sku"], body["qty"]) == ("ABC-0001", qty),
        f"POST /orders answered {body!r}: keep the response shape, exactly sku, qty and total. "
        "A response is a contract: clients come to rely on every field in it, and internal "
        "ones leak.",
    )


@checker("validation.api_boundary")
def api_boundary(app: object) -> str:
    _app_routes(app, "app")
    good = [
        ("POST", "/orders", {"json": {**_GOOD_ORDER, "unit_price": price, "qty": qty}})
        for price, qty in _PRICED_ORDERS
    ]
    bad = [("POST", "/orders", request) for _, request, _ in _BAD_ORDERS]
    responses = run_in_fresh_loop(lambda: _send_all(app, good + bad))
    for (price, qty), response in zip(_PRICED_ORDERS, responses, strict=False):
        _check_total(response, price, qty)
    for (label, _, name), response in zip(_BAD_ORDERS, responses[len(good) :], strict=True):
        status = response.status_code
        if status == 500:
            raise Fail(
                f"an order {label} crashed the handler: 500 Internal Server Error, and the "
                "client learns nothing. The bad value got past the door and failed deep in the "
                "business logic. FastAPI answers 422, naming the field, before your function "
                "runs, if it knows the body's shape."
            )
        expect(
            status == 422,
            f"an order {label} got {status}; clients (and generated SDKs) expect FastAPI's 422 "
            "with a detail list naming each bad field",
        )
        body = _strict_json(response)
        if name:
            expect(
                ["body", name] in _locations(body),
                f"the 422 for an order {label} does not point at ['body', '{name}']: "
                f"{response.text[:300]}. Clients read detail[].loc to show which field to fix.",
            )
        else:
            expect(
                bool(_locations(body)),
                f"the 422 for an order {label} has no detail list with a loc: "
                f"{response.text[:300]}",
            )
    return (
        "valid orders get 201 and exact Decimal totals; bad ones get a JSON 422 naming the field."
    )


# --- validation.safe_update ---------------------------------------------------------------

_PUBLIC = {"id", "email", "name", "bio"}
_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$check-owned-hash"


def _seed_users() -> dict[int, dict[str, Any]]:
    return {
        41: {"id": 41, "email": "grace@example.com", "name": "Grace", "bio": "Navy",
             "is_admin": False, "password_hash": _HASH + "41"},
        42: {"id": 42, "email": "linus@example.com", "name": "Linus", "bio": None,
             "is_admin": True, "password_hash": _HASH + "42"},
    }  # fmt: skip


@dataclass
class _UserApi:
    client: httpx.AsyncClient
    users: dict[int, dict[str, Any]]

    async def call(self, method: str, url: str, body: object = None) -> httpx.Response:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        return await self.client.request(method, url, **kwargs)

    def stored(self, user_id: int) -> dict[str, Any]:
        record = self.users.get(user_id)
        expect(
            isinstance(record, dict),
            f"user {user_id} is gone from USERS after the requests: an update must change the "
            "stored record, not remove or replace it with something else",
        )
        return record  # type: ignore[return-value]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "…" + text[-1]


def _public_view(api: _UserApi, response: httpx.Response, what: str, user_id: int) -> None:
    body = _strict_json(response)
    expect(isinstance(body, dict), f"{what} answered {response.text[:200]}, not a JSON object")
    keys = set(body)
    if "password_hash" in keys:
        raise Fail(
            f"{what} answered with password_hash ({str(body['password_hash'])[:24]}…). "
            "Whoever can read a profile now has the hash to crack offline. The response must "
            "hold only the public fields (id, email, name, bio), whatever the stored record "
            "carries."
        )
    expect(
        keys == _PUBLIC,
        f"{what} answered with the fields {sorted(keys)}; the public view is exactly "
        f"{sorted(_PUBLIC)}. Anything else (is_admin here) is internal and leaks as soon as it "
        "is in the stored record.",
    )
    record = api.stored(user_id)
    expect(
        all(body[key] == record.get(key) for key in _PUBLIC),
        f"{what} answered {body}, but the stored user is "
        f"{ {key: record.get(key) for key in _PUBLIC} }",
    )


@checker("validation.safe_update")
def safe_update(app: object, USERS: object) -> str:
    _app_routes(app, "app")
    expect(isinstance(USERS, dict), "USERS must stay the dict of stored users")
    users: dict[int, dict[str, Any]] = USERS  # type: ignore[assignment]
    original = copy.deepcopy(users)
    users.clear()
    users.update(_seed_users())  # the check's own records: ids and values the answer never saw

    from ._support import Overran, asgi_client, within

    async def exercise() -> None:
        async with asgi_client(app) as client:
            await _exercise_user_api(_UserApi(client, users))

    async def watched() -> None:
        try:
            await within(_REQUEST_BUDGET, exercise())
        except Overran:
            raise Fail(
                f"the app was still answering after {_REQUEST_BUDGET:g} s of the check's own "
                "time for a few small requests; something in it blocks or waits forever"
            ) from None

    try:
        run_in_fresh_loop(watched)
    finally:
        users.clear()
        users.update(original)
    return (
        "responses show only the public fields; PATCH changes only what was sent, clears bio "
        "with null, and refuses is_admin, password_hash, email and oversized values with 422."
    )


async def _exercise_user_api(api: _UserApi) -> None:
    response = await api.call("GET", "/users/41")
    expect(response.status_code == 200, f"GET /users/41 got {response.status_code}, expected "
           f"200: {response.text[:200]}")  # fmt: skip
    _public_view(api, response, "GET /users/41", 41)
    response = await api.call("GET", "/users/999")
    expect(response.status_code == 404, f"GET /users/999 (no such user) got "
           f"{response.status_code}, expected 404")  # fmt: skip

    expected = dict(api.stored(41))
    partial: list[dict[str, object]] = [
        {"bio": "Rear admiral"},
        {"name": "Grace H."},
        {"bio": None},
        {},
    ]
    for changes in partial:
        sent = json.dumps(changes)
        response = await api.call("PATCH", "/users/41", changes)
        expected.update(changes)
        stored = api.stored(41)
        for key, value in expected.items():
            if stored.get(key) == value:
                continue
            if key in changes:
                raise Fail(
                    f"PATCH /users/41 {sent} left {key}={stored.get(key)!r}, expected "
                    f"{value!r}. "
                    + (
                        "Sending null is how a client clears an optional field; dropping "
                        "every None also drops the ones the client sent on purpose."
                        if value is None
                        else "The change the client sent was not saved."
                    )
                )
            if key not in stored:
                lost = sorted(set(expected) - set(stored))
                raise Fail(
                    f"PATCH /users/41 {sent} removed {', '.join(lost)} from the stored user. "
                    "Writing back a model's view of the record loses every field that view "
                    "does not hold: the user can no longer log in."
                )
            raise Fail(
                f"PATCH /users/41 {sent} changed {key} from {value!r} to {stored.get(key)!r}, "
                "although the request did not mention it. A PATCH carries only the fields "
                "the client wants changed; the model's defaults for the others must not be "
                "written over the stored values (a form that edits one field wipes the rest)."
            )
        expect(response.status_code == 200, f"PATCH /users/41 {sent} got "
               f"{response.status_code}, expected 200: {response.text[:200]}")  # fmt: skip
        _public_view(api, response, f"PATCH /users/41 {sent}", 41)

    for key, value in (
        ("is_admin", True),
        ("password_hash", "$2b$12$attacker-chosen"),
        ("email", "mallory@example.com"),
        ("id", 42),
    ):
        before = dict(api.stored(41))
        changes = {"name": "Mallory", key: value}
        response = await api.call("PATCH", "/users/41", changes)
        stored = api.stored(41)
        if stored.get(key) != before.get(key):
            raise Fail(
                f"PATCH /users/41 {json.dumps(changes)} set {key}={stored.get(key)!r} in the "
                "stored user: mass assignment. Any client can now change fields it must never "
                "touch (make itself an admin, replace the password hash). Only the fields the "
                "update model declares may reach the record."
            )
        expect(
            response.status_code == 422,
            f"PATCH /users/41 {json.dumps(changes)} got {response.status_code}, expected 422: "
            f"the task asks for {key!r} to be refused by name, not silently ignored, so the "
            "client learns it cannot set it.",
        )
        named = any(key in map(str, loc) for loc in _locations(_strict_json(response)))
        expect(
            named or key in response.text,
            f"the 422 for PATCH {json.dumps(changes)} does not name {key!r}: "
            f"{response.text[:300]}. The client cannot tell which field it may not send.",
        )
        expect(
            stored == before,
            f"PATCH /users/41 {json.dumps(changes)} was refused with 422, yet the stored user "
            f"changed from {before} to {stored}: validate the whole request before writing.",
        )

    size_rule = "Limits on size belong on the field, so no client can store megabytes."
    refused: list[tuple[dict[str, object], str]] = [
        ({"name": None}, "a user without a name breaks every page that greets them"),
        ({"name": ""}, "an empty name is no name"),
        ({"name": "x" * 101}, f"a name is at most 100 characters. {size_rule}"),
        ({"bio": "x" * 501}, f"a bio is at most 500 characters. {size_rule}"),
        ({"bio": ["a", "list"]}, "a bio is text"),
    ]
    for changes, why in refused:
        before = dict(api.stored(41))
        response = await api.call("PATCH", "/users/41", changes)
        shown = json.dumps(changes)
        shown = shown if len(shown) < 60 else shown[:50] + '…"}'
        stored = api.stored(41)
        key = next(iter(changes))
        expect(
            stored.get(key) == before.get(key),
            f"PATCH /users/41 {shown} stored {key}={_short(stored.get(key))}, but {why}.",
        )
        expect(
            response.status_code == 422,
            f"PATCH /users/41 {shown} got {response.status_code}, expected 422: {why}.",
        )
        expect(stored == before, f"PATCH /users/41 {shown} was refused, yet the stored user "
               "changed")  # fmt: skip
    for key, size in (("bio", 500), ("name", 100)):
        text = "y" * size
        response = await api.call("PATCH", "/users/41", {key: text})
        expect(
            response.status_code == 200 and api.stored(41)[key] == text,
            f"PATCH /users/41 with a {key} of exactly {size} characters got "
            f"{response.status_code}; that is within the limit and must be saved",
        )
    response = await api.call("PATCH", "/users/999", {"bio": "ghost"})
    expect(response.status_code == 404, f"PATCH /users/999 (no such user) got "
           f"{response.status_code}, expected 404")  # fmt: skip
    expect(
        api.stored(42) == _seed_users()[42],
        "user 42 changed although every request was for user 41",
    )


# --- validation.import_pipeline -----------------------------------------------------------

_ORDER_RULES = (
    "order_id above 0; sku like ABC-0042; qty 1 to 100; unit_price above 0 and at most "
    "9999.99 in whole cents; a valid email; a note of at most 200 characters; all six cells "
    "of the header"
)
_CELLS = "cells"  # the 'field' of a row whose cell count does not match the header
# A row's line, either way a csv reader gives it: where the row starts, or reader.line_num
# after reading it (where it ends). They differ only for a row whose quoted note spans lines;
# an answer may use either, the same one for every row.
_CONVENTIONS = ("start", "end")


class _ReferenceRow(BaseModel):
    """The task's rules, owned by the check: an answer that loosens OrderRow cannot move them."""

    order_id: int = Field(gt=0)
    sku: str = Field(pattern=r"^[A-Z]{3}-[0-9]{4}$")
    qty: int = Field(ge=1, le=100)
    unit_price: Decimal = Field(gt=0, le=Decimal("9999.99"), decimal_places=2)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
    note: str = Field(default="", max_length=200)


@dataclass
class _Record:
    start: int  # the line the row starts on (a quoted note can span several lines)
    end: int  # the line it ends on: what csv's reader.line_num says after the row
    index: int  # its place among the rows, blank lines not counted (enumerate over DictReader)
    raw_index: int  # its place among csv.reader's records, blank lines counted
    cells: list[str]
    values: dict[str, str]  # header -> cell, when the row has the header's number of cells
    problems: set[str]  # the fields at fault; empty for a valid row
    row: _ReferenceRow | None


def _reference(path: Path) -> tuple[list[_Record], dict[int, int]]:
    """The file's rows as the task defines them, and its blank lines (line -> record index)."""
    blank: dict[int, int] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        records: list[_Record] = []
        end_of_previous = reader.line_num
        for raw_index, cells in enumerate(reader):
            start, end_of_previous = end_of_previous + 1, reader.line_num
            if not cells:
                blank[start] = raw_index  # no row, but still a line of the file
                continue
            values = dict(zip(header, cells, strict=True)) if len(cells) == len(header) else {}
            record = _Record(
                start, reader.line_num, len(records), raw_index, cells, values, set(), None
            )
            if not values:
                record.problems = {_CELLS}
            else:
                try:
                    record.row = _ReferenceRow.model_validate(values)
                except ValidationError as e:
                    record.problems = {str(err["loc"][0]) for err in e.errors()}
            records.append(record)
    return records, blank


_NOTES = [
    "Leave at the door", "Back entrance", "Call on arrival", "Gift wrap, please",
    "Leave with the neighbour at no. 12,\nnot in the bin", "Fragile!\nThis side up",
    'Card: "Happy birthday, Max!"\nNo invoice in the box', "Gate code 4321\nthen the blue door",
    "Deliver after 6 pm.\nDog in the garden.\nShe is friendly.",
]  # fmt: skip


def _generated_orders(path: Path, rows: int, seed: int, dirty: bool = True) -> Path:
    """A fresh CSV, so an answer cannot be tuned to the shipped file: quoted notes that span
    lines, blank lines, and (if dirty) every kind of bad row, in CRLF like a spreadsheet.
    A short row has three cells, so every natural answer refuses it (csv.DictReader fills the
    missing cells with None; zip() over csv.reader's cells leaves required fields out)."""
    rng = random.Random(seed)
    breakers: list[tuple[str, Callable[[], str]]] = [
        ("qty", lambda: rng.choice(["0", "-2", "101", "250", "three", "", "2.5"])),
        ("sku", lambda: rng.choice(["abc-1234", "AB-1234", "ABCD-12345", "ABC_1234", ""])),
        ("unit_price", lambda: rng.choice(["0", "-1.00", "2.999", "free", "10000.00"])),
        ("email", lambda: rng.choice(["nobody", "a@b", "x @example.com", "not-an-email"])),
        ("order_id", lambda: rng.choice(["0", "-7", "id-9"])),
        ("note", lambda: "Please call. " * rng.randint(16, 30)),
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)  # quotes only the cells that need it, rows end in \r\n
        writer.writerow(["order_id", "sku", "qty", "unit_price", "email", "note"])
        for n in range(rows):
            if rng.random() < 0.04:
                f.write("\r\n")
            row = {
                "order_id": str(5000 + n),
                "sku": f"{rng.choice(['ABC', 'XYZ', 'QRS'])}-{rng.randrange(10000):04d}",
                "qty": str(rng.randint(1, 100)),
                "unit_price": f"{rng.randint(1, 999999) / 100:.2f}",
                "email": f"user{n}@example.com",
                "note": rng.choice(_NOTES) if rng.random() < 0.3 else "",
            }
            cells = list(row.values())
            if dirty:
                for name, make in rng.sample(breakers, k=rng.choice([0, 0, 0, 0, 1, 1, 2])):
                    row[name] = make()
                cells = list(row.values())
                if rng.random() < 0.02:
                    cells = cells[:3]  # a short row: the export was cut off
            writer.writerow(cells)
    return path


def _numbered(records: list[_Record], convention: str) -> dict[int, _Record]:
    return {getattr(r, convention): r for r in records}


def _line_numbering(records: list[_Record], blank: dict[int, int], lines: list[int]) -> str:
    """Explain a wrong set of reject lines by the numbering it matches, if any."""
    bad = [r for r in records if r.problems]
    got = sorted(lines)
    either = [sorted(getattr(r, c) for r in bad) for c in _CONVENTIONS]
    blanks_rejected = sorted(set(blank).intersection(lines))
    if blanks_rejected and sorted(set(got) - set(blank)) in either:
        return (
            f"line {blanks_rejected[0]} is blank: csv yields an empty row for a blank line, "
            "which is no order to reject (and no order to import)"
        )
    counted_rows = (
        sorted(r.index + 2 for r in bad),
        sorted(r.index + 1 for r in bad),
        sorted(r.raw_index + 2 for r in bad),
        sorted([r.raw_index + 2 for r in bad] + [i + 2 for i in blank.values()]),
    )
    if got in counted_rows:
        return (
            "they count rows, not lines: after a blank line, or a row whose quoted note spans "
            "several lines, every later number drifts away from the file. A reject must name "
            "a line the person fixing the file will open"
        )
    if got and any(got in ([n - 1 for n in ns], [n + 1 for n in ns]) for ns in either):
        return (
            "they are off by one. Line 1 of the file is the header, so the first data row is "
            "line 2: whoever fixes the file opens it at that line"
        )
    return (
        "each bad row must be reported once, by its line in the file: the line it starts on, "
        "or the one reader.line_num gives after reading it, the same way for every row"
    )


def _compare(label: str, path: Path, report: Any) -> None:
    records, blank = _reference(path)
    expect(
        hasattr(report, "imported") and hasattr(report, "rejects"),
        f"import_orders must return an ImportReport, got {type(report).__name__}",
    )
    imported = list(report.imported)
    expect(
        all(hasattr(row, "order_id") for row in imported),
        f"{label}: ImportReport.imported must hold the validated OrderRow objects, got "
        f"{type(imported[0]).__name__ if imported else None}",
    )
    ids = [str(row.order_id) for row in imported]
    good = [r for r in records if r.row is not None]
    wanted = [str(r.row.order_id) for r in good if r.row is not None]
    for order_id in ids:
        if order_id not in wanted:
            bad = next((r for r in records if r.cells[0].strip() == order_id), None)
            if bad is None:
                raise Fail(f"{label}: imported an order {order_id!r} that is not in the file")
            why = (
                f"the row has {len(bad.cells)} cells for the header's 6: the export was cut "
                "off there, and the missing cells are not empty values"
                if bad.problems == {_CELLS}
                else " and ".join(f"{n}={bad.values.get(n)!r}" for n in sorted(bad.problems))
                + " breaks the rules"
            )
            raise Fail(
                f"{label}: imported order {order_id} (line {bad.start}) although {why}. "
                f"The rules: {_ORDER_RULES}. A bad row that slips in is worse than one that is "
                "refused: nobody will look at it again."
            )
    expect(
        ids == wanted,
        f"{label}: imported {len(ids)} rows, expected the {len(wanted)} valid ones in file "
        f"order (first differences: got {ids[:5]}, expected {wanted[:5]}). Every valid row "
        "is kept.",
    )
    for got, record in zip(imported, good, strict=True):
        _same_values(label, got, record)

    rejects = list(report.rejects)
    raw_lines = [getattr(r, "line", None) for r in rejects]
    expect(
        all(type(n) is int for n in raw_lines),
        f"{label}: each Reject.line must be an int, the line number in the file; got "
        f"{raw_lines[:5]}",
    )
    lines: list[int] = [n for n in raw_lines if isinstance(n, int)]
    twice = sorted(n for n, count in Counter(lines).items() if count > 1)
    expect(
        not twice,
        f"{label}: line(s) {twice[:5]} are reported more than once. One reject per bad row, "
        "with all its reasons, or the person fixing the file counts twice as many problems.",
    )
    bad_rows = [r for r in records if r.problems]
    convention = next(
        (c for c in _CONVENTIONS if sorted(lines) == sorted(getattr(r, c) for r in bad_rows)),
        None,
    )
    if convention is None:
        starts = sorted(r.start for r in bad_rows)
        raise Fail(
            f"{label}: rejects name lines {sorted(lines)[:8]}{'…' if len(lines) > 8 else ''}, "
            f"but the bad rows start on lines {starts[:8]}{'…' if len(starts) > 8 else ''}: "
            f"{_line_numbering(records, blank, lines)}."
        )
    by_line = _numbered(bad_rows, convention)
    for line, reject in zip(lines, rejects, strict=True):
        record = by_line[line]
        reasons = getattr(reject, "reasons", None)
        expect(
            isinstance(reasons, list)
            and bool(reasons)
            and all(isinstance(r, str) for r in reasons),
            f"{label}: the reasons of line {line} must be a non-empty list of strings, "
            f"got {reasons!r}",
        )
        if record.problems == {_CELLS}:
            continue  # any reason will do: the task names no field for a cut-off row
        text = " ".join(reasons)  # type: ignore[arg-type]
        missing = sorted(name for name in record.problems if name not in text)
        expect(
            not missing,
            f"{label}: line {line} has problems in {sorted(record.problems)}, but its "
            f"reasons {reasons} do not mention {missing}. Report every problem of a row, "
            "naming its field, so the file can be fixed in one pass.",
        )


def _same_values(label: str, got: object, record: _Record) -> None:
    want = record.row
    assert want is not None
    for name in ("order_id", "sku", "qty", "unit_price", "email", "note"):
        value, expected = getattr(got, name, None), getattr(want, name)
        if value == expected and type(value) is type(expected):
            continue
        if name == "unit_price":
            raise Fail(
                f"{label}: line {record.start} was imported with unit_price={value!r} "
                f"({type(value).__name__}); money stays a Decimal, exactly as in the file."
            )
        raise Fail(
            f"{label}: line {record.start} was imported with {name}={value!r}, but the file "
            f"holds {expected!r}. An import keeps every value whole, notes that span lines "
            "included."
        )


@checker("validation.import_pipeline")
def import_pipeline(import_orders: Callable[[Path], Any], *_legacy: object) -> str:
    expect(callable(import_orders), "import_orders must stay a function taking the file's path")
    folder = scratch_dir()
    files = [
        ("validation_orders.csv", data_path("validation_orders.csv")),
        ("a generated 1,000-row file", _generated_orders(folder / "orders_1000.csv", 1000, 2026)),
        ("a generated file with no bad rows", _generated_orders(
            folder / "orders_clean.csv", 60, 7, dirty=False)),
        ("a file with only its header", _generated_orders(folder / "orders_empty.csv", 0, 1)),
    ]  # fmt: skip
    for label, path in files:
        try:
            report = import_orders(path)
        except ValidationError as e:
            good = sum(r.row is not None for r in _reference(path)[0])
            raise Fail(
                f"import_orders stopped at the first bad row of {label} ({e.error_count()} "
                f"error(s) in it) and imported nothing, although {good} rows were valid. "
                "One bad row must not cost you the good ones."
            ) from None
        _compare(label, path, report)
    return (
        "every valid row is imported whole; every bad row is reported once, with its line in "
        "the file and all its reasons."
    )
