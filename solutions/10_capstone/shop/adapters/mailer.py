"""Receipts go out through the mail service. Like payments: a timeout on every attempt and
the receipt's own Idempotency-Key, so a resend after a crash is delivered once in effect."""

from __future__ import annotations

from typing import Protocol

import httpx

from ..domain.model import Receipt


class MailError(Exception):
    """Not delivered this time; the job stays pending."""


class Mailer(Protocol):
    def send(self, receipt: Receipt) -> None: ...


class HttpMailer:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def send(self, receipt: Receipt) -> None:
        try:
            response = self.client.post(
                "/receipts",
                json={
                    "order_id": receipt.order_id,
                    "email": receipt.email,
                    "total_cents": receipt.total_cents,
                },
                headers={"Idempotency-Key": receipt.key},
            )
        except httpx.TransportError as e:
            raise MailError(type(e).__name__) from e
        if response.status_code >= 300:
            raise MailError(f"mail service answered {response.status_code}")
