"""Print the browser test's steps with their timings, and where its screenshots are."""

from __future__ import annotations

from typing import Any

from jupyterlab_driver import ARTIFACTS, STEPS, format_steps


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not STEPS:
        return
    terminalreporter.section("the learner's loop in JupyterLab: steps")
    for line in format_steps(STEPS):
        terminalreporter.write_line(line)
    for folder in ARTIFACTS:
        terminalreporter.write_line(f"artifacts (screenshots, server log): {folder}")
