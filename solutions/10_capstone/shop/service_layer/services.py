"""The use cases. Each one is a short sequence of units of work and adapter calls; no
transaction stays open while the provider or the mailer is called. They are plain
functions: the API runs them in its threadpool, the worker in its own process."""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator

from sqlalchemy import Engine

from ..adapters import security
from ..adapters.mailer import Mailer, MailError
from ..adapters.payments import PaymentProvider
from ..adapters.repositories import EXPORT_COLUMNS, stream_orders
from ..domain import model
from .unit_of_work import AbstractUnitOfWork

log = logging.getLogger(__name__)
UnitOfWorkFactory = Callable[[], AbstractUnitOfWork]


def sign_up(uow: AbstractUnitOfWork, email: str, password: str) -> int:
    password_hash = security.hash_password(password)  # slow on purpose: before the transaction
    with uow:
        account_id = uow.accounts.add(email, password_hash)
        if account_id is None:
            raise model.EmailTaken(email)
        uow.commit()
    log.info("account created", extra={"account_id": account_id})
    return account_id


def log_in(
    new_uow: UnitOfWorkFactory, secret: str, email: str, password: str, now: float | None = None
) -> str:
    now = time.time() if now is None else now
    with new_uow() as uow:
        found = uow.accounts.credentials(email)
        if found is None:
            attempt = None
        else:
            # Reserve the attempt before checking the password, in one statement: concurrent
            # guesses cannot all slip in under the limit.
            allowed = uow.accounts.reserve_attempt(
                found[0], now, model.LOCKOUT_SECONDS, model.LOCKOUT_ATTEMPTS
            )
            attempt = (allowed, uow.accounts.oldest_recent_attempt(found[0], now, model.LOCKOUT_SECONDS))
            uow.commit()
    if found is None or attempt is None:
        security.verify_password(password, security.DUMMY_HASH)  # as slow as a real check
        raise model.InvalidCredentials()
    (account_id, stored), (allowed, oldest) = found, attempt
    if not allowed:
        log.warning("login refused: account locked", extra={"account_id": account_id})
        raise model.AccountLocked(max(1, int(oldest + model.LOCKOUT_SECONDS - now)))
    if not security.verify_password(password, stored):  # slow: outside the transaction
        log.info("login failed", extra={"account_id": account_id})
        raise model.InvalidCredentials()  # the reserved attempt stays: it counts as failed
    with new_uow() as uow:
        uow.accounts.clear_attempts(account_id)
        uow.commit()
    return security.issue_token(secret, account_id, now)


def place_order(
    new_uow: UnitOfWorkFactory,
    payments: PaymentProvider,
    account_id: int,
    key: str,
    sku: str,
    qty: int,
) -> model.Order:
    """Store the order first (once per key), then charge it (once per order, whatever the
    number of attempts), then mark it paid and queue its receipt in one transaction."""
    total = model.total_cents(sku, qty)
    with new_uow() as uow:
        order = uow.orders.add_once(account_id, key, sku, qty, total)
        uow.commit()
    if not order.same_request(sku, qty):
        raise model.IdempotencyKeyReused(key)
    if order.status == "paid":
        return order  # a retry of an order that went through: same answer, no new charge
    charge_id = payments.charge(order.total_cents, model.payment_key(order))
    with new_uow() as uow:
        if uow.orders.mark_paid(order.id, charge_id):
            uow.receipts.enqueue(order.id)  # the outbox: paid and queued, or neither
        uow.commit()
    log.info("order paid", extra={"order_id": order.id, "total_cents": order.total_cents})
    return model.Order(order.id, account_id, key, order.sku, order.qty, order.total_cents, "paid")


def get_order(uow: AbstractUnitOfWork, account_id: int, order_id: int) -> model.Order:
    with uow:
        order = uow.orders.get(account_id, order_id)
    if order is None:
        raise model.OrderNotFound(order_id)
    return order


def export_csv(reader: Engine, account_id: int, chunk: int = 2000) -> Iterator[str]:
    """CSV text, `chunk` rows at a time, from a read-only snapshot: memory stays flat."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    with reader.connect() as connection:
        for rows in stream_orders(connection, account_id, chunk):
            writer.writerows(rows)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


MAX_MAIL_ATTEMPTS = 8


def send_pending_receipts(new_uow: UnitOfWorkFactory, mailer: Mailer, batch: int = 100) -> int:
    """Send every pending receipt; a failed send stays pending and is tried again after a
    pause, up to MAX_MAIL_ATTEMPTS times. A receipt is marked sent only after the mail
    service said yes; if the process dies in between, the next run sends it again, with
    the same key. Returns how many were sent."""
    sent, pause = 0, 0.05
    while True:
        with new_uow() as uow:
            pending = uow.receipts.pending(batch, MAX_MAIL_ATTEMPTS)
        if not pending:
            return sent
        failures = 0
        for receipt in pending:
            try:
                mailer.send(receipt)
            except MailError as e:
                failures += 1
                log.warning("receipt not sent", extra={"order_id": receipt.order_id, "error": str(e)})
                with new_uow() as uow:
                    uow.receipts.mark_failed_attempt(receipt.order_id)
                    uow.commit()
                continue
            with new_uow() as uow:
                uow.receipts.mark_sent(receipt.order_id)
                uow.commit()
            sent += 1
        if failures:
            time.sleep(pause)  # the mail service is struggling: give it room
            pause = min(pause * 2, 1.0)
