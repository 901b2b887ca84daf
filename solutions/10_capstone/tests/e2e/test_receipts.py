"""Receipts: one per paid order, whatever the mail service does."""

import uuid


def test_every_paid_order_gets_one_receipt_although_the_mail_service_fails(
    client, account, mailbox, run_worker
):
    ids = []
    for qty in (1, 2, 3):
        placed = client.post(
            "/orders", json={"sku": "CB-3", "qty": qty},
            headers={**account.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        ids.append(placed.json()["id"])
    mailbox.fail_next()
    mailbox.accept_then_fail_next()
    assert run_worker() == 0
    mine = [r for r in mailbox.receipts if r.order_id in ids]
    assert sorted(r.order_id for r in mine) == sorted(ids)  # each once, none lost
