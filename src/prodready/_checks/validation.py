"""Checks for module 01: validation at the boundary."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from .._check import Fail, checker, expect, run_in_fresh_loop
from .._course import data_path, scratch_dir


def _validate(model: type[BaseModel], data: dict[str, Any]) -> BaseModel | ValidationError:
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


def _must_accept(model: type[BaseModel], data: dict[str, Any], rules: str) -> BaseModel:
    result = _validate(model, data)
    if isinstance(result, ValidationError):
        first = result.errors(include_url=False)[0]
        raise Fail(
            f"{model.__name__} rejected a valid input {data}: {first['loc']} {first['msg']}. "
            f"{rules}"
        )
    return result


@checker("validation.strict_types")
def strict_types(OrderLine: object) -> str:
    model = _is_model(OrderLine, "OrderLine")
    _must_accept(
        model,
        {"sku": "ABC-0001", "qty": 3, "gift": True},
        "Strict still accepts real ints and bools.",
    )
    try:
        model.model_validate_json('{"sku": "ABC-0001", "qty": 3, "gift": false}')
    except ValidationError as e:
        raise Fail(
            f"a valid JSON body was rejected: {e.errors(include_url=False)[0]['msg']}"
        ) from None
    sloppy: list[tuple[str, object]] = [
        ("qty", "3"), ("qty", "1_000"), ("qty", " 3 "), ("qty", 3.0), ("qty", True),
        ("gift", "yes"), ("gift", "on"), ("gift", 1), ("gift", "true"),
    ]  # fmt: skip
    for field, value in sloppy:
        data: dict[str, Any] = {"sku": "ABC-0001", "qty": 3, "gift": False, field: value}
        result = _validate(model, data)
        if not isinstance(result, ValidationError):
            kind = "an integer" if field == "qty" else "a boolean"
            raise Fail(
                f"OrderLine accepted {field}={value!r} and stored {getattr(result, field)!r}. "
                f"The contract says {field} is {kind}; a client that sends anything else should "
                "get an error it can fix, not an order silently converted into something it "
                f"never sent. {field} still coerces."
            )
    return 'qty and gift refuse "3", 3.0, True, "yes" and 1; real ints and bools pass.'


@checker("validation.forbid_extra")
def forbid_extra(SignupRequest: object) -> str:
    model = _is_model(SignupRequest, "SignupRequest")
    valid = {"email": "ada@example.com", "name": "Ada"}
    _must_accept(model, valid, "Only unknown fields should be refused.")
    for extra in ({"is_admin": True}, {"emial": "ada@example.org"}):
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


_LINE_RULES = "The rules: qty 1 to 100, unit_price above 0 in whole cents, sku like ABC-0042."


@checker("validation.constraints")
def constraints(LineItem: object) -> str:
    model = _is_model(LineItem, "LineItem")
    base: dict[str, Any] = {"sku": "ABC-0042", "qty": 1, "unit_price": "19.99"}
    for change in (
        {},
        {"qty": 100},
        {"unit_price": "0.01"},
        {"unit_price": "5"},
        {"sku": "ZZZ-9999"},
    ):
        _must_accept(model, {**base, **change}, _LINE_RULES)
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
        ("sku", "ABC-00421", "the pattern matched only part of the value: a rule must cover the "
                            "whole value, from its first character to its last"),
        ("sku", "xABC-0042", "the pattern matched only part of the value: a rule must cover the "
                             "whole value, from its first character to its last"),
    ]  # fmt: skip
    for field, value, why in refused:
        result = _validate(model, {**base, field: value})
        expect(
            isinstance(result, ValidationError),
            f"LineItem accepted {field}={value!r}, but {why}. {_LINE_RULES}",
        )
    return (
        "the boundary values pass; zero, negative, too many, fractional cents and bad SKUs "
        "are refused."
    )


async def _post_orders(app: Any, requests: list[dict[str, Any]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        return [await client.post("/orders", **request) for request in requests]


def _locations(response: httpx.Response) -> list[list[Any]]:
    try:
        return [list(item.get("loc", [])) for item in response.json().get("detail", [])]
    except (ValueError, AttributeError, TypeError):
        return []


@checker("validation.api_boundary")
def api_boundary(app: object) -> str:
    good = {"sku": "ABC-0001", "qty": 2, "unit_price": "9.99"}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("without unit_price", {"json": {"sku": "ABC-0001", "qty": 2}}, "unit_price"),
        ("with qty 0", {"json": {**good, "qty": 0}}, "qty"),
        ("with an unknown field", {"json": {**good, "discount": "100%"}}, "discount"),
        ("with broken JSON", {"content": b'{"sku": "ABC-0001",',
                              "headers": {"content-type": "application/json"}}, ""),
    ]  # fmt: skip
    responses = run_in_fresh_loop(
        lambda: _post_orders(app, [{"json": good}, *(request for _, request, _ in cases)])
    )
    created = responses[0]
    expect(
        created.status_code == 201,
        f"a valid order got {created.status_code}, expected 201 Created: {created.text[:200]}",
    )
    total = created.json().get("total")
    expect(
        total == "19.98",
        f'POST /orders with unit_price "9.99" and qty 2 answered total={total!r}, expected '
        '"19.98". When nothing parses the body, "9.99" * 2 repeats the string instead of '
        "multiplying a price.",
    )
    for (label, _, field), response in zip(cases, responses[1:], strict=True):
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
        if field:
            expect(
                ["body", field] in _locations(response),
                f"the 422 for an order {label} does not point at ['body', '{field}']: "
                f"{response.text[:300]}",
            )
    return (
        "a valid order gets 201 and the right total; bad ones get 422 naming the field, "
        "before your code runs."
    )


def _expected(path: Path, row_model: type[BaseModel]) -> tuple[list[Any], dict[int, set[str]]]:
    """The reference outcome: ids of the good rows, and the failing fields per bad line."""
    good: list[Any] = []
    bad: dict[int, set[str]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for row in reader:
            result = _validate(row_model, row)
            if isinstance(result, ValidationError):
                bad[reader.line_num] = {str(e["loc"][0]) for e in result.errors()}
            else:
                good.append(result.order_id)  # type: ignore[attr-defined]
    return good, bad


def _generated_orders(folder: Path, rows: int = 200, seed: int = 2026) -> Path:
    """A fresh dirty CSV, so an answer cannot be tuned to the shipped file alone."""
    rng = random.Random(seed)
    path = folder / "orders_generated.csv"
    breakers: list[tuple[str, Callable[[], str]]] = [
        ("qty", lambda: rng.choice(["0", "-2", "101", "three", ""])),
        ("sku", lambda: rng.choice(["abc-1234", "AB-1234", "ABCD-12345", "ABC_1234"])),
        ("unit_price", lambda: rng.choice(["0", "-1.00", "2.999", "free"])),
        ("email", lambda: rng.choice(["nobody", "a@b", "x @example.com"])),
        ("order_id", lambda: rng.choice(["0", "-7", "id-9"])),
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["order_id", "sku", "qty", "unit_price", "email"])
        for n in range(rows):
            row = {
                "order_id": str(5000 + n),
                "sku": f"{rng.choice(['ABC', 'XYZ', 'QRS'])}-{rng.randrange(10000):04d}",
                "qty": str(rng.randint(1, 100)),
                "unit_price": f"{rng.randint(1, 99999) / 100:.2f}",
                "email": f"user{n}@example.com",
            }
            for field, make in rng.sample(breakers, k=rng.choice([0, 0, 0, 0, 1, 1, 2])):
                row[field] = make()
            writer.writerow(row.values())
    return path


def _compare(label: str, report: Any, good: list[Any], bad: dict[int, set[str]]) -> None:
    expect(
        hasattr(report, "imported") and hasattr(report, "rejects"),
        f"import_orders must return an ImportReport, got {type(report).__name__}",
    )
    imported = [getattr(row, "order_id", None) for row in report.imported]
    expect(
        imported == good,
        f"{label}: imported {len(imported)} rows, expected the {len(good)} valid ones "
        f"(first differences: got {imported[:5]}, expected {good[:5]}). Every valid row is "
        "kept, in file order, and no invalid row slips in.",
    )
    lines = sorted(int(getattr(r, "line", 0)) for r in report.rejects)
    expected_lines = sorted(bad)
    if lines == [n - 1 for n in expected_lines] or lines == [n + 1 for n in expected_lines]:
        raise Fail(
            f"{label}: reject line numbers are off by one ({lines[:3]}… instead of "
            f"{expected_lines[:3]}…). Line 1 of the file is the header, so the first data row "
            "is line 2: whoever fixes the file opens it at that line."
        )
    expect(
        lines == expected_lines,
        f"{label}: rejects name lines {lines[:8]}{'…' if len(lines) > 8 else ''}, but the bad "
        f"rows are on lines {expected_lines[:8]}{'…' if len(expected_lines) > 8 else ''}. "
        "Report each bad row once, by its line in the file.",
    )
    for reject in report.rejects:
        reasons = getattr(reject, "reasons", None)
        if not (isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)):
            raise Fail(f"{label}: the reasons of line {reject.line} must be a list of strings")
        text = " ".join(reasons)
        missing = sorted(f for f in bad[reject.line] if f not in text)
        expect(
            not missing,
            f"{label}: line {reject.line} has problems in {sorted(bad[reject.line])}, but its "
            f"reasons {reasons} do not mention {missing}. Report every problem of a row, so "
            "the file can be fixed in one pass.",
        )


@checker("validation.import_pipeline")
def import_pipeline(import_orders: Callable[[Path], Any], OrderRow: object) -> str:
    row_model = _is_model(OrderRow, "OrderRow")
    shipped = data_path("validation_orders.csv")
    generated = _generated_orders(scratch_dir())
    for label, path in (
        ("validation_orders.csv", shipped),
        ("a generated 200-row file", generated),
    ):
        good, bad = _expected(path, row_model)
        try:
            report = import_orders(path)
        except ValidationError as e:
            raise Fail(
                f"import_orders stopped at the first bad row of {label} ({e.error_count()} "
                f"error(s) in it) and imported nothing, although {len(good)} rows were valid. "
                "One bad row must not cost you the good ones."
            ) from None
        _compare(label, report, good, bad)
    return (
        "every valid row is imported; every bad row is reported once, with its line and all "
        "its reasons."
    )
