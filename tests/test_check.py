"""check(): one stable line on success, a teaching exception on failure, progress kept."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest

from prodready import ExerciseFailed, check, check_async
from prodready._check import checker, expect, find_checker
from prodready._course import Course


@checker("unittest.double")
def _check_double(double: object) -> str:
    assert callable(double)
    expect(double(2) == 4, f"double(2) returned {double(2)!r}, expected 4")
    return "doubles numbers"


@checker("unittest.async_double")
async def _check_async_double(double: object) -> str:
    assert callable(double)
    expect(await double(2) == 4, "double(2) should be 4")
    return "doubles numbers, asynchronously"


def noisy_double(x: int) -> int:
    print("computing", x)
    print("stderr noise", file=sys.stderr)
    warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    return 2 * x


@pytest.fixture(autouse=True)
def in_a_course(fixture_course: Course, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(fixture_course.root)
    monkeypatch.delenv("PRODREADY_GRADING", raising=False)


def progress(tmp_path: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(
        (tmp_path / "state" / "progress.json").read_text(encoding="utf-8")
    )
    return data


def test_a_pass_prints_exactly_one_line_however_noisy_the_answer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    check("unittest.double", noisy_double)
    out, err = capsys.readouterr()
    assert out == "✅ unittest.double: passed. doubles numbers\n" and err == ""
    assert progress(tmp_path)["unittest.double"]["passed"] is True


def test_a_failure_teaches_shows_what_was_printed_and_is_recorded(tmp_path: Path) -> None:
    def wrong(x: int) -> int:
        print("trying", x)
        return x + 1

    with pytest.raises(ExerciseFailed) as failure:
        check("unittest.double", wrong)
    message = str(failure.value)
    assert message.startswith("unittest.double: double(2) returned 3, expected 4")
    assert "your code printed:\n    trying 2" in message
    shown = failure.value.render()
    assert 'hint("unittest.double")' in shown and "Traceback" not in shown
    assert progress(tmp_path)["unittest.double"]["passed"] is False


def test_an_exception_from_the_learners_code_becomes_a_verdict() -> None:
    def broken(x: int) -> int:
        raise KeyError("pct")

    with pytest.raises(ExerciseFailed, match="your code raised KeyError: 'pct'"):
        check("unittest.double", broken)


def test_grading_mode_reports_without_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRODREADY_GRADING", "1")
    check("unittest.double", noisy_double)
    assert not (tmp_path / "state" / "progress.json").exists()


def test_async_checkers_run_on_the_callers_loop(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    async def double(x: int) -> int:
        return 2 * x

    asyncio.run(check_async("unittest.async_double", double))
    assert capsys.readouterr().out.startswith("✅ unittest.async_double: passed.")
    with pytest.raises(TypeError, match=r"await check_async\(\.\.\.\)"):
        check("unittest.async_double", double)


def test_unknown_exercises_are_named() -> None:
    with pytest.raises(KeyError, match=r"no check is registered for exercise 'unittest\.nope'"):
        find_checker("unittest.nope")
