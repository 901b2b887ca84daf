"""`python -m shop.seed EMAIL PASSWORD N`: one account with N paid orders (demo data)."""

import sys

from sqlalchemy import insert

from .db import Account, Base, Order, SessionLocal, engine
from .main import PRICES, hash_password


def seed(email, password, count):
    Base.metadata.create_all(engine)
    with SessionLocal() as session:
        account = Account(email=email, password_hash=hash_password(password))
        session.add(account)
        session.flush()
        skus = sorted(PRICES)
        rows = [
            {"account_id": account.id, "sku": skus[n % len(skus)], "qty": 1 + n % 7,
             "total_cents": round(PRICES[skus[n % len(skus)]] * 100) * (1 + n % 7), "status": "paid"}
            for n in range(count)
        ]
        session.execute(insert(Order.__table__), rows)
        session.commit()


if __name__ == "__main__":
    seed(sys.argv[1], sys.argv[2], int(sys.argv[3]))
