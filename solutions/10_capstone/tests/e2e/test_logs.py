"""What the logs say, and what they must never say."""

import uuid


def test_no_password_or_token_reaches_the_logs(client, account, logs):
    client.post("/login", json={"email": account.email, "password": account.password})
    client.post(
        "/orders", json={"sku": "KB-1", "qty": 1},
        headers={**account.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert logs.records, "nothing was logged at all"
    assert account.password not in logs.text
    assert account.token not in logs.text


def test_the_request_id_is_echoed_and_logged(client, account, logs):
    response = client.get("/health", headers={"X-Request-ID": "trace-me-42"})
    assert response.headers["X-Request-ID"] == "trace-me-42"
    assert any(getattr(r, "request_id", None) == "trace-me-42" for r in logs.records)
