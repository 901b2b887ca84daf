from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from prodready._catalogue import load_catalogue
from prodready._course import Course

REPO = Path(__file__).resolve().parents[1]
# The fixture course's notebooks are test data: `make test` runs nbval over tests/ too.
collect_ignore = ["fixture_course"]
# The real-browser test of the learner's loop runs on its own: `make browser-test`.
BROWSER_TEST = "PRODREADY_BROWSER_TEST"
if not os.environ.get(BROWSER_TEST):
    collect_ignore.append("browser")
FIXTURE_COURSE = Path(__file__).with_name("fixture_course")


@pytest.fixture(scope="session")
def course() -> Course:
    """The real course in this repository."""
    return Course(REPO, load_catalogue())


@pytest.fixture
def fixture_course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Course:
    """A private copy of the four-exercise fixture course, with its own state folder."""
    root = tmp_path / "course"
    shutil.copytree(FIXTURE_COURSE, root)
    monkeypatch.setenv("PRODREADY_STATE", str(tmp_path / "state"))
    return Course(root, load_catalogue(root / "catalogue.toml"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get(BROWSER_TEST):
        return
    found = [shutil.which(name) for name in ("/usr/bin/chromium", "chromium", "chromium-browser")]
    chromium = next((p for p in found if p), None)
    terminalreporter.write_line(
        "browser test (JupyterLab in headless Chromium): run separately, `make browser-test`"
        + (f" (Chromium: {chromium})" if chromium else " (no Chromium here, so it will not run)")
    )
