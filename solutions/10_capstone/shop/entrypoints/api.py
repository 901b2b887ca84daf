"""The HTTP entry point. Each route only translates: a validated request in, one call to
the service layer, a response out. Domain errors are mapped to RFC 9457 problem responses
in one place; anything unexpected is logged with its traceback and answered 500.

The routes that touch the database or the provider are plain `def`: FastAPI runs them in
its threadpool, so a slow provider or a busy database never stalls the event loop (and
`/health` with it)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ..adapters import database, security
from ..adapters.orm import Base
from ..adapters.payments import HttpPayments, PaymentDeclined, PaymentUnavailable
from ..config import Settings
from ..domain import model
from ..service_layer import services
from ..service_layer.unit_of_work import SqlAlchemyUnitOfWork
from .logs import RequestIdMiddleware, configure_logging

log = logging.getLogger("shop.api")


class SignUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=128)


class LogIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=128)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(min_length=1, max_length=20)
    qty: StrictInt = Field(ge=1, le=model.MAX_QTY)  # "3", 2.5 and true are refused


class OrderOut(BaseModel):
    id: int
    sku: str
    qty: int
    total_cents: int
    status: str


class Unauthenticated(Exception):
    pass


_PROBLEMS: dict[type[Exception], tuple[int, str]] = {
    model.UnknownSku: (422, "unknown SKU"),
    model.InvalidQuantity: (422, "quantity out of range"),
    model.IdempotencyKeyReused: (422, "Idempotency-Key already used for another order"),
    model.OrderNotFound: (404, "no such order"),
    model.EmailTaken: (409, "email already registered"),
    model.InvalidCredentials: (401, "wrong email or password"),
    model.AccountLocked: (429, "too many failed logins: account locked for a while"),
    Unauthenticated: (401, "a valid Bearer token is required"),
    PaymentDeclined: (402, "the payment was declined"),
    PaymentUnavailable: (503, "the payment provider is unavailable: retry with the same key"),
}


def _problem(status: int, title: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    writer = database.writer_engine(settings.database_path)
    reader = database.reader_engine(settings.database_path)
    try:
        Base.metadata.create_all(writer)
        timeout = httpx.Timeout(settings.payments_timeout_s, connect=0.5)
        headers = {"Authorization": f"Bearer {settings.payments_api_key}"}
        limits = httpx.Limits(max_connections=50)  # as many as the threadpool runs at once
        with httpx.Client(
            base_url=settings.payments_url, timeout=timeout, headers=headers, limits=limits
        ) as client:
            app.state.settings = settings
            app.state.reader = reader
            app.state.writes = lambda: SqlAlchemyUnitOfWork(writer)
            app.state.reads = lambda: SqlAlchemyUnitOfWork(reader)
            app.state.payments = HttpPayments(client)
            log.info("shop started")
            yield
    finally:
        writer.dispose()
        reader.dispose()


def current_account(request: Request, authorization: Annotated[str, Header()] = "") -> int:
    scheme, _, token = authorization.partition(" ")
    account_id = security.account_of(request.app.state.settings.secret_key, token)
    if scheme.lower() != "bearer" or account_id is None:
        raise Unauthenticated()
    return account_id


Account = Annotated[int, Depends(current_account)]


def create_app() -> RequestIdMiddleware:
    app = FastAPI(title="shop", lifespan=lifespan)

    for error, (status, title) in _PROBLEMS.items():

        async def handler(
            request: Request, exc: Exception, status: int = status, title: str = title
        ) -> JSONResponse:
            retry = getattr(exc, "retry_after_s", 1 if status == 503 else None)
            return _problem(status, title, {"Retry-After": str(retry)} if retry else None)

        app.add_exception_handler(error, handler)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _problem(500, "internal error")

    app.add_exception_handler(Exception, unexpected)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/accounts", status_code=201)
    def sign_up(body: SignUp, request: Request) -> dict[str, object]:
        account_id = services.sign_up(request.app.state.writes(), body.email, body.password)
        return {"id": account_id, "email": body.email}

    @app.post("/login")
    def log_in(body: LogIn, request: Request) -> dict[str, str]:
        state = request.app.state
        token = services.log_in(state.writes, state.settings.secret_key, body.email, body.password)
        return {"token": token}

    @app.post("/orders", status_code=201)
    def place_order(
        body: OrderIn,
        request: Request,
        account: Account,
        key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=100)],
    ) -> OrderOut:
        state = request.app.state
        order = services.place_order(state.writes, state.payments, account, key, body.sku, body.qty)
        return OrderOut(**{f: getattr(order, f) for f in OrderOut.model_fields})

    @app.get("/orders.csv")
    def export_orders(request: Request, account: Account) -> StreamingResponse:
        # a generator of 2,000-row chunks: each chunk is made in the threadpool, then sent
        rows = services.export_csv(request.app.state.reader, account)
        return StreamingResponse(rows, media_type="text/csv")

    @app.get("/orders/{order_id}")
    def get_order(order_id: int, request: Request, account: Account) -> OrderOut:
        order = services.get_order(request.app.state.reads(), account, order_id)
        return OrderOut(**{f: getattr(order, f) for f in OrderOut.model_fields})

    return RequestIdMiddleware(app)  # outermost: a 500's response and access line get the id too
