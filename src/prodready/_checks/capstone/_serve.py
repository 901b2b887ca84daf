"""Run a learner's service for the readiness report, in a process of its own (started
through ``prodready._child``): ``python -m prodready._child -m prodready._checks.capstone._serve
PORT_FILE``, from the service's folder.

It imports ``shop.main:app``, binds 127.0.0.1 on a free port (written to PORT_FILE once the
app has started), and serves it with uvicorn, leaving logging to the app (``log_config=None``).
``GET /__prodready__/memory`` answers the process's peak resident memory (the report's
export stage). With ``PRODREADY_PROFILE_TO`` set, the event loop's thread runs under cProfile
and its statistics are written there at shutdown (the lesson). The process ends by itself
when its parent dies or after ``LIFETIME_S``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

LIFETIME_S = 120.0
MEMORY_PATH = "/__prodready__/memory"


def peak_rss_bytes() -> int:
    try:
        import resource
    except ImportError:  # Windows
        import importlib

        # psutil (installed with the course's Jupyter stack) has no stubs here: reach it
        # through importlib, so that its untyped API stays behind this one typed function
        psutil: Any = importlib.import_module("psutil")
        return int(getattr(psutil.Process().memory_info(), "peak_wset", 0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _watchdog(parent: int) -> None:
    """Never outlive the check that started us."""
    started = time.monotonic()
    while True:
        time.sleep(0.2)
        if os.getppid() != parent or time.monotonic() - started > LIFETIME_S:
            os._exit(3)


def with_memory_probe(app: Any) -> Any:
    async def probed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == MEMORY_PATH:
            body = json.dumps({"peak_rss_bytes": peak_rss_bytes()}).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return probed


def main(port_file: str) -> None:
    threading.Thread(target=_watchdog, args=(os.getppid(),), daemon=True).start()
    sys.path.insert(0, os.getcwd())
    import uvicorn
    from shop.main import app  # type: ignore[import-not-found]  # the learner's service

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)  # now: asyncio would only listen on the loop's next turn
    port = sock.getsockname()[1]

    profile_to = os.environ.get("PRODREADY_PROFILE_TO")
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets=sockets)
            if profiler is not None and profile_to:  # before uvicorn re-raises SIGTERM
                profiler.dump_stats(profile_to)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # the lifespan ran: the app can take requests
                written = Path(f"{port_file}.part")
                written.write_text(str(port), encoding="utf-8")
                os.replace(written, port_file)  # whole or absent: never read half-written

    config = uvicorn.Config(
        with_memory_probe(app), log_config=None, log_level="info", access_log=True,
        lifespan="on", timeout_graceful_shutdown=2, timeout_keep_alive=5,
    )  # fmt: skip
    if profiler is not None:
        profiler.enable()  # this thread runs the event loop: every `async def` route runs here
    Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1])
