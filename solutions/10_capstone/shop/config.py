"""Settings come from environment variables, read when the app or the worker starts (never
at import time, so that tests and the readiness report can point one process at a new
database). Every setting has a safe local default; secrets are kept out of `repr`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    database_path: str = "shop.db"
    payments_url: str = "http://127.0.0.1:8001"
    payments_api_key: str = field(default="dev-payments-key", repr=False)
    mail_url: str = "http://127.0.0.1:8002"
    mail_api_key: str = field(default="dev-mail-key", repr=False)
    secret_key: str = field(default="dev-secret-key", repr=False)
    payments_timeout_s: float = 1.0  # one attempt; the adapter retries with the same key
    mail_timeout_s: float = 2.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        default = cls()

        def text(name: str, fallback: str) -> str:
            return env.get(f"SHOP_{name}", fallback)

        return cls(
            database_path=text("DATABASE_PATH", default.database_path),
            payments_url=text("PAYMENTS_URL", default.payments_url),
            payments_api_key=text("PAYMENTS_API_KEY", default.payments_api_key),
            mail_url=text("MAIL_URL", default.mail_url),
            mail_api_key=text("MAIL_API_KEY", default.mail_api_key),
            secret_key=text("SECRET_KEY", default.secret_key),
            payments_timeout_s=float(text("PAYMENTS_TIMEOUT_S", str(default.payments_timeout_s))),
            mail_timeout_s=float(text("MAIL_TIMEOUT_S", str(default.mail_timeout_s))),
            log_level=text("LOG_LEVEL", default.log_level),
        )
