"""What a learner does between checks: hints, progress, resets.

Plain functions over a ``Course``. The CLI and the notebook helpers both call these.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ._catalogue import Exercise, Module
from ._course import Course
from ._display import wrap
from ._grading import ModuleGrade
from ._notebooks import (
    NotebookError,
    build_workbook,
    learner_answers,
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
        """For a terminal: `prodready hint`."""
        heading = f"Hint {self.level}/{self.total} for {self.exercise}"
        return f"{heading}:\n{self.text}\n({self._next('cli')})"

    def markdown(self) -> str:
        """For a notebook: `hint()` in a cell."""
        heading = f"**Hint {self.level}/{self.total}** for `{self.exercise}`"
        return f"{heading}\n\n{self.text}\n\n*{self._next('notebook')}*"

    def _next(self, surface: str) -> str:
        again = (
            f'`hint("{self.exercise}")`' if surface == "notebook"
            else f"`prodready hint {self.exercise}`"
        )  # fmt: skip
        if self.level < self.total:
            return f"{again} again for hint {self.level + 1}."
        return "That was the last hint. Compare your code with the check's message."


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


@dataclass(frozen=True)
class ExerciseState:
    exercise: Exercise
    position: int  # 1-based, in its workbook
    passed: bool
    tried: bool
    gave_up: bool

    @property
    def mark(self) -> str:
        if self.gave_up:
            return "⚑"
        return "✓" if self.passed else ("✗" if self.tried else "·")


@dataclass(frozen=True)
class ProgressView:
    """Where a learner stands: every module, the one they are in, and what comes next."""

    modules: tuple[tuple[Module, tuple[ExerciseState, ...]], ...]
    current: Module
    next: tuple[Module, ExerciseState] | None
    notice: str = ""

    @property
    def done(self) -> int:
        return sum(st.passed for _, states in self.modules for st in states)

    @property
    def total(self) -> int:
        return sum(len(states) for _, states in self.modules)


LEGEND = "✓ passed   ✗ not passing yet   · not checked yet   ⚑ gave up and saw the solution"


def progress_view(course: Course, current: str | None = None) -> ProgressView:
    """The learner's progress. ``current`` names the module to focus on (a number, slug or
    notebook path); by default, the first module with an exercise still to pass."""
    store = ProgressStore(course.state)
    state = store.load()
    modules = []
    for module in course.catalogue:
        states = tuple(
            ExerciseState(
                ex,
                n,
                passed=bool(state.get(ex.id, {}).get("passed")),
                tried="passed" in state.get(ex.id, {}),
                gave_up=bool(state.get(ex.id, {}).get("gave_up_at")),
            )
            for n, ex in enumerate(module.exercises, start=1)
        )
        modules.append((module, states))
    focus = _focus(course, current)
    order = [m for m, _ in modules]
    start = order.index(focus) if focus in order else 0
    upcoming = [(m, st) for m, states in modules[start:] for st in states if not st.passed]
    upcoming += [(m, st) for m, states in modules[:start] for st in states if not st.passed]
    chosen = focus or (upcoming[0][0] if upcoming else order[0])
    return ProgressView(tuple(modules), chosen, upcoming[0] if upcoming else None, store.notice)


def _focus(course: Course, current: str | None) -> Module | None:
    if not current:
        return None
    stem = Path(current).stem
    for module in course.catalogue:
        if stem == module.name:
            return module
    try:
        return course.catalogue.module(current)
    except KeyError:
        return None  # a notebook that is not a workbook, such as the start page


def _bar(states: tuple[ExerciseState, ...]) -> str:
    done = sum(st.passed for st in states)
    return "█" * done + "░" * (len(states) - done)


def render_progress(course: Course, current: str | None = None, *, every: bool = False) -> str:
    """For a terminal: one line per module, the current module's exercises, what is next."""
    view = progress_view(course, current)
    lines = [f"prodready: {view.done}/{view.total} exercises passed"]
    if view.notice:
        lines.append(f"note: {view.notice}")
    lines.append("")
    slug_width = max(len(m.slug) for m, _ in view.modules)
    bar_width = max(len(states) for _, states in view.modules)
    for module, states in view.modules:
        pointer = "▸" if module == view.current else " "
        done = sum(st.passed for st in states)
        lines.append(
            f"{pointer} {module.number} {module.slug:<{slug_width}}  "
            f"{_bar(states):<{bar_width}} {done}/{len(states)}"
        )
    shown = [(m, s) for m, s in view.modules if every or m == view.current]
    width = min(max(shutil.get_terminal_size((88, 24)).columns, 60), 100)
    id_width = max(len(st.exercise.id) for _, states in shown for st in states)
    for module, states in shown:
        lines += ["", f"{module.number} {module.title}"]
        for st in states:
            head = f"  {st.mark} {st.exercise.id:<{id_width}}  "
            title = wrap(st.exercise.title, max(30, width - len(head)))
            lines.append(head + title[0])
            lines.extend(" " * len(head) + more for more in title[1:])
    lines.append("")
    if view.next is None:
        lines.append("Every exercise passes. Well done: on to the capstone, or back to a lesson.")
    else:
        module, st = view.next
        lines.append(
            f"Next: {st.exercise.id} (exercise {st.position} of {len(module.exercises)}) in "
            f"exercises/{module.name}.ipynb"
        )
    lines.append(LEGEND)
    return "\n".join(lines)


def progress_markdown(course: Course, current: str | None = None) -> str:
    """For a notebook: the current module compactly, and a link to what comes next."""
    view = progress_view(course, current)
    module = view.current
    states = dict(view.modules)[module]
    done = sum(st.passed for st in states)
    parts = [
        f"**prodready: {view.done}/{view.total} exercises passed.** "
        f"Module {module.number}, {module.title}: {done}/{len(states)} `{_bar(states)}`",
        "",
    ]
    parts += [f"- {st.mark} `{st.exercise.id}`: {st.exercise.title}" for st in states]
    parts.append("")
    if view.next is None:
        parts.append("Every exercise passes. Well done.")
    else:
        nxt_module, st = view.next
        parts.append(
            f"**Next:** [{st.exercise.title}](../exercises/{nxt_module.name}.ipynb) "
            f"(`{st.exercise.id}`, exercise {st.position} of {len(nxt_module.exercises)} in "
            f"`exercises/{nxt_module.name}.ipynb`)"
        )
    if view.notice:
        parts.append(f"\n*Note: {view.notice}*")
    parts.append(f"\n<small>{LEGEND}. `prodready progress --all` lists every module.</small>")
    return "\n".join(parts)


class SolutionLocked(ValueError):
    """The reference answer of an exercise the learner has neither passed nor given up on."""

    def __init__(self, exercise_id: str) -> None:
        self.exercise_id = exercise_id
        super().__init__(
            f"{exercise_id} does not pass yet, so its reference answer stays hidden. "
            f"Try the next hint first (`prodready hint {exercise_id}`). To see the answer "
            f"anyway, give up on it: `prodready solution {exercise_id} --give-up` (that is "
            "recorded in your progress)."
        )


@dataclass(frozen=True)
class Reference:
    exercise: str
    sources: tuple[str, ...]
    why: str  # why the learner may see it

    def __str__(self) -> str:
        code = "\n\n".join(self.sources)
        return f"Reference answer of {self.exercise} ({self.why}):\n\n{code}"

    def markdown(self) -> str:
        code = "\n\n".join(self.sources)
        return (
            f"**Reference answer** of `{self.exercise}` ({self.why}). Grading compares "
            f"behaviour, not text: yours may differ and still be right.\n\n```python\n{code}\n```"
        )


def reference_answer(course: Course, exercise_id: str, *, give_up: bool = False) -> Reference:
    """The solution's answer cells, once the learner has passed the exercise or gives up.
    Never by accident: giving up is an explicit, recorded step."""
    exercise = course.catalogue.exercise(exercise_id)
    store = ProgressStore(course.state)
    entry = store.load().get(exercise_id, {})
    if entry.get("passed"):
        why = "you passed it: compare"
    elif entry.get("gave_up_at") or give_up:
        why = "you gave up on it; it is marked ⚑ in your progress"
    else:
        raise SolutionLocked(exercise_id)
    module = course.catalogue.module(exercise.module)
    path = course.solution(module)
    if not path.exists():
        raise FileNotFoundError(
            f"this copy of the course has no {path.relative_to(course.root)}: your instructor "
            "keeps the reference answers"
        )
    sources = tuple(learner_answers(read_notebook(path)).get(exercise_id, []))
    if give_up and not entry.get("passed"):
        store.record_give_up(exercise_id)
    return Reference(exercise_id, sources, why)


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
    """Restore stubs for an exercise or a whole module, backing up the workbook first (and,
    for a whole module whose answer includes files, the folder of files too)."""
    module, exercises = course.catalogue.select(target)
    workbook_path = course.workbook(module)
    solution = read_notebook(course.solution(module))
    whole_module = len(exercises) == len(module.exercises) and "." not in target
    files_note = ""
    if module.files and whole_module:
        files_note = "; " + _reset_files(course, module)
    elif module.files:
        files_note = (
            f"; the files in exercises/{module.name}/ belong to every exercise of the module "
            f"and are unchanged (`prodready reset {module.number}` restores them too)"
        )
    saved = backup(course, workbook_path) if workbook_path.exists() else None
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
    return f"Restored the starting code of {what}{kept}{files_note}"


def _reset_files(course: Course, module: Module) -> str:
    folder = course.learner_files(module)
    saved = ""
    if folder.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = course.state / "backups" / f"{module.name}.{stamp}"
        counter = 1
        while target.exists():
            target = course.state / "backups" / f"{module.name}.{stamp}-{counter}"
            counter += 1
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, target, symlinks=True)
        shutil.rmtree(folder)
        saved = f" (yours is saved as {target})"
    shutil.copytree(course.starting_files(module), folder)
    return f"restored exercises/{module.name}/ as shipped{saved}"


def workbook_status(course: Course, module: Module) -> str:
    path = course.workbook(module)
    try:
        read_notebook(path)
    except NotebookError as e:
        return str(e)
    return ""
