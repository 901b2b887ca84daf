"""The capstone's fork server: each child behaves as a fresh `python -m prodready._child`
would (its own folder, environment, arguments, output and random numbers), its exit is
reported as `Popen` reports one, and nothing outlives the checker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prodready._checks.capstone import _forks
from prodready._child import command

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")

SCRIPT = """
import json, os, random, sys
print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "argv": sys.argv[1:],
                  "env": os.environ.get("FORKS_TEST"), "random": random.random(),
                  "path0": sys.path[0], "main": __name__}))
print("to stderr", file=sys.stderr)
if sys.argv[1:] == ["fail"]:
    raise SystemExit(3)
if sys.argv[1:] == ["crash"]:
    raise RuntimeError("boom")
if sys.argv[1:] == ["hang"]:
    import time
    time.sleep(60)
"""


def _start(
    server: _forks.ForkServer, tmp: Path, name: str, *args: str,
    timeout: float = _forks.START_TIMEOUT_S,
) -> tuple[_forks.Child, Path]:  # fmt: skip
    folder = tmp / name
    folder.mkdir()
    (folder / "script.py").write_text(SCRIPT, encoding="utf-8")
    argv, env = command(["script.py", *args])
    env["FORKS_TEST"] = name
    out, err = folder / "out", folder / "err"
    return server.spawn(argv[3:], str(folder), env, str(out), str(err), timeout), folder


@pytest.fixture
def server() -> Iterator[_forks.ForkServer]:
    started = _forks.ForkServer()
    yield started
    started.close()


def test_each_child_runs_in_its_own_folder_with_its_own_environment_and_output(
    server: _forks.ForkServer, tmp_path: Path
) -> None:
    first, first_dir = _start(server, tmp_path, "one", "a", "b")
    second, second_dir = _start(server, tmp_path, "two")
    assert first.wait(20) == 0 and second.wait(20) == 0
    one = json.loads((first_dir / "out").read_text())
    two = json.loads((second_dir / "out").read_text())
    assert one["cwd"] == str(first_dir) and one["path0"] == str(first_dir)
    assert one["argv"] == ["a", "b"] and two["argv"] == []
    assert (one["env"], two["env"]) == ("one", "two")
    assert one["main"] == "__main__"
    assert one["random"] != two["random"], "children must not share the server's random state"
    assert (first_dir / "err").read_text() == "to stderr\n"


def test_exit_codes_are_reported_as_popen_reports_them(
    server: _forks.ForkServer, tmp_path: Path
) -> None:
    failed, _ = _start(server, tmp_path, "fail", "fail")
    crashed, crash_dir = _start(server, tmp_path, "crash", "crash")
    hung, _ = _start(server, tmp_path, "hang", "hang")
    assert failed.wait(20) == 3
    assert crashed.wait(20) == 1
    assert "RuntimeError: boom" in (crash_dir / "err").read_text()
    with pytest.raises(subprocess.TimeoutExpired):
        hung.wait(0.2)
    assert hung.poll() is None
    hung.terminate()
    assert hung.wait(20) == -signal.SIGTERM


def test_children_do_not_outlive_the_checker(tmp_path: Path) -> None:
    """The checker's end of the pipe closes (it exited, or was killed): the server kills
    what is still running and exits."""
    server = _forks.ForkServer()
    hung, _ = _start(server, tmp_path, "hang", "hang")
    assert hung.poll() is None
    server._commands.close()  # as the checker's death would
    server._proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _forks._exists(hung.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _forks._exists(hung.pid)
    assert hung.wait(5) == -signal.SIGKILL


def test_a_start_answered_too_late_is_never_taken_for_a_later_one(tmp_path: Path) -> None:
    """The first start waits for the server's imports. If the checker stops waiting, the late
    answer must not become the next start's (it did: every later process then had the one
    before it's pid and exit code), and the child nobody watches is killed."""
    server = _forks.ForkServer()
    try:
        with pytest.raises(OSError, match="did not answer"):
            _start(server, tmp_path, "late", "hang", timeout=0.001)  # the imports take longer
        assert not server.responsive, "after an unanswered start, start() must not wait again"
        following, following_dir = _start(server, tmp_path, "following", "fail")
        assert following.wait(30) == 3
        assert json.loads((following_dir / "out").read_text())["env"] == "following"
        assert following.pid == json.loads((following_dir / "out").read_text())["pid"]
        late_out = tmp_path / "late" / "out"
        if late_out.read_text():  # it ran for a moment before it was killed
            late = json.loads(late_out.read_text())["pid"]
            deadline = time.monotonic() + 10
            while _forks._exists(late) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _forks._exists(late), "a child whose start came too late must be killed"
    finally:
        server.close()


def test_start_falls_back_to_an_ordinary_process_without_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "fork")
    (tmp_path / "script.py").write_text(SCRIPT, encoding="utf-8")
    argv, env = command(["script.py", "fail"])
    with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
        child = _forks.start(argv, str(tmp_path), env, out, err)
    assert isinstance(child, subprocess.Popen)
    assert child.wait(20) == 3
    assert json.loads((tmp_path / "out").read_text())["argv"] == ["fail"]
    assert sys.executable == child.args[0]
