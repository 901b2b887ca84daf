"""The shop's rules, in plain Python: no HTTP, no SQL, no clock or network of its own.
Money is integer cents from end to end; a float cannot hold 4.35 exactly."""

from __future__ import annotations

from dataclasses import dataclass

PRICE_CENTS: dict[str, int] = {
    "KB-1": 435,  # 4.35
    "MS-2": 1999,  # 19.99
    "CB-3": 10,  # 0.10
    "HD-4": 115,  # 1.15
    "PD-5": 29,  # 0.29
    "LT-6": 123456,  # 1,234.56
}
MAX_QTY = 100
LOCKOUT_ATTEMPTS = 5  # failed logins in a row that lock an account ...
LOCKOUT_SECONDS = 15 * 60  # ... for this long


class DomainError(Exception):
    """A request the rules refuse; each subclass is mapped to one HTTP answer."""


class UnknownSku(DomainError):
    pass


class InvalidQuantity(DomainError):
    pass


class IdempotencyKeyReused(DomainError):
    """The same key was sent again with a different order."""


class OrderNotFound(DomainError):
    pass


class EmailTaken(DomainError):
    pass


class InvalidCredentials(DomainError):
    pass


class AccountLocked(DomainError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"locked for {retry_after_s} s")
        self.retry_after_s = retry_after_s


def total_cents(sku: str, qty: int) -> int:
    if sku not in PRICE_CENTS:
        raise UnknownSku(sku)
    if not 1 <= qty <= MAX_QTY:
        raise InvalidQuantity(qty)
    return PRICE_CENTS[sku] * qty


@dataclass(frozen=True)
class Order:
    id: int
    account_id: int
    idempotency_key: str
    sku: str
    qty: int
    total_cents: int
    status: str  # "pending" until the provider confirms the charge, then "paid"

    def same_request(self, sku: str, qty: int) -> bool:
        return (self.sku, self.qty) == (sku, qty)


@dataclass(frozen=True)
class Receipt:
    order_id: int
    email: str
    total_cents: int

    @property
    def key(self) -> str:
        """One key per order, the same on every attempt: the mailer sends it once in effect."""
        return f"receipt-{self.order_id}"


def payment_key(order: Order) -> str:
    """One key per order, the same on every attempt: the provider charges it once."""
    return f"order-{order.id}"


def locked_out(recent_failures: int) -> bool:
    return recent_failures >= LOCKOUT_ATTEMPTS
