"""Orders through HTTP, against the course's payment provider: what a client sees."""

import uuid


def place(client, account, key=None, sku="KB-1", qty=2):
    headers = {**account.headers, "Idempotency-Key": key or uuid.uuid4().hex}
    return client.post("/orders", json={"sku": sku, "qty": qty}, headers=headers)


def test_an_order_is_stored_and_can_be_read_back(client, account, provider):
    placed = place(client, account)
    assert placed.status_code == 201
    read = client.get(f"/orders/{placed.json()['id']}", headers=account.headers)
    assert read.status_code == 200 and read.json() == placed.json()
    exported = client.get("/orders.csv", headers=account.headers).text.splitlines()
    assert len(exported) == 2  # the header and this order


def test_a_retry_with_the_same_key_is_the_same_order_charged_once(client, account, provider):
    first = place(client, account, key="retry-me")
    again = place(client, account, key="retry-me")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len(provider.charges) == 1


def test_a_charge_answered_500_after_charging_is_not_charged_twice(client, account, provider):
    provider.charge_then_fail_next()
    placed = place(client, account)
    assert placed.status_code in (201, 503)
    if placed.status_code == 503:  # the client retries with the same key
        placed = place(client, account, key=placed.request.headers["Idempotency-Key"])
    assert placed.status_code == 201
    assert [c.amount_cents for c in provider.charges] == [870]


def test_a_provider_that_is_down_gets_an_honest_503_and_no_order_is_paid(client, account, provider):
    provider.fail_next(10)
    placed = place(client, account)
    assert placed.status_code == 503
    assert provider.charges == []


def test_a_bad_quantity_is_refused_and_nothing_is_charged(client, account, provider):
    for qty in ("3", 0, 101, 2.5, True):
        response = client.post(
            "/orders", json={"sku": "KB-1", "qty": qty},
            headers={**account.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 422, qty
    assert provider.charges == []
