"""A unit of work: one short transaction. Leaving the block without `commit()` rolls back
(an error, a timeout); the connection goes back to the pool on every path. Never hold one
open across a call to another service: while it is open, it holds SQLite's write lock."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..adapters.repositories import SqlAccounts, SqlOrders, SqlReceipts


class AbstractUnitOfWork:
    accounts: SqlAccounts
    orders: SqlOrders
    receipts: SqlReceipts

    def __enter__(self) -> AbstractUnitOfWork:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.rollback()  # after a commit there is nothing left to roll back

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError


class SqlAlchemyUnitOfWork(AbstractUnitOfWork):
    def __init__(self, engine: Engine) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        self.session: Session = self.sessions()
        self.accounts = SqlAccounts(self.session)
        self.orders = SqlOrders(self.session)
        self.receipts = SqlReceipts(self.session)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            super().__exit__(kind, error, traceback)
        finally:
            self.session.close()  # the connection goes back, whatever happened

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
