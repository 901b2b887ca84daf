"""The readiness report: the requirements in order, each judged on its run, as a table.

``python -m prodready._checks.capstone report [FOLDER]`` prints it (``FOLDER`` defaults to
``10_capstone`` in the current folder, else the course's ``exercises/10_capstone``); the
workbook's check cells judge the same requirements, one stage at a time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import _verdicts as v
from ._run import evidence_for

REQUIREMENTS: tuple[v.Requirement, ...] = (
    v.Requirement(
        "capstone.latency",
        "load",
        f"While the provider is slow and sometimes hangs, /health answers within "
        f"{v.HEALTH_P99_S:g} s and every order attempt within {v.ORDER_P99_S:g} s (p99)",
        "/health and orders stay within their bounds while the provider is slow.",
        v.judge_latency,
    ),
    v.Requirement(
        "capstone.errors",
        "load",
        "No 5xx of the service's own; a bad request gets a 4xx and is never stored; every "
        "order goes through within a few attempts",
        "no 5xx of its own; bad requests get a 4xx and are never stored; every order goes through.",
        v.judge_errors,
    ),
    v.Requirement(
        "capstone.orders",
        "load",
        "An order acknowledged with 201 is stored exactly once, with the right total, and "
        "charged exactly once, although clients retry and the provider fails, lies and hangs",
        "every acknowledged order is stored once, with the right total, and charged once.",
        v.judge_orders,
    ),
    v.Requirement(
        "capstone.login",
        "load",
        f"Guessing is locked out: after {v.LOCKOUT_ATTEMPTS} failures an account answers 429, "
        "however many guesses arrive at once, and other accounts log in as usual",
        "brute force is locked out per account, under concurrent guesses too.",
        v.judge_login,
    ),
    v.Requirement(
        "capstone.logs",
        "load",
        "Every log line is a JSON object; the lines of a request, uvicorn's access line "
        "included, carry its request id; no secret appears in the logs",
        "every log line is JSON with the right request id, and no secret is logged.",
        v.judge_logs,
    ),
    v.Requirement(
        "capstone.export",
        "export",
        f"A large export keeps the process's memory flat (at most "
        f"+{v.MEMORY_GROWTH_BYTES // 1_000_000} MB) and /health answering",
        "the large export streams in flat memory while /health keeps answering.",
        v.judge_export,
    ),
    v.Requirement(
        "capstone.receipts",
        "receipts",
        "Every paid order gets exactly one receipt, although the job runner is killed "
        "mid-send and the mail service fails now and then",
        "every paid order gets exactly one receipt, crash and retries included.",
        v.judge_receipts,
    ),
)
BY_ID = {r.exercise: r for r in REQUIREMENTS}


@dataclass
class Line:
    requirement: v.Requirement
    outcome: v.Outcome


def judge(exercise: str, folder: str | os.PathLike[str]) -> v.Outcome:
    requirement = BY_ID[exercise]
    return requirement.judge(evidence_for(folder, requirement.kind))


def default_folder() -> Path:
    here = Path("10_capstone")
    if here.is_dir():
        return here
    from ..._course import find_course_root

    return find_course_root() / "exercises" / "10_capstone"


_ABOUT = {
    "load": "the load: a hundred clients at once against a slow, flaky provider",
    "export": "the large export",
    "receipts": "the receipts, with a crash of the job runner",
}


def report(
    folder: str | os.PathLike[str],
    *,
    tests: bool = True,
    progress: Callable[[str], None] | None = None,
) -> tuple[str, bool]:
    """The whole report as text (every requirement, its verdict and its figures), and
    whether every requirement is met. ``progress`` hears about each run before it starts."""
    started = time.monotonic()
    lines, announced = [], set()
    for requirement in REQUIREMENTS:
        if progress and requirement.kind not in announced:
            announced.add(requirement.kind)
            progress(f"running {_ABOUT[requirement.kind]}...")
        lines.append(Line(requirement, judge(requirement.exercise, folder)))
    if tests:
        from ._suite import judge_suite

        if progress:
            progress("running the service's tests, as they are and under planted regressions...")
        lines.append(Line(SUITE, judge_suite(folder)))
    out = [f"Production-readiness report for {folder}", ""]
    for line in lines:
        mark = "PASS" if line.outcome.ok else "FAIL"
        out.append(f"{mark}  {line.requirement.exercise:<18} {line.outcome.figures}")
        out.append(f"      {line.requirement.title}")
        for problem in line.outcome.problems:
            out.append(f"      - {problem}")
    passed = sum(line.outcome.ok for line in lines)
    out += ["", f"{passed} of {len(lines)} requirements met ({time.monotonic() - started:.0f} s)"]
    return "\n".join(out), passed == len(lines)


SUITE = v.Requirement(
    "capstone.tests",
    "load",
    "The service's own tests pass, and each planted regression makes at least one of them fail",
    "your tests pass on your service and catch every planted regression.",
    lambda ev: v.Outcome(False, ""),
)
