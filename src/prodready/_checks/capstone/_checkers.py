"""One checker per stage of the report. Each takes the service's folder, relative to the
notebook (``"10_capstone"``), judges its stage on a run of those files (made once per
version of the files, and kept), and returns the stage's fixed summary."""

from __future__ import annotations

from ..._check import Fail, checker
from ._report import BY_ID, SUITE, judge


def _stage(exercise: str, folder: object) -> str:
    if not isinstance(folder, str):
        raise Fail(
            f'the check takes the service\'s folder as text, such as "10_capstone"; it got '
            f"{type(folder).__name__}"
        )
    outcome = judge(exercise, folder)
    if not outcome.ok:
        raise Fail("\n".join(outcome.problems))
    return BY_ID[exercise].summary


def _suite(folder: object) -> str:
    from ._suite import judge_suite

    if not isinstance(folder, str):
        raise Fail('the check takes the service\'s folder as text, such as "10_capstone"')
    outcome = judge_suite(folder)
    if not outcome.ok:
        raise Fail("\n".join(outcome.problems))
    return SUITE.summary


def register() -> None:
    for exercise in BY_ID:

        def stage(folder: object, exercise: str = exercise) -> str:
            return _stage(exercise, folder)

        stage.__name__ = exercise.replace(".", "_")
        checker(exercise)(stage)
    checker(SUITE.exercise)(_suite)
