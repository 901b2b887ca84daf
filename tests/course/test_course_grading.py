"""The grading promises, through the same core `prodready check` uses: solutions pass,
each shipped stub fails its own check and only its own, a different correct answer
passes, and a plausible wrong answer fails with a message that teaches."""

from __future__ import annotations

import pytest
from helpers import EXERCISES, MODULES, alternatives, rounds, solution_answers

from prodready._catalogue import Exercise, Module
from prodready._course import Course
from prodready._grading import ExerciseResult, grade_answers


def failures(results: tuple[ExerciseResult, ...]) -> dict[str, str]:
    return {r.exercise: r.message for r in results if not r.passed}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_solution_answers_pass_every_check(course: Course, module: Module) -> None:
    results, setup_problem = grade_answers(course, module, solution_answers(course, module))
    assert not setup_problem
    assert failures(results) == {}


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.id)
def test_shipped_stub_fails_its_own_check_and_only_its_own(
    course: Course, exercise: Exercise
) -> None:
    module = course.catalogue.module(exercise.module)
    answers = solution_answers(course, module)
    del answers[exercise.id]  # grading falls back to the shipped stub
    results, _ = grade_answers(course, module, answers)
    failed = failures(results)
    assert list(failed) == [exercise.id]
    assert failed[exercise.id].strip() and "Traceback" not in failed[exercise.id]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_different_correct_answers_pass(course: Course, module: Module) -> None:
    correct = alternatives(module, "correct")
    missing = {ex.id for ex in module.exercises} - {alt.exercise for alt in correct}
    assert not missing, f"no different-but-correct answer on file for {sorted(missing)}"
    for batch in rounds(correct):
        answers = solution_answers(course, module)
        answers.update({alt.exercise: [alt.source] for alt in batch})
        failed = failures(grade_answers(course, module, answers)[0])
        for alt in batch:
            assert alt.exercise not in failed, f"{alt.why}: {failed.get(alt.exercise)}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_plausible_wrong_answers_fail_with_their_teaching_message(
    course: Course, module: Module
) -> None:
    wrong = alternatives(module, "wrong")
    missing = {ex.id for ex in module.exercises} - {alt.exercise for alt in wrong}
    assert not missing, f"no plausible wrong answer on file for {sorted(missing)}"
    for batch in rounds(wrong):
        answers = solution_answers(course, module)
        answers.update({alt.exercise: [alt.source] for alt in batch})
        failed = failures(grade_answers(course, module, answers)[0])
        for alt in batch:
            assert alt.exercise in failed, f"wrong answer passed: {alt.why}"
            assert alt.expect and alt.expect in failed[alt.exercise], (
                f"{alt.why}: expected the message to mention {alt.expect!r}, "
                f"got {failed[alt.exercise]!r}"
            )
