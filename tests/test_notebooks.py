from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from prodready._course import Course
from prodready._notebooks import (
    ANSWER,
    CHECK,
    NotebookError,
    build_workbook,
    cell_role,
    compose,
    exercise_ids,
    learner_answers,
    read_notebook,
    reset_exercises,
    stubs,
    write_notebook,
)


def cells_with_role(nb: nbformat.NotebookNode, role: str) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if (tagged := cell_role(c)) and tagged[1] == role]


@pytest.fixture
def solution(fixture_course: Course) -> nbformat.NotebookNode:
    return read_notebook(fixture_course.solution(fixture_course.catalogue.module("01")))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"   \n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary data"),
        (b"\xff\xfe{", "not UTF-8"),
        (b'{"cells": [', "not valid JSON (line 1"),
        (b"[1, 2]", "not a notebook"),
        (b'{"cells": [], "nbformat": 3, "nbformat_minor": 0, "metadata": {}}', "format v3"),
        (b'{"cells": [{"cell_type": "code"}], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
         "not a valid notebook"),
    ],
)  # fmt: skip
def test_broken_files_give_one_clear_error(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_bytes(content)
    with pytest.raises(NotebookError, match=re.escape(problem)):
        read_notebook(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="does not exist"):
        read_notebook(tmp_path / "nope.ipynb")


def test_exercise_ids_and_roles_come_from_metadata(solution: nbformat.NotebookNode) -> None:
    assert exercise_ids(solution) == ["fixture.add", "fixture.greet", "fixture.total"]
    roles = [cell_role(c) for c in solution.cells if cell_role(c)]
    assert roles[:2] == [("fixture.add", ANSWER), ("fixture.add", CHECK)]


def test_compose_takes_answers_from_the_learner_and_everything_else_from_the_solution(
    solution: nbformat.NotebookNode,
) -> None:
    learner = build_workbook(solution)
    for cell in learner.cells:
        if cell_role(cell) == ("fixture.add", CHECK):
            cell.source = "print('✅ fixture.add: passed. add(2, 3) == 5')"  # tampering
            cell.outputs = []
    learner.cells.append(nbformat.v4.new_code_cell("scratch = 1"))  # the learner's own cell
    answers = learner_answers(learner)
    answers["fixture.greet"] = ["def greet(name):", "    return 'hi'"]  # split in two cells
    graded = compose(solution, answers)
    assert cells_with_role(graded, CHECK) == cells_with_role(solution, CHECK)
    assert "scratch = 1" not in [c.source for c in graded.cells]
    greet = [c for c in graded.cells if cell_role(c) == ("fixture.greet", ANSWER)]
    assert [c.source for c in greet] == ["def greet(name):", "    return 'hi'"]
    assert all("nbval-ignore-output" in c.metadata["tags"] and not c.outputs for c in greet)
    assert len({c.id for c in graded.cells}) == len(graded.cells)


def test_a_missing_answer_is_graded_as_the_shipped_stub(solution: nbformat.NotebookNode) -> None:
    graded = compose(solution, {})
    add = [c.source for c in graded.cells if cell_role(c) == ("fixture.add", ANSWER)]
    assert add == stubs(solution)["fixture.add"] and "TODO" in add[0]


def test_the_workbook_has_stubs_no_outputs_and_only_the_kernelspec(
    solution: nbformat.NotebookNode,
) -> None:
    workbook = build_workbook(solution)
    assert workbook.metadata == {"kernelspec": solution.metadata["kernelspec"]}
    code = [c for c in workbook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert learner_answers(workbook) == stubs(solution)
    assert all("stub" not in c.metadata.get("prodready", {}) for c in workbook.cells)
    assert build_workbook(solution) == workbook, "rebuilding is deterministic"


def test_reset_restores_one_exercise_and_keeps_the_rest(solution: nbformat.NotebookNode) -> None:
    learner = compose(solution, learner_answers(solution))
    learner.cells.append(nbformat.v4.new_markdown_cell("my notes"))
    reset_exercises(learner, solution, ["fixture.greet"])
    answers = learner_answers(learner)
    assert answers["fixture.greet"] == stubs(solution)["fixture.greet"]
    assert answers["fixture.add"] == learner_answers(solution)["fixture.add"]
    assert learner.cells[-1].source == "my notes"


def test_reset_puts_a_deleted_answer_back_before_its_check(
    solution: nbformat.NotebookNode,
) -> None:
    learner = build_workbook(solution)
    learner.cells = [c for c in learner.cells if cell_role(c) != ("fixture.total", ANSWER)]
    reset_exercises(learner, solution, ["fixture.total"])
    roles = [cell_role(c) for c in learner.cells if cell_role(c)]
    assert roles[-2:] == [("fixture.total", ANSWER), ("fixture.total", CHECK)]


def test_reset_without_any_cell_of_the_exercise_asks_for_a_module_reset(
    solution: nbformat.NotebookNode,
) -> None:
    learner = build_workbook(solution)
    learner.cells = [c for c in learner.cells if (cell_role(c) or ("",))[0] != "fixture.add"]
    with pytest.raises(NotebookError, match="reset the whole module"):
        reset_exercises(learner, solution, ["fixture.add"])


def test_write_is_atomic_and_round_trips(tmp_path: Path, solution: nbformat.NotebookNode) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "nb.ipynb"
    write_notebook(solution, target)
    assert read_notebook(target) == solution
    assert [p.name for p in folder.iterdir()] == ["nb.ipynb"]
    assert json.loads(target.read_text(encoding="utf-8"))["nbformat"] == 4
