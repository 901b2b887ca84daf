from __future__ import annotations

import re

import pytest

from prodready._course import Course
from prodready._learner import (
    SolutionLocked,
    hint,
    progress_markdown,
    progress_view,
    reference_answer,
    render_progress,
    reset,
)
from prodready._notebooks import learner_answers, read_notebook, stubs, write_notebook
from prodready._progress import ProgressStore


def test_hints_advance_one_level_at_a_time_and_stop_at_the_last(fixture_course: Course) -> None:
    levels = [hint(fixture_course, "fixture.greet").level for _ in range(4)]
    assert levels == [1, 2, 3, 3]
    again = hint(fixture_course, "fixture.greet", level=1)
    assert again.text == "An f-string helps." and "hint 2" in str(again)
    assert "last hint" in str(hint(fixture_course, "fixture.greet", level=3))


def test_a_hint_level_out_of_range_is_refused(fixture_course: Course) -> None:
    with pytest.raises(ValueError, match="hints 1 to 2, not 3"):
        hint(fixture_course, "fixture.add", level=3)


def test_progress_shows_done_over_total_per_module(fixture_course: Course) -> None:
    store = ProgressStore(fixture_course.state)
    store.record_result("fixture.add", True)
    store.record_result("fixture.greet", False)
    text = render_progress(fixture_course)
    assert "1/3 exercises passed" in text
    assert "██░" not in text and "█░░ 1/3" in text
    assert "✓ fixture.add" in text and "✗ fixture.greet" in text and "· fixture.total" in text


def solve(course: Course) -> None:
    module = course.catalogue.module("01")
    write_notebook(read_notebook(course.solution(module)), course.workbook(module))


def test_reset_of_one_exercise_backs_up_and_keeps_other_answers(fixture_course: Course) -> None:
    solve(fixture_course)
    module = fixture_course.catalogue.module("01")
    before = fixture_course.workbook(module).read_bytes()
    message = reset(fixture_course, "fixture.add")
    answers = learner_answers(read_notebook(fixture_course.workbook(module)))
    solution = read_notebook(fixture_course.solution(module))
    assert answers["fixture.add"] == stubs(solution)["fixture.add"]
    assert answers["fixture.greet"] == learner_answers(solution)["fixture.greet"]
    backups = list((fixture_course.state / "backups").iterdir())
    assert len(backups) == 1 and backups[0].read_bytes() == before
    assert str(backups[0]) in message


def test_reset_of_a_module_rebuilds_even_a_corrupt_workbook(fixture_course: Course) -> None:
    module = fixture_course.catalogue.module("01")
    fixture_course.workbook(module).write_text("{corrupt", encoding="utf-8")
    reset(fixture_course, "01")
    workbook = read_notebook(fixture_course.workbook(module))
    assert learner_answers(workbook) == stubs(read_notebook(fixture_course.solution(module)))
    (backup,) = (fixture_course.state / "backups").iterdir()
    assert backup.read_text(encoding="utf-8") == "{corrupt"


def test_reset_of_one_exercise_in_a_corrupt_workbook_says_what_to_do(
    fixture_course: Course,
) -> None:
    module = fixture_course.catalogue.module("01")
    fixture_course.workbook(module).write_text("{corrupt", encoding="utf-8")
    with pytest.raises(ValueError, match="prodready reset 01"):
        reset(fixture_course, "fixture.add")
    assert fixture_course.workbook(module).read_text(encoding="utf-8") == "{corrupt"


def test_reset_of_a_missing_workbook_recreates_it(fixture_course: Course) -> None:
    module = fixture_course.catalogue.module("01")
    fixture_course.workbook(module).unlink()
    assert "it was missing" in reset(fixture_course, "fixture.total")
    assert read_notebook(fixture_course.workbook(module)).cells


def test_the_notebook_hint_points_to_the_notebook_way_of_getting_the_next_one(
    fixture_course: Course,
) -> None:
    first = hint(fixture_course, "fixture.greet")
    assert 'hint("fixture.greet")` again for hint 2' in first.markdown()
    assert "prodready hint fixture.greet` again for hint 2" in str(first)


def test_progress_says_what_comes_next_and_expands_only_the_current_module(
    fixture_course: Course,
) -> None:
    ProgressStore(fixture_course.state).record_result("fixture.add", True)
    view = progress_view(fixture_course)
    assert view.next is not None and view.next[1].exercise.id == "fixture.greet"
    text = render_progress(fixture_course)
    assert "Next: fixture.greet (exercise 2 of 3) in exercises/01_fixture.ipynb" in text
    markdown = progress_markdown(fixture_course, "exercises/01_fixture.ipynb")
    assert "[Greet by name](../exercises/01_fixture.ipynb)" in markdown


def test_progress_lines_stay_short_and_aligned(course: Course) -> None:
    text = render_progress(course, every=True)
    assert all(len(line) <= 100 for line in text.splitlines())
    module_lines = [line for line in text.splitlines() if re.match(r"^[ ▸] \d\d ", line)]
    assert len(module_lines) == len(course.catalogue.modules)
    assert len({line.index("█" if "█" in line else "░") for line in module_lines}) == 1
    compact = render_progress(course)
    assert len(compact.splitlines()) < len(course.catalogue.exercises)


def test_a_solution_shows_only_once_passed_or_after_an_explicit_give_up(
    fixture_course: Course,
) -> None:
    with pytest.raises(SolutionLocked, match="--give-up"):
        reference_answer(fixture_course, "fixture.add")
    assert "fixture.add" not in ProgressStore(fixture_course.state).load()
    given_up = reference_answer(fixture_course, "fixture.add", give_up=True)
    assert "a + b" in str(given_up) and "gave up" in given_up.why
    assert ProgressStore(fixture_course.state).load()["fixture.add"]["gave_up_at"]
    assert "⚑ fixture.add" in render_progress(fixture_course)
    ProgressStore(fixture_course.state).record_result("fixture.greet", True)
    assert "you passed it" in reference_answer(fixture_course, "fixture.greet").why
    assert "gave_up_at" not in ProgressStore(fixture_course.state).load()["fixture.greet"]
