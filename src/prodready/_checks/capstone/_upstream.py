"""The course's payment provider and mail service: real HTTP servers on loopback that fail
the way real ones do, on a fixed schedule (a seeded shuffle), so every run of the report
meets the same number of each failure.

Payment provider, ``POST /charges`` with ``{"amount_cents": int, "reference": str}``, the
header ``Authorization: Bearer <key>`` and an ``Idempotency-Key``. For each new key, in the
order they arrive:

- ``slow``: answers 201 after 0.10 to 0.25 s (most charges);
- ``fail``: 503 after 0.05 s, nothing charged;
- ``charge_then_500``: charges, then answers 500 (the reply lies: the money is taken);
- ``charge_then_hang``: charges, then holds the reply for ``HANG_S`` seconds;
- ``quick``: answers 201 after 0.02 s (the provider of the runs that test something else).

A key seen before gets the charge it already made (201, at once), or 409 while its first
attempt is still running. The mail service, ``POST /receipts`` with ``{"order_id", "email",
"total_cents"}``, works the same way (``ok``, ``fail``, ``accept_then_500``), and can hold one
chosen delivery until the course has killed the job runner that sent it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

HANG_S = 5.0
FLAKY_PAYMENTS = {"slow": 80, "fail": 8, "charge_then_500": 6, "charge_then_hang": 6}
STEADY_PAYMENTS = {"quick": 1}
FLAKY_MAIL = {"ok": 80, "fail": 12, "accept_then_500": 8}


def schedule(mix: dict[str, int], seed: int) -> list[str]:
    """A fixed shuffle of the behaviours, repeated: the same counts on every run."""
    deck = [name for name, count in mix.items() for _ in range(count)]
    random.Random(seed).shuffle(deck)
    return deck


@dataclass
class Charge:
    id: str
    key: str | None
    amount_cents: int
    reference: str


@dataclass
class Delivery:
    key: str | None
    order_id: int
    email: str
    total_cents: int
    accepted: bool  # recorded as delivered (a replay of an accepted key is not a new one)


@dataclass
class Upstream:
    """What the provider and the mail service saw; read it once the run is over."""

    payments_key: str
    mail_key: str
    payment_mix: dict[str, int] = field(default_factory=lambda: dict(FLAKY_PAYMENTS))
    mail_mix: dict[str, int] = field(default_factory=lambda: dict(FLAKY_MAIL))
    seed: int = 20
    charges: list[Charge] = field(default_factory=list)  # every charge made, replays excluded
    charge_attempts: int = 0
    unauthorised: int = 0
    deliveries: list[Delivery] = field(default_factory=list)  # every accepted delivery
    mail_attempts: int = 0
    hold_delivery: int = 0  # the n-th accepted delivery is held (0: none)
    forced_payments: list[str] = field(default_factory=list)  # behaviours taken before the mix
    forced_mail: list[str] = field(default_factory=list)
    charged: dict[str, Charge] = field(default_factory=dict)  # key -> the charge it made
    charging: set[str] = field(default_factory=set)  # keys whose first attempt is running
    delivered: dict[str, Delivery] = field(default_factory=dict)  # key -> its delivery
    holding: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Between two tests: nothing seen, nothing forced, everything quick."""
        with self.lock:
            self.charges.clear()
            self.deliveries.clear()
            self.forced_payments.clear()
            self.forced_mail.clear()
            self.charged.clear()
            self.charging.clear()
            self.delivered.clear()
            self.charge_attempts = self.mail_attempts = self.unauthorised = 0


class ChargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_cents: StrictInt = Field(gt=0)
    reference: StrictStr = Field(max_length=200)


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: StrictInt
    email: StrictStr
    total_cents: StrictInt


def upstream_app(state: Upstream) -> FastAPI:
    app = FastAPI()
    payments = itertools.cycle(schedule(state.payment_mix, state.seed))
    mails = itertools.cycle(schedule(state.mail_mix, state.seed + 1))
    charged, charging, delivered = state.charged, state.charging, state.delivered
    ids = itertools.count(1)

    def authorised(header: str, key: str) -> bool:
        if header == f"Bearer {key}":
            return True
        with state.lock:
            state.unauthorised += 1
        return False

    @app.post("/charges")
    async def charge(
        body: ChargeIn,
        authorization: str = Header(""),
        idempotency_key: str | None = Header(None),
    ) -> Any:
        if not authorised(authorization, state.payments_key):
            return JSONResponse({"error": "bad API key"}, status_code=401)
        with state.lock:
            state.charge_attempts += 1
        key = idempotency_key
        if key is not None and key in charged:
            done = charged[key]
            if done.amount_cents != body.amount_cents:
                return JSONResponse({"error": "key reused for another amount"}, status_code=422)
            return JSONResponse({"id": done.id, "amount_cents": done.amount_cents}, status_code=201)
        if key is not None and key in charging:
            return JSONResponse(
                {"error": "a request with this key is in progress"}, status_code=409
            )
        behaviour = state.forced_payments.pop(0) if state.forced_payments else next(payments)
        if key is not None:
            charging.add(key)
        try:
            if behaviour == "fail":
                await asyncio.sleep(0.05)
                return JSONResponse({"error": "provider unavailable"}, status_code=503)
            delay = {"slow": random.uniform(0.10, 0.25), "quick": 0.01}.get(behaviour, 0.05)
            await asyncio.sleep(delay)
            made = Charge(f"ch_{next(ids)}", key, body.amount_cents, body.reference)
            with state.lock:
                state.charges.append(made)
            if key is not None:
                charged[key] = made
        finally:
            charging.discard(key or "")
        if behaviour == "charge_then_500":
            return JSONResponse({"error": "internal error"}, status_code=500)
        if behaviour == "charge_then_hang":
            await asyncio.sleep(HANG_S)
        return JSONResponse({"id": made.id, "amount_cents": made.amount_cents}, status_code=201)

    @app.post("/receipts")
    async def receipt(
        body: ReceiptIn,
        request: Request,
        authorization: str = Header(""),
        idempotency_key: str | None = Header(None),
    ) -> Any:
        if not authorised(authorization, state.mail_key):
            return JSONResponse({"error": "bad API key"}, status_code=401)
        with state.lock:
            state.mail_attempts += 1
        key = idempotency_key
        if key is not None and key in delivered:
            return JSONResponse({"id": key, "replayed": True}, status_code=202)
        behaviour = state.forced_mail.pop(0) if state.forced_mail else next(mails)
        await asyncio.sleep(0.005)
        if behaviour == "fail":
            return JSONResponse({"error": "mail service unavailable"}, status_code=503)
        made = Delivery(key, body.order_id, body.email, body.total_cents, True)
        with state.lock:
            state.deliveries.append(made)
            held = state.hold_delivery and len(state.deliveries) == state.hold_delivery
        if key is not None:
            delivered[key] = made
        if held:  # the runner that sent this one is killed before it hears back
            state.holding.set()
            await asyncio.to_thread(state.released.wait, HANG_S)
        if behaviour == "accept_then_500":
            return JSONResponse({"error": "internal error"}, status_code=500)
        return JSONResponse({"id": key or str(len(state.deliveries))}, status_code=202)

    return app
