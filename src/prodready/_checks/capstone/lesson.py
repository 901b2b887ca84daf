"""What the capstone's lesson uses to run a version of the service by hand: the course's
payment provider and mail service on loopback, and the service under uvicorn in a process of
its own (as the report runs it), optionally under cProfile. Everything stops when the
``with`` block ends."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .._support import serve
from ._run import STARTUP_S, Process, copy_service
from ._upstream import FLAKY_PAYMENTS, Upstream, upstream_app

PAYMENTS = {
    "steady": {"slow": 1},  # 0.10 to 0.25 s a charge, always a success
    "flaky": FLAKY_PAYMENTS,
}


@dataclass
class Running:
    url: str
    upstream: Upstream
    service: Process
    database: Path

    def output(self) -> str:
        out, err = self.service.output()
        return out + err


@contextlib.contextmanager
def running(
    folder: str | os.PathLike[str], *, payments: str = "steady", profile_to: str | None = None
) -> Iterator[Running]:
    """The service of ``folder`` on 127.0.0.1, with a fresh database; stopped on exit (with
    ``profile_to``, its cProfile statistics are written there when it stops)."""
    scratch = Path(tempfile.mkdtemp(prefix="prodready-capstone-lesson-"))
    state = Upstream(
        payments_key="pk_" + secrets.token_hex(12), mail_key="mk_" + secrets.token_hex(12),
        payment_mix=dict(PAYMENTS[payments]), seed=26,
    )  # fmt: skip
    try:
        copy_service(Path(folder), scratch / "service")
        (scratch / "logs").mkdir()
        with serve(upstream_app(state)) as upstream_url:
            env = {
                "SHOP_DATABASE_PATH": str(scratch / "shop.db"),
                "SHOP_PAYMENTS_URL": upstream_url, "SHOP_PAYMENTS_API_KEY": state.payments_key,
                "SHOP_MAIL_URL": upstream_url, "SHOP_MAIL_API_KEY": state.mail_key,
                "SHOP_SECRET_KEY": "sk_" + secrets.token_hex(16),
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
            }  # fmt: skip
            if profile_to:
                env["PRODREADY_PROFILE_TO"] = profile_to
            port_file = scratch / "port"
            service = Process(
                "service", ["-m", "prodready._checks.capstone._serve", str(port_file)],
                scratch / "service", env, scratch / "logs",
            )  # fmt: skip
            try:
                deadline = time.monotonic() + STARTUP_S
                while not port_file.exists():
                    if not service.alive() or time.monotonic() > deadline:
                        raise RuntimeError(f"the service did not start:\n{service.tail()}")
                    time.sleep(0.02)
                url = f"http://127.0.0.1:{port_file.read_text(encoding='utf-8')}"
                yield Running(url, state, service, scratch / "shop.db")
            finally:
                service.stop(grace=8.0)  # time to write its profile
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
