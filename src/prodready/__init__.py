"""prodready: Python backends that survive production.

The helpers a notebook uses. The ``prodready`` command calls the same functions.
Every notebook and every graded kernel imports this package, so it imports only what a
check needs; the grading machinery (nbformat and friends) loads when it is used.
"""

import os
import shutil
import sys
from pathlib import Path

from ._check import ExerciseFailed, check, check_async
from ._course import Course, data_path, scratch_dir

__version__ = "0.1.0"

__all__ = [
    "Course",
    "ExerciseFailed",
    "__version__",
    "check",
    "check_async",
    "data_path",
    "hint",
    "progress",
    "scratch_dir",
    "solution",
]


def hint(exercise_id: str, level: int | None = None) -> None:
    """Show the next hint for an exercise, the same one `prodready hint` gives."""
    from ._display import show_markdown
    from ._learner import hint as next_hint

    found = next_hint(Course.discover(), exercise_id, level)
    show_markdown(found.markdown(), str(found))


def progress(module: str | None = None) -> None:
    """Show where you are: this notebook's module, and the exercise that comes next."""
    from ._display import show_markdown
    from ._learner import progress_markdown, render_progress

    course = Course.discover()
    current = module or os.environ.get("JPY_SESSION_NAME")  # the notebook's path, in Jupyter
    show_markdown(progress_markdown(course, current), render_progress(course, current))


def solution(exercise_id: str, *, give_up: bool = False) -> None:
    """Show the reference answer of an exercise you have passed, to compare with yours.
    Before you pass it, only ``give_up=True`` shows it, and that is recorded."""
    from ._display import show_markdown
    from ._learner import SolutionLocked, reference_answer

    try:
        reference = reference_answer(Course.discover(), exercise_id, give_up=give_up)
    except SolutionLocked:
        show_markdown(
            f"`{exercise_id}` does not pass yet, so its reference answer stays hidden. "
            f'Try `hint("{exercise_id}")` first. To see it anyway, give up on it: '
            f'`solution("{exercise_id}", give_up=True)` (recorded in your progress as ⚑).',
            f"{exercise_id} does not pass yet; its reference answer stays hidden. "
            f'solution("{exercise_id}", give_up=True) shows it and records that you gave up.',
        )
        return
    show_markdown(reference.markdown(), str(reference))


def _put_commands_on_path() -> None:
    """`!prodready progress` in a notebook must work however Jupyter was started: the
    kernel's own environment holds the command, so make sure its folder is on the PATH."""
    scripts = Path(sys.executable).parent
    if shutil.which("prodready") is None and any(scripts.glob("prodready*")):
        os.environ["PATH"] = f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"


_put_commands_on_path()
