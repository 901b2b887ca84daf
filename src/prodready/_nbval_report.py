"""A pytest plugin loaded into the grader's nbval run: one JSON line per notebook cell.

Lines are written as cells finish, so a run stopped midway still reports what ran.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Generator
from typing import Any, TextIO

import pytest

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


def pytest_unconfigure(config: pytest.Config) -> None:
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
