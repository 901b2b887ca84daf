"""What several checkers need: an in-process HTTP client, a real server on loopback, and
a watchdog that is never confused with the learner's own timeouts.

- ``asgi_client(app)``: an ``httpx.AsyncClient`` over ``ASGITransport``. It runs the
  app's lifespan (ASGITransport alone never does) and returns 500s as responses, the
  way a real client sees them, instead of raising the app's exception in the check.
- ``serve(app)``: uvicorn on 127.0.0.1, an ephemeral port, in a thread; always stopped.
- ``within(seconds, awaitable)``: the check's own time limit. It raises ``Overran``,
  a type no learner code raises, so a message can tell "your code gave up after 1 s"
  (the learner's ``TimeoutError``) from "your code was still waiting after 5 s" (ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, MutableMapping
from typing import Any, TypeVar

import httpx

from .._check import Fail

T = TypeVar("T")
SERVER_THREAD = "prodready-check-server"


class Overran(Exception):
    """The check's watchdog fired: the learner's code was still running."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"still running after {seconds:g} s")
        self.seconds = seconds


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` for at most ``seconds`` of the check's own time."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()  # the learner's own exceptions pass through unchanged
    task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.wait({task}, timeout=1)
    raise Overran(seconds)


@contextlib.asynccontextmanager
async def asgi_client(
    app: Any, *, base_url: str = "http://shop.test", lifespan: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``app`` in this process, its lifespan running around it the way
    uvicorn runs it: a lifespan may ``yield {"engine": ...}``, and each request then sees a
    copy of that state as ``request.state`` (ASGITransport alone would drop it)."""
    router = getattr(app, "router", None)
    context = router.lifespan_context(app) if lifespan and router is not None else None
    state: Any = None
    if context is not None:
        try:
            state = await context.__aenter__()
        except Exception as e:
            raise Fail(
                f"the app's lifespan raised {type(e).__name__}: {e}; the app cannot start"
            ) from None

    async def with_state(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if state is not None and scope["type"] in ("http", "websocket"):
            scope["state"] = dict(state)
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=with_state, raise_app_exceptions=False)
    failed: BaseException | None = None
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
    except BaseException as e:
        failed = e
        raise
    finally:
        if context is not None:
            if failed is None:
                await context.__aexit__(None, None, None)
            else:
                with contextlib.suppress(Exception):
                    await context.__aexit__(type(failed), failed, failed.__traceback__)


@contextlib.contextmanager
def serve(
    app: Any,
    *,
    startup_timeout: float = 20.0,
    log_config: dict[str, Any] | str | None = "default",
    log_level: str | int | None = "critical",
    access_log: bool = True,
) -> Iterator[str]:
    """Run ``app`` on uvicorn in a thread; yield its base URL; always stop it. uvicorn's own
    logging config applies, quiet; a check about logs passes its ``log_config`` (None:
    uvicorn leaves logging as the process has it) and ``log_level``."""
    import uvicorn  # only the checks that need a real server pay for the import

    options: dict[str, Any] = {} if log_config == "default" else {"log_config": log_config}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level=log_level, lifespan="on",
        timeout_graceful_shutdown=1, access_log=access_log, **options,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=SERVER_THREAD, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise Fail("the app did not start under uvicorn (does its lifespan raise?)")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic garbage collection while the block runs. A full collection in a big
    kernel can stop every thread for most of a second (read as a blocked event loop), and
    it would free what a leaked object holds before the check has counted it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
