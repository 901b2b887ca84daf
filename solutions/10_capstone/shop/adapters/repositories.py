"""SQL for each aggregate, behind small classes the service layer can replace with fakes.
Writes that race (an idempotent retry, a login attempt) are single statements: the database
decides, not a read followed by a write."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..domain.model import Order, Receipt
from .orm import AccountRow, LoginAttemptRow, OrderRow, ReceiptJobRow


_ORDER_COLUMNS = (
    OrderRow.id, OrderRow.account_id, OrderRow.idempotency_key, OrderRow.sku, OrderRow.qty,
    OrderRow.total_cents, OrderRow.status,
)  # fmt: skip


def _order(row: Sequence[object]) -> Order:
    return Order(*row)  # type: ignore[arg-type]


class SqlAccounts:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, email: str, password_hash: str) -> int | None:
        """The new account's id, or None when the email is taken."""
        statement = (
            sqlite_insert(AccountRow.__table__)
            .values(email=email, password_hash=password_hash)
            .on_conflict_do_nothing()
            .returning(AccountRow.id)
        )
        return self.session.execute(statement).scalar_one_or_none()

    def credentials(self, email: str) -> tuple[int, str] | None:
        row = (
            self.session.execute(
                select(AccountRow.id, AccountRow.password_hash).where(AccountRow.email == email)
            )
        ).one_or_none()
        return (row[0], row[1]) if row else None

    def email_of(self, account_id: int) -> str:
        return (
            self.session.execute(select(AccountRow.email).where(AccountRow.id == account_id))
        ).scalar_one()

    def reserve_attempt(self, account_id: int, now: float, window_s: int, limit: int) -> bool:
        """Record one more attempt unless `limit` attempts failed within the window: one
        statement, so fifty concurrent guesses cannot all see "four so far"."""
        recent = (
            select(func.count())
            .select_from(LoginAttemptRow)
            .where(LoginAttemptRow.account_id == account_id, LoginAttemptRow.at > now - window_s)
            .scalar_subquery()
        )
        statement = (
            insert(LoginAttemptRow.__table__)
            .from_select(
                ["account_id", "at"],
                select(account_id, now).where(recent < limit),  # type: ignore[arg-type]
            )
            .returning(LoginAttemptRow.id)
        )
        return self.session.execute(statement).first() is not None

    def oldest_recent_attempt(self, account_id: int, now: float, window_s: int) -> float:
        oldest = self.session.scalar(
            select(func.min(LoginAttemptRow.at)).where(
                LoginAttemptRow.account_id == account_id, LoginAttemptRow.at > now - window_s
            )
        )
        return float(oldest if oldest is not None else now)

    def clear_attempts(self, account_id: int) -> None:
        self.session.execute(
            delete(LoginAttemptRow.__table__).where(LoginAttemptRow.account_id == account_id)
        )


class SqlOrders:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_once(self, account_id: int, key: str, sku: str, qty: int, total: int) -> Order:
        """The order for (account, key): inserted now, or the one an earlier attempt stored."""
        inserted = (
            self.session.execute(
                sqlite_insert(OrderRow.__table__)
                .values(
                    account_id=account_id, idempotency_key=key, sku=sku, qty=qty,
                    total_cents=total, status="pending",
                )
                .on_conflict_do_nothing(index_elements=["account_id", "idempotency_key"])
                .returning(*_ORDER_COLUMNS)
            )
        ).first()  # fmt: skip
        if inserted is not None:
            return _order(inserted)
        earlier = self.session.execute(
            select(*_ORDER_COLUMNS).where(
                OrderRow.account_id == account_id, OrderRow.idempotency_key == key
            )
        )
        return _order(earlier.one())

    def get(self, account_id: int, order_id: int) -> Order | None:
        row = (
            self.session.execute(
                select(*_ORDER_COLUMNS).where(
                    OrderRow.id == order_id, OrderRow.account_id == account_id
                )
            )
        ).first()
        return _order(row) if row else None

    def mark_paid(self, order_id: int, charge_id: str) -> bool:
        """True only for the attempt that moved the order to paid."""
        result = self.session.execute(
            update(OrderRow.__table__)
            .where(OrderRow.id == order_id, OrderRow.status == "pending")
            .values(status="paid", charge_id=charge_id)
            .returning(OrderRow.id)
        )
        return result.first() is not None


class SqlReceipts:
    def __init__(self, session: Session) -> None:
        self.session = session

    def enqueue(self, order_id: int) -> None:
        self.session.execute(insert(ReceiptJobRow.__table__).values(order_id=order_id))

    def pending(self, limit: int, max_attempts: int) -> Sequence[Receipt]:
        rows = self.session.execute(
            select(OrderRow.id, AccountRow.email, OrderRow.total_cents)
            .join(ReceiptJobRow, ReceiptJobRow.order_id == OrderRow.id)
            .join(AccountRow, AccountRow.id == OrderRow.account_id)
            .where(ReceiptJobRow.sent.is_(False), ReceiptJobRow.attempts < max_attempts)
            .order_by(OrderRow.id)
            .limit(limit)
        )
        return [Receipt(order_id, email, total) for order_id, email, total in rows]

    def mark_sent(self, order_id: int) -> None:
        self.session.execute(
            update(ReceiptJobRow.__table__)
            .where(ReceiptJobRow.order_id == order_id)
            .values(sent=True)
        )

    def mark_failed_attempt(self, order_id: int) -> None:
        self.session.execute(
            update(ReceiptJobRow.__table__)
            .where(ReceiptJobRow.order_id == order_id)
            .values(attempts=ReceiptJobRow.attempts + 1)
        )

    def given_up(self, max_attempts: int) -> int:
        count = self.session.scalar(
            select(func.count())
            .select_from(ReceiptJobRow)
            .where(ReceiptJobRow.sent.is_(False), ReceiptJobRow.attempts >= max_attempts)
        )
        return int(count or 0)


EXPORT_COLUMNS = ("id", "sku", "qty", "total_cents", "status")


def stream_orders(
    connection: Connection, account_id: int, chunk: int
) -> Iterator[Sequence[tuple[object, ...]]]:
    """The account's orders, `chunk` rows at a time: memory stays flat for any number."""
    result = connection.execution_options(yield_per=chunk).execute(
        select(OrderRow.id, OrderRow.sku, OrderRow.qty, OrderRow.total_cents, OrderRow.status)
        .where(OrderRow.account_id == account_id)
        .order_by(OrderRow.id)
    )
    for rows in result.partitions(chunk):
        yield [tuple(row) for row in rows]
