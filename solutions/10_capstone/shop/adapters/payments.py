"""The payment provider, behind an interface the service layer owns. The HTTP adapter has
a timeout on every attempt and retries only what is safe to retry: the same Idempotency-Key
on every attempt, so the provider charges an order once however often it is asked."""

from __future__ import annotations

import logging
import random
import time
from typing import Protocol

import httpx

log = logging.getLogger(__name__)


class PaymentError(Exception):
    """The charge did not go through; the order stays pending and can be retried."""


class PaymentDeclined(PaymentError):
    """The provider refused the charge (a 4xx): retrying will not help."""


class PaymentUnavailable(PaymentError):
    """The provider failed, timed out or is busy with the same key: try again later."""


class PaymentProvider(Protocol):
    def charge(self, amount_cents: int, key: str) -> str:
        """Charge once per key; return the provider's charge id."""
        ...


class HttpPayments:
    def __init__(self, client: httpx.Client, attempts: int = 3, backoff_s: float = 0.05) -> None:
        self.client, self.attempts, self.backoff_s = client, attempts, backoff_s

    def charge(self, amount_cents: int, key: str) -> str:
        last = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.client.post(
                    "/charges",
                    json={"amount_cents": amount_cents, "reference": key},
                    headers={"Idempotency-Key": key},
                )
            except httpx.TransportError as e:  # a timeout included: the charge may have happened
                last = type(e).__name__
            else:
                if response.status_code in (200, 201):
                    return str(response.json()["id"])
                if response.status_code < 500 and response.status_code != 409:
                    raise PaymentDeclined(f"provider answered {response.status_code}")
                last = f"provider answered {response.status_code}"
            log.warning("payment attempt failed", extra={"attempt": attempt, "error": last})
            if attempt < self.attempts:  # full jitter: retries from many requests spread out
                time.sleep(random.uniform(0, self.backoff_s * 2**attempt))
        raise PaymentUnavailable(last)
