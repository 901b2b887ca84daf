"""Smoke tests: the shop answers."""


def test_health(client):
    assert client.get("/health").json() == {"status": "ok"}


def test_an_order_is_created(client, account):
    response = client.post(
        "/orders", json={"sku": "KB-1", "qty": 2}, headers={**account.headers, "Idempotency-Key": "first"}
    )
    assert response.status_code == 201
