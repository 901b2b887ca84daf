from __future__ import annotations

import pytest

from prodready._course import Course
from prodready._learner import hint, render_progress, reset
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
