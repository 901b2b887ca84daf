"""`python -m shop.worker`: send every pending receipt, then exit (0 when all were sent).

Run it from cron or a supervisor loop. It is safe to kill at any moment and to run again:
a receipt is marked sent only after the mail service accepted it, and every attempt carries
the receipt's own Idempotency-Key, so a resend after a crash is delivered once in effect.
"""

from __future__ import annotations

import logging
import sys

import httpx

from .adapters import database
from .adapters.mailer import HttpMailer
from .config import Settings
from .entrypoints.logs import configure_logging
from .service_layer import services
from .service_layer.unit_of_work import SqlAlchemyUnitOfWork

log = logging.getLogger("shop.worker")


def run(settings: Settings) -> int:
    writer = database.writer_engine(settings.database_path)
    try:
        headers = {"Authorization": f"Bearer {settings.mail_api_key}"}
        timeout = httpx.Timeout(settings.mail_timeout_s, connect=0.5)
        with httpx.Client(base_url=settings.mail_url, headers=headers, timeout=timeout) as client:
            sent = services.send_pending_receipts(
                lambda: SqlAlchemyUnitOfWork(writer), HttpMailer(client)
            )
        with SqlAlchemyUnitOfWork(writer) as uow:
            abandoned = uow.receipts.given_up(services.MAX_MAIL_ATTEMPTS)
    finally:
        writer.dispose()
    log.info("receipts sent", extra={"sent": sent, "abandoned": abandoned})
    return 1 if abandoned else 0


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
