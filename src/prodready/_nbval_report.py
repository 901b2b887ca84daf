"""A pytest plugin loaded into the grader's nbval run: one JSON line per notebook cell.

Lines are written as cells finish, so a run stopped midway still reports what ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty
from typing import Any, TextIO

import pytest

from ._check import FIRST_KERNEL_ENV

# jsonschema, under nbval's nbformat, imports rfc3987_syntax when it is installed (Jupyter's
# event system pulls it in) to check "iri" formats, and that import builds a grammar: a second
# of CPU in every grading run. nbformat never checks formats. -p plugins load before nbval, so
# a None entry here makes that optional import fail fast, in the grader's test run only.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_sink: TextIO | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--prodready-report", help="file for per-cell JSON lines")
    parser.addoption(
        "--prodready-learner-timeout",
        type=float,
        help="per-cell timeout for answer and check cells (learner code); other cells, the "
        "course's own, keep nbval's --nbval-cell-timeout",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """nbval has one timeout for every cell; the learner's code gets a tighter one."""
    learner_timeout = item.config.getoption("--prodready-learner-timeout")
    cell = getattr(item, "cell", None)
    role = cell.metadata.get("prodready", {}).get("role") if cell is not None else None
    if learner_timeout is None or role is None:
        yield
        return
    course_timeout = item.config.option.nbval_cell_timeout
    item.config.option.nbval_cell_timeout = learner_timeout
    try:
        yield
    finally:
        item.config.option.nbval_cell_timeout = course_timeout


def pytest_configure(config: pytest.Config) -> None:
    global _sink
    if path := config.getoption("--prodready-report"):
        _sink = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives for the session)


def pytest_collection_finish(session: pytest.Session) -> None:
    """nbval has read every graded notebook into memory: remove them from disk before any
    kernel starts, so no learner code can read the expected outputs from a file. And
    start each notebook's kernel while the one before it runs."""
    if _sink is None:
        return
    use_ipc_kernels()
    folders: dict[str, str] = {}  # notebook folder -> the code that warms its kernel up
    for item in session.items:
        folder = str(item.path.parent)
        if item.path.suffix == ".ipynb" and folder not in folders:
            folders[folder] = _warm_up(getattr(item.parent, "nb", None))
    for item in session.items:
        item.path.unlink(missing_ok=True)
    _Kernels.install(folders)


def _warm_up(nb: Any) -> str:
    """Imports a notebook's checks will need anyway (the checker module and its stack),
    run in its kernel before the notebook starts. Only course code: the seal comes next."""
    slugs = set()
    for cell in getattr(nb, "cells", []):
        meta = cell.get("metadata", {}).get("prodready", {})
        if isinstance(meta, dict) and isinstance(meta.get("exercise"), str):
            slugs.add(meta["exercise"].partition(".")[0])
    modules = ["prodready", *(f"prodready._checks.{slug}" for slug in sorted(slugs))]
    return "".join(f"try:\n    import {name}\nexcept Exception:\n    pass\n" for name in modules)


def use_ipc_kernels() -> None:
    """Start nbval's kernels on Unix-domain sockets instead of TCP ports. jupyter_client
    picks TCP ports by binding and releasing them, so kernels started at the same moment
    can be handed the same port and die ("Kernel died before replying to kernel_info",
    jupyter/jupyter_client#154); a socket file of its own per kernel cannot clash."""
    if sys.platform == "win32":
        return
    import tempfile
    import uuid

    import nbval.kernel  # type: ignore[import-untyped]
    from jupyter_client.manager import KernelManager

    def start_new_kernel(
        startup_timeout: float = 60, kernel_name: str = "python", **kwargs: Any
    ) -> tuple[KernelManager, Any]:
        prefix = f"{tempfile.gettempdir()}/prk-{uuid.uuid4().hex[:12]}"
        km = KernelManager(
            kernel_name=kernel_name,
            kernel_spec_manager=nbval.kernel.NbvalKernelspecManager(),
            transport="ipc",
            ip=prefix,
        )
        km.start_kernel(**kwargs)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=startup_timeout)
        except RuntimeError:
            kc.stop_channels()
            km.shutdown_kernel()
            raise
        return km, kc

    nbval.kernel.start_new_kernel = start_new_kernel


def _start_first_kernel() -> tuple[str, Future[Any]] | None:
    """The first notebook's kernel, started as this plugin loads (pytest loads it with -p,
    before it imports nbval and collects): the kernel boots in a process of its own
    meanwhile, about a second of every grading run. It runs no code until its notebook
    starts, after collection has removed the graded notebooks from disk."""
    folder = os.environ.pop(FIRST_KERNEL_ENV, "")  # kernels need not see it
    if not folder:
        return None
    started: Future[Any] = Future()

    def start() -> None:
        try:
            import nbval.kernel

            use_ipc_kernels()
            started.set_result(
                nbval.kernel.RunningKernel(nbval.kernel.CURRENT_ENV_KERNEL_NAME, cwd=folder)
            )
        except BaseException as e:  # the notebook then starts its kernel as usual
            started.set_exception(e)

    threading.Thread(target=start, name="prodready-first-kernel", daemon=True).start()
    return folder, started


class _Kernels:
    """Each notebook's kernel, started while the notebook before it runs (the first one
    while pytest starts), and stopped in the background: a kernel's start and stop are a
    large part of a short notebook's time."""

    current: _Kernels | None = None

    def __init__(self, folders: dict[str, str], start: Any) -> None:
        self.folders, self.start = folders, start
        self.order = list(folders)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prodready-kernels")
        self.ready: dict[str, Future[Any]] = {}
        self.stopping: list[Future[Any]] = []
        self.unused: list[Future[Any]] = []

    @classmethod
    def install(cls, folders: dict[str, str]) -> None:
        import nbval.plugin  # type: ignore[import-untyped]

        cls.current = kernels = cls(folders, nbval.plugin.RunningKernel)
        nbval.plugin.RunningKernel = kernels.kernel
        if _first_kernel is not None:
            folder, started = _first_kernel
            first = kernels.order[0] if kernels.order else None
            if first is not None and os.path.realpath(first) == os.path.realpath(folder):
                kernels.ready[first] = kernels.pool.submit(kernels.warm, started, first)
            else:
                kernels.unused.append(started)

    def kernel(self, kernel_name: str, cwd: str | None = None, startup_timeout: int = 60) -> Any:
        kernel = None
        if cwd in self.ready:
            with contextlib.suppress(Exception):  # it failed to start: start one now
                kernel = self.ready.pop(cwd).result()
        if kernel is None:
            kernel = self.start(kernel_name, cwd=cwd, startup_timeout=startup_timeout)
        if cwd in self.folders:
            later = self.order[self.order.index(cwd) + 1 :]
            if later:
                self.ready[later[0]] = self.pool.submit(
                    self.started_and_warm, kernel_name, later[0], startup_timeout
                )

        def stop_in_background() -> None:
            kernel.kc.stop_channels()
            self.stopping.append(self.pool.submit(kernel.km.shutdown_kernel, now=True))

        kernel.stop = stop_in_background
        kernel.await_reply = _noticing_death(kernel, kernel.await_reply)
        return kernel

    def started_and_warm(self, kernel_name: str, cwd: str, startup_timeout: int) -> Any:
        kernel = self.start(kernel_name, cwd=cwd, startup_timeout=startup_timeout)
        return self.warmed_up(kernel, cwd)

    def warm(self, started: Future[Any], cwd: str) -> Any:
        return self.warmed_up(started.result(), cwd)

    def warmed_up(self, kernel: Any, cwd: str) -> Any:
        warm_up = self.folders.get(cwd, "")
        if warm_up:
            with contextlib.suppress(Exception):  # a cold kernel still works
                msg_id = kernel.execute_cell_input(warm_up, allow_stdin=False)
                kernel.await_reply(msg_id, timeout=120)
                kernel.await_idle(msg_id, 30)
        return kernel

    def close(self) -> None:
        for future in [*self.ready.values(), *self.unused]:
            with contextlib.suppress(Exception):
                future.result().stop()
        for future in [*self.stopping]:
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        self.pool.shutdown(wait=True)


def _noticing_death(kernel: Any, await_reply: Any) -> Any:
    """nbval waits for a cell's reply for the whole time limit, even from a kernel that
    has died (``os._exit()``, a crash): look every second whether it is still alive, and
    give up at once when it is not. nbval then reports it as it reports a timeout, and the
    kernel's death is what the learner is told."""

    def await_reply_or_death(msg_id: str, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if step <= 0:
                raise Empty
            try:
                return await_reply(msg_id, timeout=step)
            except Empty:
                if not kernel.is_alive():
                    raise

    return await_reply_or_death


_first_kernel = _start_first_kernel()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _Kernels.current is not None:
        _Kernels.current.close()
    elif _first_kernel is not None:  # the run ended before collection: nothing adopted it
        with contextlib.suppress(Exception):
            _first_kernel[1].result(timeout=60).stop()
    if _sink is not None:
        _sink.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    cell = getattr(item, "cell_num", None)
    if _sink is None or cell is None:
        return
    if report.when == "setup" and report.passed:
        return
    if report.when == "teardown":
        return
    kernel = getattr(item.parent, "kernel", None)
    line: dict[str, Any] = {
        "notebook": item.path.parent.name,  # the grader puts each notebook in a folder
        "cell": cell,
        "outcome": _outcome(report),
        "seconds": round(report.duration, 3),
        "kernel_alive": bool(kernel is not None and kernel.is_alive()),
    }
    if call.excinfo is not None:
        error = call.excinfo.value
        line["reason"] = _ANSI.sub("", str(error.args[0] if error.args else error))
    for out in getattr(item, "test_outputs", None) or []:
        if out.get("output_type") == "error":
            line["ename"], line["evalue"] = out.get("ename", ""), _ANSI.sub("", out["evalue"])
    diff = getattr(item, "comparison_traceback", None)
    if diff and line.get("reason") == "Cell outputs differ":
        line["diff"] = _ANSI.sub("", "\n".join(map(str, diff)))[-2000:]
    _sink.write(json.dumps(line) + "\n")
    _sink.flush()


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        # nbval marks every cell after a timeout as xfail but still runs it; a cell
        # that then matches its reference passed, one that does not failed.
        return "passed" if report.passed else "failed"
    return "passed" if report.passed else "skipped" if report.skipped else "failed"
