"""``check()``: the verdict a learner sees in the notebook, and that grading compares.

Checkers live in ``prodready._checks.<module slug>``, one function per exercise id,
registered with ``@checker(id)``. A checker calls the learner's code, raises ``Fail``
with a teaching message when the behaviour is wrong, and returns a fixed one-line
summary when it is right. The printed line depends only on the verdict, never on how
the answer was written, so any correct answer matches the solution's stored output.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import io
import os
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any, TypeVar

from ._catalogue import CatalogueError
from ._course import Course, CourseNotFound, find_course_root
from ._progress import ProgressStore

GRADING_ENV = "PRODREADY_GRADING"  # set by the grader: results are reported, not recorded
FIRST_KERNEL_ENV = "PRODREADY_FIRST_KERNEL"  # set by the grader: the first notebook's folder
Checker = Callable[..., str] | Callable[..., Awaitable[str]]
F = TypeVar("F", bound=Checker)

_REGISTRY: dict[str, Checker] = {}
_SHOWN_OUTPUT_LINES = 15


class Fail(Exception):
    """Raised inside a checker: the learner's code misbehaves. The message teaches."""


class ExerciseFailed(AssertionError):
    """What the learner sees when a check does not pass.

    ``str()`` is the verdict for grading and the CLI: the exercise id, the teaching
    message, and what the learner's code printed. In a notebook the exception is shown
    without a traceback (see ``_display``): the course's internals are not the lesson.
    """

    def __init__(self, exercise_id: str, message: str, printed: str = "") -> None:
        self.exercise_id = exercise_id
        self.message = message
        self.printed = printed
        super().__init__(f"{exercise_id}: {message}{_printed_block(printed)}")

    def render(self) -> str:
        """The failure as a learner reads it in a notebook: short lines, no internals."""
        from ._display import render_failure

        return render_failure(self.exercise_id, self.message, self.printed)


def checker(exercise_id: str) -> Callable[[F], F]:
    def register(fn: F) -> F:
        _REGISTRY[exercise_id] = fn
        return fn

    return register


def expect(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Fail(message)


def find_checker(exercise_id: str) -> Checker:
    slug = exercise_id.partition(".")[0]
    try:
        importlib.import_module(f"prodready._checks.{slug}")
    except ModuleNotFoundError as e:
        if e.name != f"prodready._checks.{slug}":
            raise
    try:
        return _REGISTRY[exercise_id]
    except KeyError:
        raise KeyError(f"no check is registered for exercise {exercise_id!r}") from None


def registered_ids(slug: str) -> set[str]:
    importlib.import_module(f"prodready._checks.{slug}")
    return {ex for ex in _REGISTRY if ex.startswith(f"{slug}.")}


def check(exercise_id: str, *args: Any, **kwargs: Any) -> None:
    """Check an exercise; print one line if it passes, raise ``ExerciseFailed`` if not."""
    fn = find_checker(exercise_id)
    if inspect.iscoroutinefunction(fn):
        raise TypeError(f"{exercise_id} is checked with `await check_async(...)`")
    _conclude(exercise_id, *_run_captured(lambda: fn(*args, **kwargs)))


async def check_async(exercise_id: str, *args: Any, **kwargs: Any) -> None:
    """``check()`` for exercises whose code runs on the notebook's event loop."""
    fn = find_checker(exercise_id)
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"{exercise_id} is checked with `check(...)`, without await")
    buffer = io.StringIO()
    with _captured(buffer):
        summary, failure = await _outcome_async(fn(*args, **kwargs))
    _conclude(exercise_id, summary, failure, buffer.getvalue())


@contextmanager
def _captured(buffer: io.StringIO) -> Iterator[None]:
    """Hide the learner's prints and warnings during a check: the verdict line must be
    the only output, and a stray warning must never fail anyone."""
    with redirect_stdout(buffer), redirect_stderr(buffer), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _run_captured(call: Callable[[], Any]) -> tuple[str | None, str | None, str]:
    buffer = io.StringIO()
    with _captured(buffer):
        try:
            summary, failure = str(call()), None
        except Fail as e:
            summary, failure = None, str(e)
        except Exception as e:
            summary, failure = None, _raised(e)
    return summary, failure, buffer.getvalue()


async def _outcome_async(awaitable: Awaitable[str]) -> tuple[str | None, str | None]:
    try:
        return str(await awaitable), None
    except Fail as e:
        return None, str(e)
    except Exception as e:
        return None, _raised(e)


def _raised(e: BaseException) -> str:
    detail = f": {e}" if str(e) else " (with no message)"
    return f"your code raised {type(e).__name__}{detail}"


def _printed_block(printed: str) -> str:
    """What the learner's code printed during a check, at most a screenful."""
    if not printed.strip():
        return ""
    lines = printed.rstrip().splitlines()
    shown = "\n    ".join(lines[:_SHOWN_OUTPUT_LINES])
    more = len(lines) - _SHOWN_OUTPUT_LINES
    tail = f"\n    … {more} more lines" if more > 0 else ""
    return f"\nWhile checking, your code printed:\n    {shown}{tail}"


def _conclude(exercise_id: str, summary: str | None, failure: str | None, printed: str) -> None:
    _record(exercise_id, passed=failure is None)
    if failure is not None:
        from ._display import show_failures_without_traceback

        show_failures_without_traceback()
        raise ExerciseFailed(exercise_id, failure, printed) from None
    print(f"✅ {exercise_id}: passed. {summary}")


def _record(exercise_id: str, *, passed: bool) -> None:
    if os.environ.get(GRADING_ENV):
        return
    # A check outside a course folder (or with its catalogue mid-edit) still gives its
    # verdict; it just is not recorded.
    with contextlib.suppress(CourseNotFound, CatalogueError, OSError):
        ProgressStore(Course(find_course_root()).state).record_result(exercise_id, passed)


def run_in_fresh_loop(awaitable_factory: Callable[[], Awaitable[Any]]) -> Any:
    """Run async code from a sync checker, even inside a kernel's running loop."""
    import concurrent.futures

    async def main() -> Any:
        return await awaitable_factory()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()
