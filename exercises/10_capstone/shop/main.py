"""The shop's API. `uvicorn shop.main:app`."""

import csv
import hashlib
import hmac
import io
import logging
import secrets
import time

import httpx
from fastapi import Body, FastAPI, Header, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select

from . import config
from .db import Account, Base, Order, ReceiptJob, SessionLocal, engine

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(request_id)s] %(message)s")
log = logging.getLogger("shop")

PRICES = {"KB-1": 4.35, "MS-2": 19.99, "CB-3": 0.10, "HD-4": 1.15, "PD-5": 0.29, "LT-6": 1234.56}
REQUEST_ID = "-"  # the request being served, for the log lines

Base.metadata.create_all(engine)
app = FastAPI()


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = REQUEST_ID
        return True


for handler in logging.getLogger().handlers:
    handler.addFilter(RequestIdFilter())


@app.middleware("http")
async def request_id(request: Request, call_next):
    global REQUEST_ID
    REQUEST_ID = request.headers.get("x-request-id", secrets.token_hex(8))
    return await call_next(request)


def hash_password(password, salt=None):
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 20_000)
    return f"{salt}${digest.hex()}"


def make_token(account_id):
    expires = int(time.time()) + 3600
    payload = f"{account_id}.{expires}"
    mac = hmac.new(config.SECRET_KEY.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{mac}"


def account_from(authorization):
    try:
        account_id, expires, mac = authorization.removeprefix("Bearer ").split(".")
    except ValueError:
        raise HTTPException(401, "not logged in")
    payload = f"{account_id}.{expires}"
    good = hmac.new(config.SECRET_KEY.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, good) or int(expires) < time.time():
        raise HTTPException(401, "not logged in")
    return int(account_id)


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/accounts", status_code=201)
async def sign_up(body: dict = Body(...)):
    with SessionLocal() as session:
        if session.scalar(select(Account).where(Account.email == body["email"])):
            raise HTTPException(409, "email already registered")
        account = Account(email=body["email"], password_hash=hash_password(body["password"]))
        session.add(account)
        session.commit()
        return {"id": account.id, "email": account.email}


@app.post("/login")
async def login(body: dict = Body(...)):
    log.info("login attempt %s", body)
    with SessionLocal() as session:
        account = session.scalar(select(Account).where(Account.email == body["email"]))
    if account is None:
        raise HTTPException(401, "wrong email or password")
    salt = account.password_hash.split("$")[0]
    if hash_password(body["password"], salt) != account.password_hash:
        raise HTTPException(401, "wrong email or password")
    return {"token": make_token(account.id)}


@app.post("/orders", status_code=201)
async def create_order(body: dict = Body(...), authorization: str = Header(""), idempotency_key: str = Header("")):
    account_id = account_from(authorization)
    sku, qty = body["sku"], body["qty"]
    total_cents = int(PRICES[sku] * qty * 100)
    session = SessionLocal()
    order = Order(account_id=account_id, sku=sku, qty=qty, total_cents=total_cents)
    session.add(order)
    session.flush()

    client = httpx.Client(base_url=config.PAYMENTS_URL)
    headers = {"Authorization": f"Bearer {config.PAYMENTS_API_KEY}"}
    log.info("charging order %s with headers %s", order.id, headers)
    for attempt in range(3):
        try:
            response = client.post("/charges", json={"amount_cents": total_cents, "reference": str(order.id)}, headers=headers)
            response.raise_for_status()
            break
        except httpx.HTTPError:
            log.info("payment attempt %s failed, trying again", attempt)
    else:
        raise HTTPException(502, "payment failed")
    order.status = "paid"
    session.add(ReceiptJob(order_id=order.id))
    session.commit()
    result = {"id": order.id, "sku": order.sku, "qty": order.qty, "total_cents": order.total_cents, "status": order.status}
    session.close()
    client.close()
    return result


@app.get("/orders.csv")
async def export_orders(authorization: str = Header("")):
    account_id = account_from(authorization)
    with SessionLocal() as session:
        orders = session.scalars(select(Order).where(Order.account_id == account_id).order_by(Order.id)).all()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "sku", "qty", "total_cents", "status"])
    for order in orders:
        writer.writerow([order.id, order.sku, order.qty, int(order.total_cents), order.status])
    return Response(out.getvalue(), media_type="text/csv")


@app.get("/orders/{order_id}")
async def get_order(order_id: int, authorization: str = Header("")):
    account_id = account_from(authorization)
    with SessionLocal() as session:
        order = session.get(Order, order_id)
    if order is None or order.account_id != account_id:
        raise HTTPException(404, "no such order")
    return {"id": order.id, "sku": order.sku, "qty": order.qty, "total_cents": int(order.total_cents), "status": order.status}
