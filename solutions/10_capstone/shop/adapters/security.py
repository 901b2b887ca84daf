"""Password hashes and signed tokens. Hashing is slow on purpose (CPU for tens of
milliseconds): callers run it in a thread, never on the event loop."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

# PBKDF2-SHA256. Production would use more iterations (OWASP: 600,000) or argon2id; the
# course keeps it cheap so that a load test of a hundred clients fits on two cores.
ITERATIONS = 20_000
TOKEN_TTL_S = 3600


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
    return f"pbkdf2${ITERATIONS}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    _, iterations, salt, digest = stored.split("$")
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(candidate.hex(), digest)


DUMMY_HASH = hash_password(secrets.token_hex(8))  # unknown emails cost as much as known ones


def _sign(secret: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def issue_token(secret: str, account_id: int, now: float | None = None) -> str:
    expires = int((now or time.time()) + TOKEN_TTL_S)
    payload = f"{account_id}.{expires}"
    return f"{payload}.{_sign(secret, payload)}"


def account_of(secret: str, token: str, now: float | None = None) -> int | None:
    """The account a valid, unexpired token was issued to; None otherwise."""
    try:
        account_id, expires, signature = token.split(".")
        if not hmac.compare_digest(signature, _sign(secret, f"{account_id}.{expires}")):
            return None
        if int(expires) < (now or time.time()):
            return None
        return int(account_id)
    except ValueError:
        return None
