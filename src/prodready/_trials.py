"""Many answers, one kernel: how the course tests its own checks quickly.

The course's self-tests grade hundreds of answers: each shipped stub, every different
correct answer and every plausible wrong one. One graded notebook each would start a
kernel and import the module's stack hundreds of times. A *trial notebook* runs the whole
solution once, then appends a block per trial:

- an answer trial: the answer's cells and the exercise's check;
- a replay trial (a stub): the stub's cells, then every cell of the notebook after that
  exercise's answer, checks included, as a learner's workbook would run them. Its results
  say whether the stub fails its own check, and only its own.

Around each block the notebook's namespace is saved and restored, so the next trial starts
from the reference's state whatever this one rebound.

Each check in a trial is judged exactly as in grading (the seal's signed verdict, the
canary, the static review), through the same core.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from ._catalogue import Module
from ._course import Course
from ._grading import (
    DEFAULT_TIMEOUT,
    ExerciseResult,
    _explain,
    _prepare,
    _Proof,
    run_prepared,
    solution_answers,
)
from ._notebooks import ANSWER, CHECK, _answer_cells, cell_role, compose, read_notebook
from ._scrutiny import scrutinize


@dataclass(frozen=True)
class Trial:
    answers: Mapping[str, Sequence[str]]  # exercise id -> the sources of its answer cells
    replay: bool = False  # run every later cell again too (for "fails only its own check")


def grade_trials(
    course: Course,
    module: Module,
    trials: Sequence[Trial],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    files: Path | None = None,
) -> tuple[dict[str, ExerciseResult], list[dict[str, ExerciseResult]]]:
    """The solution's own results, and each trial's results by exercise id, from one
    kernel. A replay trial has a result for its exercise and every one after it."""
    solution = read_notebook(course.solution(module))
    reference = solution_answers(course, module)
    notebook = compose(solution, reference)
    base = [c for c in notebook.cells if c.cell_type == "code"]
    blocks: list[list[tuple[int, str]]] = []  # per trial: (code cell index, exercise checked)
    ids = (f"trial-{n}" for n in itertools.count())
    for trial in trials:
        cells = _trial_cells(notebook, trial, reference, ids)
        block = []
        for cell in cells:
            notebook.cells.append(cell)
            role = cell_role(cell)
            if cell.cell_type == "code" and role and role[1] == CHECK:
                block.append((_code_index(notebook, cell), role[0]))
        blocks.append(block)
    prepared = _prepare(course, module, {}, timeout, files, composed=notebook)
    [(lines, evidence)] = run_prepared(course, [prepared], timeout)
    proof = _Proof(prepared.seal["nonce"], *evidence)
    code_cells = prepared.code_cells
    offset = 1  # the seal is code cell 0 of the graded notebook

    def judged(index: int, exercise: str, flags: list[Any]) -> ExerciseResult:
        line = lines.get(index + offset, {"outcome": "not run"})
        cell = code_cells[index + offset]
        at = str(cell.metadata["prodready"].get("at", "1"))
        if line["outcome"] == "passed":
            nbval = ExerciseResult(exercise, True, "passed", float(line.get("seconds", 0.0)))
        else:
            nbval = ExerciseResult(exercise, False, _explain(line, CHECK, timeout))
        return proof.judge(nbval, flags, at)

    solved = {
        role[0]: judged(i, role[0], [])
        for i, cell in enumerate(base)
        if (role := cell_role(cell)) and role[1] == CHECK
    }
    results = []
    for trial, block in zip(trials, blocks, strict=True):
        flags = {
            ex: [f for s in sources for f in scrutinize(s)] for ex, sources in trial.answers.items()
        }
        results.append({ex: judged(i, ex, flags.get(ex, [])) for i, ex in block})
    return solved, results


def _code_index(notebook: NotebookNode, cell: NotebookNode) -> int:
    code = [c for c in notebook.cells if c.cell_type == "code"]
    return next(i for i, c in enumerate(code) if c is cell)


_SAVE = "_prodready_before_trial = dict(globals())  # the reference state, before this trial"
_RESTORE = (
    "def _prodready_restore(saved=_prodready_before_trial, namespace=globals()):\n"
    "    namespace.clear()  # whatever the trial rebound is the reference's again\n"
    "    namespace.update(saved)\n"
    "_prodready_restore()"
)


def _trial_cells(
    notebook: NotebookNode, trial: Trial, reference: Mapping[str, Sequence[str]], ids: Any
) -> list[NotebookNode]:
    """The cells a trial appends: the namespace saved, the trial's answers, the check (or,
    for a replay, every cell after the exercise's answers, as a workbook runs them), and
    the namespace restored, so that nothing a trial rebinds (an answer, or a course name
    such as a model it redefined) reaches the next one."""
    original = [c for c in notebook.cells if not str(c.get("id", "")).startswith("trial-")]
    cells: list[NotebookNode] = [_course_cell(_SAVE, next(ids))]
    exercises = list(trial.answers)
    for exercise in exercises:
        cells += _answer_cells(exercise, list(trial.answers[exercise]), next(ids))
    if trial.replay:
        (exercise,) = exercises
        last_answer = max(i for i, c in enumerate(original) if cell_role(c) == (exercise, ANSWER))
        later = original[last_answer + 1 :]  # course cells, checks, later reference answers
        cells += [_copy(cell, next(ids)) for cell in later if cell.cell_type == "code"]
    else:
        for exercise in exercises:
            check = next(c for c in original if cell_role(c) == (exercise, CHECK))
            cells.append(_copy(check, next(ids)))
    cells.append(_course_cell(_RESTORE, next(ids)))
    return cells


def _course_cell(source: str, cell_id: str) -> NotebookNode:
    cell: NotebookNode = nbformat.v4.new_code_cell(source)
    cell.id = cell_id
    return cell


def _copy(cell: NotebookNode, cell_id: str) -> NotebookNode:
    duplicate: NotebookNode = copy.deepcopy(cell)
    duplicate.id = cell_id
    return duplicate
