"""The service's own tests, run by the readiness report: on the service as it is (they
must pass), then under each planted regression (``_regressions``: each must make at least
one test fail). One pytest process runs them all, in a scratch copy of the folder whose
``tests/conftest.py`` is the course's."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ._regressions import REGRESSIONS, RESULTS_ENV
from ._run import Process, copy_service, digest, resolve
from ._verdicts import Outcome

SUITE_S = 90.0  # the whole suite, five times over
CONFTEST = '''"""The course's fixtures for the shop's tests: service, client, account, provider,
mailbox, logs and run_worker (their documentation: `prodready._checks.capstone.conftest_course`).
This file belongs to the course: the readiness report runs your tests with its own copy."""

from prodready._checks.capstone.conftest_course import *  # noqa: F403
'''
_SUITES: dict[str, Outcome] = {}


def judge_suite(folder: str | os.PathLike[str]) -> Outcome:
    path = resolve(folder)
    key = digest(path)
    if key not in _SUITES:
        if len(_SUITES) >= 6:
            _SUITES.pop(next(iter(_SUITES)))
        _SUITES[key] = _run_suite(path)
    return _SUITES[key]


def _run_suite(folder: Path) -> Outcome:
    scratch = Path(tempfile.mkdtemp(prefix="prodready-capstone-tests-"))
    try:
        service = scratch / "service"
        copy_service(folder, service)
        tests = service / "tests"
        if not tests.is_dir():
            return Outcome(False, "no tests", ["There is no tests/ folder in the service."])
        (tests / "conftest.py").write_text(CONFTEST, encoding="utf-8")
        (scratch / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        results = scratch / "results.jsonl"
        env = {
            RESULTS_ENV: str(results), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # nbval and friends: seconds of imports
        }  # fmt: skip
        for name in [k for k in os.environ if k.startswith("SHOP_")]:
            env[name] = ""  # the tests' settings come from the fixtures, not from this shell
        args = [
            "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "-p",
            "prodready._checks.capstone._regressions", "-c", str(scratch / "pytest.ini"),
            "--rootdir", str(service), "-o", "pythonpath=.", "--tb=short", "-W", "ignore",
        ]  # fmt: skip
        started = time.monotonic()
        pytest_run = Process("tests", args, service, env, scratch)
        code = pytest_run.wait(SUITE_S)
        if code is None:
            pytest_run.kill()
            pytest_run.stop()
            return Outcome(
                False, "still running",
                [f"Your tests were still running after {SUITE_S:g} s (they run five times: on "
                 "your service, then under each planted regression). A test that waits for "
                 "something that never comes needs a timeout."],
            )  # fmt: skip
        pytest_run.stop()
        seconds = time.monotonic() - started
        out, err = pytest_run.output()
        entries = []
        if results.exists():
            entries = [
                json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()
            ]
        return _judge(entries, code, out + err, seconds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _judge(entries: list[dict[str, object]], code: int, output: str, seconds: float) -> Outcome:
    as_is = [e for e in entries if e["regression"] == "none"]
    if not as_is:
        tail = "\n    ".join(output.strip().splitlines()[-6:])
        why = "no test was collected" if code == 5 else f"pytest stopped (exit code {code})"
        return Outcome(False, "no tests ran", [f"Your tests did not run: {why}:\n    {tail}"])
    problems = []
    failing = [e for e in as_is if not e["passed"]]
    if failing:
        shown = "; ".join(f"{e['test']}: {e['error']}" for e in failing[:3])
        problems.append(
            f"{len(failing)} of your {len(as_is)} tests fail on your own service ({shown}). "
            "A suite that is red on good code is a suite nobody reads."
        )
    caught = {
        name: [e for e in entries if e["regression"] == name and not e["passed"]]
        for name in REGRESSIONS
    }
    missed = [name for name, failed in caught.items() if not failed]
    if missed and not failing:
        listed = "; ".join(f"{REGRESSIONS[name]}" for name in missed)
        problems.append(
            f"{len(missed)} of the {len(REGRESSIONS)} planted regressions pass all your tests, "
            f"so they would ship: {listed}. Which requirement does each one break, and which "
            "test would notice? (Module 08, tests that catch real bugs.)"
        )
    figures = (
        f"{len(as_is)} tests, {len(as_is) - len(failing)} pass; "
        f"{len(REGRESSIONS) - len(missed)}/{len(REGRESSIONS)} regressions caught ({seconds:.0f} s)"
    )
    return Outcome(not problems, figures, problems)
