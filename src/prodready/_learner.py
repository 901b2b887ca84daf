"""What a learner does between checks: hints, progress, resets.

Plain functions over a ``Course``. The CLI and the notebook helpers both call these.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ._catalogue import Module
from ._course import Course
from ._grading import ModuleGrade
from ._notebooks import (
    NotebookError,
    build_workbook,
    read_notebook,
    reset_exercises,
    write_notebook,
)
from ._progress import ProgressStore


@dataclass(frozen=True)
class Hint:
    exercise: str
    level: int
    total: int
    text: str

    def __str__(self) -> str:
        more = (
            f"\n(`prodready hint {self.exercise}` again for hint {self.level + 1})"
            if self.level < self.total
            else "\n(That was the last hint. Compare your code with the check's message.)"
        )
        return f"Hint {self.level}/{self.total} for {self.exercise}:\n{self.text}{more}"


def hint(course: Course, exercise_id: str, level: int | None = None) -> Hint:
    """The next hint not yet seen, or a given level. Never the solution."""
    exercise = course.catalogue.exercise(exercise_id)
    store = ProgressStore(course.state)
    total = len(exercise.hints)
    if level is None:
        level = min(store.hints_seen(exercise_id) + 1, total)
    if not 1 <= level <= total:
        raise ValueError(f"{exercise_id} has hints 1 to {total}, not {level}")
    store.record_hint(exercise_id, level)
    return Hint(exercise_id, level, total, exercise.hints[level - 1])


def record_grade(course: Course, grade: ModuleGrade) -> None:
    store = ProgressStore(course.state)
    for result in grade.results:
        store.record_result(result.exercise, result.passed)


def render_progress(course: Course) -> str:
    store = ProgressStore(course.state)
    state = store.load()
    total = len(course.catalogue.exercises)
    done = sum(bool(state.get(ex.id, {}).get("passed")) for ex in course.catalogue.exercises)
    lines = [f"prodready: {done}/{total} exercises passed"]
    if store.notice:
        lines.append(f"note: {store.notice}")
    for module in course.catalogue:
        passed = [bool(state.get(ex.id, {}).get("passed")) for ex in module.exercises]
        bar = "█" * sum(passed) + "░" * (len(passed) - sum(passed))
        lines.append(f"\n{module.name:<28} {bar} {sum(passed)}/{len(passed)}  {module.title}")
        for ex, ok in zip(module.exercises, passed, strict=True):
            tried = ex.id in state
            mark = "✓" if ok else ("✗" if tried else "·")
            lines.append(f"  {mark} {ex.id:<36} {ex.title}")
    lines.append("\n✓ passed   ✗ checked, not yet passing   · not checked yet")
    return "\n".join(lines)


def backup(course: Course, path: Path) -> Path:
    """Copy a learner's file, byte for byte, into the course's backup folder."""
    folder = course.state / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder / f"{path.stem}.{stamp}{path.suffix}"
    counter = 1
    while target.exists():
        target = folder / f"{path.stem}.{stamp}-{counter}{path.suffix}"
        counter += 1
    shutil.copy2(path, target)
    return target


def reset(course: Course, target: str) -> str:
    """Restore stubs for an exercise or a whole module, backing up the workbook first."""
    module, exercises = course.catalogue.select(target)
    workbook_path = course.workbook(module)
    solution = read_notebook(course.solution(module))
    saved = backup(course, workbook_path) if workbook_path.exists() else None
    whole_module = len(exercises) == len(module.exercises) and "." not in target
    if whole_module or not workbook_path.exists():
        workbook = build_workbook(solution)
        what = f"the whole workbook {workbook_path.name}"
        if not whole_module:
            what += " (it was missing)"
    else:
        try:
            workbook = read_notebook(workbook_path)
        except NotebookError as e:
            raise NotebookError(
                f"{e}\nYour file is backed up as {saved}. "
                f"`prodready reset {module.number}` rebuilds the whole workbook."
            ) from None
        reset_exercises(workbook, solution, [ex.id for ex in exercises])
        what = ", ".join(ex.id for ex in exercises)
    write_notebook(workbook, workbook_path)
    kept = f"; your previous version is saved as {saved}" if saved else ""
    return f"Restored the starting code of {what}{kept}"


def workbook_status(course: Course, module: Module) -> str:
    path = course.workbook(module)
    try:
        read_notebook(path)
    except NotebookError as e:
        return str(e)
    return ""
