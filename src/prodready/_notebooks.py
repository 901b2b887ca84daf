"""Notebook handling: safe reading, cell roles, and the graded-notebook composition.

Course cells carry ``metadata.prodready = {"exercise": <id>, "role": "answer" | "check"}``.
A solution's answer cells also carry ``"stub"``: the broken starting code the workbook
ships. So ``solutions/`` is the single source: workbooks, resets and missing answers
are all derived from it.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.warnings import DuplicateCellId

ANSWER, CHECK = "answer", "check"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# Answers are free to print anything; only check cells are compared with the reference.
_ANSWER_TAGS = ["nbval-ignore-output"]

Answers = Mapping[str, Sequence[str]]  # exercise id -> sources of its answer cells


class NotebookError(ValueError):
    """A notebook cannot be used; the message says why and what to do."""


def read_notebook(path: Path) -> NotebookNode:
    """Read a notebook, turning every way a file can be broken into one clear error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotebookError(f"{path} does not exist") from None
    except OSError as e:
        raise NotebookError(f"{path} cannot be read: {e.strerror}") from None
    if not raw.strip():
        raise NotebookError(f"{path} is empty (0 notebook cells)")
    if b"\x00" in raw[:8192]:
        raise NotebookError(f"{path} is binary data, not a notebook")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise NotebookError(f"{path} is not UTF-8 text, so not a notebook") from None
    except json.JSONDecodeError as e:
        raise NotebookError(
            f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "was it saved while another program was writing it?"
        ) from None
    if not isinstance(data, dict) or "cells" not in data:
        raise NotebookError(f"{path} is JSON but not a notebook (no 'cells')")
    major = data.get("nbformat")
    if major != 4:
        raise NotebookError(f"{path} is notebook format v{major}; the course needs v4")
    try:
        with warnings.catch_warnings():
            # nbformat repairs duplicated cell ids (a copied cell) itself; that is no news
            warnings.simplefilter("ignore", DuplicateCellId)
            nb: NotebookNode = nbformat.from_dict(nbformat.reads(json.dumps(data), as_version=4))
    except Exception as e:  # nbformat raises several unrelated types for bad structure
        raise NotebookError(f"{path} is not a valid notebook: {e}") from None
    return nb


def write_notebook(nb: NotebookNode, path: Path) -> None:
    """Write atomically, so a crash never leaves half a notebook behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    tmp.replace(path)


def cell_role(cell: NotebookNode) -> tuple[str, str] | None:
    """``(exercise id, role)`` for a course cell, ``None`` for any other cell."""
    meta = cell.get("metadata", {}).get("prodready")
    if not isinstance(meta, dict):
        return None
    exercise, role = meta.get("exercise"), meta.get("role")
    if isinstance(exercise, str) and role in (ANSWER, CHECK):
        return exercise, role
    return None


def exercise_ids(nb: NotebookNode) -> list[str]:
    """Exercise ids in the order their cells appear."""
    seen: dict[str, None] = {}
    for cell in nb.cells:
        if role := cell_role(cell):
            seen.setdefault(role[0], None)
    return list(seen)


def _cells_with_role(nb: NotebookNode, role: str) -> dict[str, list[NotebookNode]]:
    found: dict[str, list[NotebookNode]] = {}
    for cell in nb.cells:
        tagged = cell_role(cell)
        if tagged and tagged[1] == role and cell.cell_type == "code":
            found.setdefault(tagged[0], []).append(cell)
    return found


def learner_answers(nb: NotebookNode) -> dict[str, list[str]]:
    """The learner's answer cells by exercise id; cells they added are ignored."""
    return {ex: [c.source for c in cells] for ex, cells in _cells_with_role(nb, ANSWER).items()}


def stubs(solution: NotebookNode) -> dict[str, list[str]]:
    """The shipped starting code of every exercise, from the solution's metadata."""
    return {
        ex: [str(c.metadata["prodready"].get("stub", "")) for c in cells]
        for ex, cells in _cells_with_role(solution, ANSWER).items()
    }


def _answer_cell(exercise: str, source: str, cell_id: str) -> NotebookNode:
    cell: NotebookNode = nbformat.v4.new_code_cell(source)
    cell.id = cell_id  # derived from the solution's cell, so rebuilding changes nothing
    cell.metadata["prodready"] = {"exercise": exercise, "role": ANSWER}
    cell.metadata["tags"] = list(_ANSWER_TAGS)
    return cell


def _answer_cells(exercise: str, sources: Sequence[str], first_id: str) -> list[NotebookNode]:
    return [
        _answer_cell(exercise, source, first_id if n == 0 else f"{first_id}-{n}")
        for n, source in enumerate(sources or [""])
    ]


def compose(solution: NotebookNode, answers: Answers) -> NotebookNode:
    """The graded notebook: the solution with each exercise's answer cells swapped.

    Checks and their expected outputs come from the solution, never from the learner,
    so edited or deleted check cells change nothing. A missing answer is the stub.
    """
    shipped = stubs(solution)
    graded = copy.deepcopy(solution)
    cells: list[NotebookNode] = []
    placed: set[str] = set()
    for cell in graded.cells:
        tagged = cell_role(cell)
        if tagged is None or tagged[1] != ANSWER:
            cells.append(cell)
            continue
        exercise = tagged[0]
        if exercise in placed:
            continue  # every answer cell of an exercise goes where its first one stood
        placed.add(exercise)
        cells.extend(_answer_cells(exercise, answers.get(exercise, shipped[exercise]), cell.id))
    graded.cells = cells
    return graded


def build_workbook(solution: NotebookNode) -> NotebookNode:
    """The shipped workbook: the solution with stubs for answers and no outputs."""
    workbook = compose(solution, {})
    for cell in workbook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        role = cell_role(cell)
        if role and role[1] == ANSWER:
            cell.metadata.pop("tags", None)
    workbook.metadata = {"kernelspec": dict(KERNELSPEC)}
    return workbook


def reset_exercises(learner: NotebookNode, solution: NotebookNode, ids: Iterable[str]) -> None:
    """Put the stubs back for ``ids`` in place, keeping every other cell the learner has."""
    shipped = stubs(solution)
    first_ids: dict[str, str] = {}
    for cell in solution.cells:
        role = cell_role(cell)
        if role and role[1] == ANSWER:
            first_ids.setdefault(role[0], cell.id)
    for exercise in ids:
        fresh = _answer_cells(exercise, shipped[exercise], first_ids[exercise])
        for cell in fresh:
            cell.metadata.pop("tags")
        positions = [i for i, c in enumerate(learner.cells) if cell_role(c) == (exercise, ANSWER)]
        if not positions:
            checks = [i for i, c in enumerate(learner.cells) if cell_role(c) == (exercise, CHECK)]
            if not checks:
                raise NotebookError(
                    f"{exercise}: neither its answer nor its check cell is in this notebook, so "
                    "there is no place to restore it; reset the whole module instead"
                )
            learner.cells[checks[0] : checks[0]] = fresh
            continue
        for i in reversed(positions[1:]):
            del learner.cells[i]
        learner.cells[positions[0] : positions[0] + 1] = fresh
