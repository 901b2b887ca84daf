"""The CLI only translates arguments; these tests drive it on the fixture course."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prodready import _cli
from prodready._course import Course
from prodready._notebooks import read_notebook, write_notebook


@pytest.fixture(autouse=True)
def cli_course(fixture_course: Course, monkeypatch: pytest.MonkeyPatch) -> Course:
    monkeypatch.setattr(_cli.Course, "discover", classmethod(lambda cls: fixture_course))
    return fixture_course


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = _cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_prints_a_table_keyed_by_exercise_id_and_exits_1_on_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "check", "01", "--timeout", "10")
    assert code == 1
    assert "01_fixture: 0/3 passed" in out
    assert "✗ fixture.add    add(2, 3) returned -1, expected 5" in out
    assert "hint: prodready hint fixture.add" in out


def test_check_of_a_solved_workbook_exits_0_and_records_progress(
    capsys: pytest.CaptureFixture[str], cli_course: Course
) -> None:
    module = cli_course.catalogue.module("01")
    write_notebook(read_notebook(cli_course.solution(module)), cli_course.workbook(module))
    code, out, _ = run(capsys, "check", "fixture.greet")
    assert code == 0 and "✓ fixture.greet" in out and "fixture.add" not in out
    code, out, _ = run(capsys, "progress")
    assert code == 0 and "3/3 exercises passed" in out


def test_hint_reset_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hint", "fixture.add")
    assert code == 0 and out.startswith("Hint 1/2 for fixture.add:\nLook at the operator.")
    code, out, _ = run(capsys, "reset", "fixture.add")
    assert code == 0 and "Restored the starting code of fixture.add" in out
    code, _, err = run(capsys, "hint", "fixture.nope")
    assert code == 2 and "no exercise 'fixture.nope'" in err
    code, _, err = run(capsys, "check", "42")
    assert code == 2 and "no module '42'" in err


def test_data_lists_the_generated_data_sets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "list")
    assert code == 0 and out.startswith("access_log ") and "orders" in out


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # `prodready progress | head -1`: the reader is gone before the output is written.
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "PRODREADY_STATE": str(tmp_path)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "prodready", "progress"],
            stdout=write_end, stderr=subprocess.PIPE, env=env, text=True, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and done.returncode == 0
