"""`python -m shop.seed EMAIL PASSWORD N`: create the tables, one account and N paid orders
whose receipts went out long ago (demo data, and the readiness report's large export)."""

from __future__ import annotations

import sys

from sqlalchemy import insert

from .adapters import database, security
from .adapters.orm import AccountRow, Base, OrderRow
from .config import Settings
from .domain import model


def seed(settings: Settings, email: str, password: str, orders: int) -> None:
    engine = database.writer_engine(settings.database_path)
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as connection:
            account_id = connection.execute(
                insert(AccountRow.__table__)
                .values(email=email, password_hash=security.hash_password(password))
                .returning(AccountRow.id)
            ).scalar_one()
            skus = sorted(model.PRICE_CENTS)
            rows = [
                {
                    "account_id": account_id,
                    "idempotency_key": f"seed-{n}",
                    "sku": skus[n % len(skus)],
                    "qty": 1 + n % 7,
                    "total_cents": model.total_cents(skus[n % len(skus)], 1 + n % 7),
                    "status": "paid",
                    "charge_id": f"seed-{n}",
                }
                for n in range(orders)
            ]
            connection.execute(insert(OrderRow.__table__), rows)  # one executemany
    finally:
        engine.dispose()


if __name__ == "__main__":
    email, password, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seed(Settings.from_env(), email, password, count)
