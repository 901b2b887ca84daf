"""The tables. Uniqueness the rules depend on lives in the database, where a race cannot
get past it: one order per (account, idempotency key), one receipt per order."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))


class LoginAttemptRow(Base):
    """A login attempt that has not succeeded: a failure, or one still being checked."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    at: Mapped[float]


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    sku: Mapped[str] = mapped_column(String(20))
    qty: Mapped[int]
    total_cents: Mapped[int]
    status: Mapped[str] = mapped_column(String(10), default="pending")
    charge_id: Mapped[str | None] = mapped_column(String(100), default=None)


class ReceiptJobRow(Base):
    """The outbox: written in the transaction that marks the order paid, sent by the worker."""

    __tablename__ = "receipt_jobs"
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    sent: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)


Index("ix_receipt_jobs_pending", ReceiptJobRow.sent)
