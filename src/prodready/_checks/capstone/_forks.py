"""Start the report's Python processes from a warm parent: a fork server.

A grading of the capstone starts about fourteen Python processes (the service three times,
the seed, the job runner twice and pytest, for the answer and again for the canary), and
each used to spend a second of CPU importing FastAPI, SQLAlchemy, httpx, uvicorn and pytest
before it ran a line of the learner's code: most of a grading's CPU. The fork server is one
process per checker process that imports those libraries once, then forks a child per
command. Only libraries are imported before the fork; the learner's files are imported by
each child, from its own folder. Each child gets its own argument list, working folder,
environment, output files and random seed, and runs through ``prodready._child``, so the
grader's files are out of its reach as before.

Protocol, one JSON line each way: the checker sends ``{"id", "argv", "cwd", "env", "out",
"err"}``; the server answers ``{"id", "started": pid}`` (or ``{"id", "failed": why}``), and
later ``{"id", "exited": returncode}`` (negative: killed by that signal, as ``Popen``).
Every reply names its request, never only a process id: an answer that comes after the
checker stopped waiting (the first one waits for the imports, which on a loaded machine
can take many seconds) is not taken for the answer to a later request, and a process id
the system reuses is not taken for an earlier child's. A child whose start came too late
is killed: nobody is watching it. When the checker goes away (its end of the pipe closes),
the server kills the children that are still running and exits. Where ``fork`` does not
exist (Windows), or the server cannot start or answer, processes start the ordinary way
(``subprocess.Popen``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

# What the shop and its tests import that costs time: loaded once, before any fork.
WARM = (
    "fastapi", "fastapi.responses", "fastapi.testclient", "starlette.middleware",
    "pydantic", "pydantic_settings", "sqlalchemy", "sqlalchemy.orm", "sqlalchemy.dialects.sqlite",
    "httpx", "uvicorn", "uvicorn.config", "uvicorn.server", "uvicorn.main",
    "uvicorn.protocols.http.h11_impl", "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on", "uvicorn.loops.auto", "argon2", "pytest", "_pytest.main",
    "_pytest.python", "_pytest.terminal", "csv", "sqlite3", "cProfile", "logging.config",
)  # fmt: skip


# --- the server (a process of its own) -------------------------------------------------


def _serve() -> None:
    """Read commands on stdin and fork a child for each; report starts and exits on stdout.
    A child leaves this function by raising SystemExit from ``_become``: no ``finally``
    here may run in it."""
    for name in WARM:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    commands, replies = sys.stdin.fileno(), sys.stdout.buffer
    pending = b""
    children: dict[int, int] = {}  # pid: the request that started it
    # An ended child wakes the loop (a byte on `woken`); the interrupt of a terminal or a
    # kernel is for the checker, which stops the children itself.
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.signal(signal.SIGCHLD, lambda number, frame: None)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message).encode() + b"\n")
        replies.flush()

    while True:
        while children:  # report every child that ended
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            reply({"id": children.pop(pid), "exited": os.waitstatus_to_exitcode(status)})
        readable, _, _ = select.select([commands, woken], [], [])
        if woken in readable:
            os.read(woken, 4096)
        if commands not in readable:
            continue
        chunk = os.read(commands, 65536)
        if not chunk:  # the checker is gone: so are its processes
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            spec = json.loads(line)
            try:
                out = os.open(spec["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                err = os.open(spec["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            except OSError as e:
                reply({"id": spec["id"], "failed": f"{type(e).__name__}: {e}"})
                continue
            pid = os.fork()
            if pid == 0:
                _become(spec, out, err)  # raises SystemExit, never returns
            os.close(out)
            os.close(err)
            children[pid] = spec["id"]
            reply({"id": spec["id"], "started": pid})


def _text_stream(fd: int, unbuffered: bool) -> io.TextIOWrapper:
    raw = open(fd, "wb", closefd=False)  # noqa: SIM115  # the process's own, for its life
    return io.TextIOWrapper(
        raw, encoding="utf-8", errors="backslashreplace", line_buffering=True,
        write_through=unbuffered,
    )  # fmt: skip


def _become(spec: dict[str, Any], out: int, err: int) -> None:
    """In the child: the process ``python -m prodready._child *argv`` would have been."""
    import random

    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    signal.set_wakeup_fd(-1)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt, as usual
    os.closerange(3, 65536)  # nothing of the server's: neither its pipes nor its files
    os.chdir(spec["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115  # the process's own
    sys.stdout, sys.stderr = (_text_stream(1, unbuffered), _text_stream(2, unbuffered))
    sys.path[0] = os.getcwd()  # as `python -m` started here would have it
    random.seed()  # the server's state would be every child's
    from ... import _child

    argv = spec["argv"]
    try:
        _child.main(argv)
    except SystemExit:
        raise
    except BaseException:
        import traceback

        traceback.print_exc()
        raise SystemExit(1) from None
    raise SystemExit(0)


# --- the checker's side -----------------------------------------------------------------


class Child:
    """A process started by the fork server, with the part of ``Popen``'s API the report
    uses: ``pid``, ``returncode``, ``poll``, ``wait``, ``terminate``, ``kill``."""

    def __init__(self, server: ForkServer, request: int, pid: int) -> None:
        self._server, self._request, self.pid = server, request, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self._request, self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            code = self._server.wait_for(self._request, self.pid, timeout)
            if code is None:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            self.returncode = code
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:  # once it is reaped, its pid may be another process's
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


# How long a start may take: the first one waits for the server's imports, which take a
# second on an idle machine and can take tens on one that is grading a class.
START_TIMEOUT_S = 60.0


class ForkServer:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "prodready._checks.capstone._forks"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._commands: IO[bytes] = self._proc.stdin
        self._replies: IO[bytes] = self._proc.stdout
        self._lock = threading.Lock()  # one command written at a time
        self._changed = threading.Condition()
        self._next = 0
        self._answers: dict[int, dict[str, Any]] = {}  # request: its start's answer
        self._abandoned: set[int] = set()  # requests whose answer nobody waits for now
        self._exits: dict[int, int] = {}  # request: its child's exit code
        self._gone = False
        self.responsive = True  # False once a start went unanswered: start the ordinary way
        threading.Thread(target=self._listen, name="prodready-forks", daemon=True).start()

    def alive(self) -> bool:
        return self._proc.poll() is None

    def _listen(self) -> None:
        for line in self._replies:
            message = json.loads(line)
            request = int(message["id"])
            with self._changed:
                if "exited" in message:
                    self._exits[request] = int(message["exited"])
                elif request in self._abandoned:  # started too late: nobody watches it
                    self._abandoned.discard(request)
                    if "started" in message:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(message["started"]), signal.SIGKILL)
                else:
                    self._answers[request] = message
                self._changed.notify_all()
        with self._changed:  # the server is gone: nothing more will be reported
            self._gone = True
            self._changed.notify_all()

    def spawn(
        self, argv: list[str], cwd: str, env: dict[str, str], out: str, err: str,
        timeout: float = START_TIMEOUT_S,
    ) -> Child:  # fmt: skip
        with self._lock:
            request, self._next = self._next, self._next + 1
            spec = {"id": request, "argv": argv, "cwd": cwd, "env": env, "out": out, "err": err}
            self._commands.write(json.dumps(spec).encode() + b"\n")
            self._commands.flush()
        with self._changed:
            answered = self._changed.wait_for(
                lambda: request in self._answers or self._gone, timeout=timeout
            )
            answer = self._answers.pop(request, None)
            if answer is None:
                self._abandoned.add(request)
                self.responsive = False
                raise OSError(
                    "the fork server exited" if answered else "the fork server did not answer"
                )
        if "started" not in answer:
            raise OSError(str(answer.get("failed")))
        return Child(self, request, int(answer["started"]))

    def exit_code(self, request: int, pid: int) -> int | None:
        with self._changed:
            if request not in self._exits and self._gone and not _exists(pid):
                self._exits[request] = -signal.SIGKILL  # its parent died: its code is lost
            return self._exits.get(request)

    def wait_for(self, request: int, pid: int, timeout: float | None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._changed:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                step = 0.1 if self._gone else left
                if step is not None and left is not None:
                    step = min(step, left)
                self._changed.wait_for(lambda: request in self._exits, timeout=step)
            code = self.exit_code(request, pid)
            if code is not None or (deadline is not None and time.monotonic() >= deadline):
                return code

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._commands.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_server: ForkServer | None = None
_server_lock = threading.Lock()


def start(
    argv: list[str], cwd: str, env: dict[str, str], out: IO[bytes], err: IO[bytes]
) -> Child | subprocess.Popen[bytes]:
    """The command ``argv`` (from ``prodready._child.command``) in ``cwd``, with exactly
    ``env``, writing to the files ``out`` and ``err`` (open for writing, by name): forked
    from the warm server if it can be, else started the ordinary way."""
    assert argv[1:3] == ["-m", "prodready._child"], argv
    global _server
    if hasattr(os, "fork"):
        with _server_lock:
            if _server is None or not _server.alive():
                try:
                    _server = ForkServer()
                except OSError:
                    _server = None
            server = _server
        if server is not None and server.responsive:
            with contextlib.suppress(OSError):
                return server.spawn(argv[3:], cwd, env, str(out.name), str(err.name))
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
    )


def stop_server() -> None:
    global _server
    with _server_lock:
        if _server is not None:
            _server.close()
            _server = None


if __name__ == "__main__":
    _serve()
