"""The course's promises about its files: catalogue and notebooks agree both ways,
workbooks are derived from solutions, and every notebook is clean."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from helpers import MODULES, alternatives, solution_answers

from prodready._catalogue import Module
from prodready._check import registered_ids
from prodready._course import Course
from prodready._notebooks import (
    ANSWER,
    CHECK,
    KERNELSPEC,
    build_workbook,
    cell_role,
    exercise_ids,
    read_notebook,
    stubs,
)
from prodready._scrutiny import scrutinize
from prodready._seal import check_cell

FOLDERS = ("notebooks", "exercises", "solutions")
CHECK_TAGS_THAT_DISARM = {
    "nbval-ignore-output",
    "nbval-skip",
    "raises-exception",
    "nbval-raises-exception",
}


def all_notebooks(course: Course) -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (course.root / folder).glob("*.ipynb"))


def test_every_folder_holds_exactly_the_catalogue_modules(course: Course) -> None:
    names = [m.name for m in course.catalogue]
    for folder in ("exercises", "solutions"):
        assert sorted(p.stem for p in (course.root / folder).glob("*.ipynb")) == sorted(names)
    lessons = sorted(p.stem for p in (course.root / "notebooks").glob("*.ipynb"))
    assert lessons == sorted(["00_start_here", *names])


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_solution_holds_the_catalogue_exercises_in_order(course: Course, module: Module) -> None:
    solution = read_notebook(course.solution(module))
    assert exercise_ids(solution) == [ex.id for ex in module.exercises]
    for ex in module.exercises:
        roles = [r for r in map(cell_role, solution.cells) if r and r[0] == ex.id]
        assert roles.count((ex.id, CHECK)) == 1, f"{ex.id} needs exactly one check cell"
        assert roles.count((ex.id, ANSWER)) >= 1, f"{ex.id} needs an answer cell"
        assert roles[-1] == (ex.id, CHECK), f"{ex.id}: the check cell comes after its answers"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_check_cells_are_read_only_and_compared(course: Course, module: Module) -> None:
    for cell in read_notebook(course.solution(module)).cells:
        role = cell_role(cell)
        if not role or role[1] != CHECK:
            continue
        assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False
        assert not CHECK_TAGS_THAT_DISARM & set(cell.metadata.get("tags", []))
        assert f'"{role[0]}"' in cell.source, "a check cell checks its own exercise"
        assert cell.outputs and cell.execution_count, "the stored verdict is the reference"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_every_exercise_has_a_checker_and_no_checker_is_orphaned(module: Module) -> None:
    assert registered_ids(module.slug) == {ex.id for ex in module.exercises}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_stubs_have_todos_and_solutions_say_why(course: Course, module: Module) -> None:
    solution = read_notebook(course.solution(module))
    for exercise, sources in stubs(solution).items():
        assert any("TODO" in s for s in sources), f"{exercise}: the stub marks what to change"
    for cell in solution.cells:
        role = cell_role(cell)
        if role and role[1] == ANSWER:
            assert cell.source != cell.metadata["prodready"]["stub"], f"{role[0]} is unsolved"
            assert "#" in cell.source, f"{role[0]}: the solution says why the fix works"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_workbook_is_exactly_its_solution_with_stubs(course: Course, module: Module) -> None:
    expected = build_workbook(read_notebook(course.solution(module)))
    assert read_notebook(course.workbook(module)) == expected, "run `make workbooks`"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_lesson_links_to_its_workbook(course: Course, module: Module) -> None:
    lesson = read_notebook(course.lesson(module))
    prose = "\n".join(c.source for c in lesson.cells if c.cell_type == "markdown")
    assert f"../exercises/{module.name}.ipynb" in prose


def test_notebooks_are_clean(course: Course) -> None:
    for path in all_notebooks(course):
        nb = read_notebook(path)
        nbformat.validate(nb)
        assert nb.metadata == {"kernelspec": KERNELSPEC}, f"{path.name}: per-machine metadata"
        first = nb.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), path.name
        headings = [
            line
            for c in nb.cells
            if c.cell_type == "markdown"
            for line in re.sub(r"```.*?```", "", c.source, flags=re.S).splitlines()
            if line.startswith("# ")
        ]
        assert len(headings) == 1, f"{path.name} has H1s {headings}"
        for cell in nb.cells:
            assert "execution" not in cell.metadata, f"{path.name}: timing metadata"
            if path.parent.name == "exercises" and cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


def test_no_stray_notebooks(course: Course) -> None:
    stray = [p for p in course.root.rglob("Untitled*.ipynb") if ".venv" not in p.parts]
    assert not stray


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_no_solution_or_correct_answer_is_flagged_for_review(
    course: Course, module: Module
) -> None:
    honest = [(ex, s) for ex, sources in solution_answers(course, module).items() for s in sources]
    honest += [(alt.exercise, alt.source) for alt in alternatives(module, "correct")]
    flagged = {ex: [str(f) for f in scrutinize(source)] for ex, source in honest}
    assert {ex: flags for ex, flags in flagged.items() if flags} == {}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_every_check_cell_can_be_sealed(course: Course, module: Module) -> None:
    for cell in read_notebook(course.solution(module)).cells:
        role = cell_role(cell)
        if role and role[1] == CHECK:
            sealed = check_cell("nonce", cell.source)
            assert sealed is not None and sealed[0] == role[0], cell.source


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_a_module_with_files_ships_its_starting_code_and_has_a_reference(course: Course) -> None:
    for module in course.catalogue:
        if not module.files:
            assert not course.starting_files(module).exists(), f"{module.name}: files = true?"
            continue
        assert course.reference_files(module).is_dir(), f"{module.name}: no reference files"
        starting = _tree(course.starting_files(module))
        assert starting, f"{module.name}: no starting code"
        assert _tree(course.learner_files(module)) == starting, "run `make workbooks`"


LEARNER_HELPERS = {"check", "check_async", "data_path", "hint", "progress", "solution"}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_every_workbook_offers_the_same_helpers_and_says_how_to_use_them(
    course: Course, module: Module
) -> None:
    solution = read_notebook(course.solution(module))
    setup = next(c for c in solution.cells if c.cell_type == "code")
    imported = {
        name.strip()
        for line in setup.source.splitlines()
        if line.startswith("from prodready import ")
        for name in line.removeprefix("from prodready import ").split(",")
    }
    assert imported >= LEARNER_HELPERS, f"the setup cell lacks {LEARNER_HELPERS - imported}"
    intro = next(c for c in solution.cells if c.cell_type == "markdown").source
    assert "**Working here.**" in intro and f"prodready check {module.number}" in intro
    assert "prodready.hint(" not in intro, "`prodready` is not a name in the workbook"
    for cell in solution.cells:
        if (cell_role(cell) or ("", ""))[1] == CHECK:
            assert cell.source.startswith("# Read-only check cell"), "say the cell is read-only"
