"""The grading promises, through the same core `prodready check` uses: solutions pass,
each shipped stub fails its own check and only its own, a different correct answer
passes, and a plausible wrong answer fails with a message that teaches.

Each course module's answers are tried in one kernel (see `prodready._trials`), and each
module is a test class of its own, so the modules are graded in parallel.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import MODULES, Alternative, alternatives, answer_files, solution_answers

from prodready._catalogue import Module
from prodready._course import Course
from prodready._grading import ExerciseResult, grade_answers
from prodready._notebooks import read_notebook, stubs
from prodready._trials import Trial, grade_trials


@dataclass
class Graded:
    solution: dict[str, ExerciseResult]
    stubs: dict[str, dict[str, ExerciseResult]]  # exercise -> results of the stub's replay
    answers: dict[tuple[str, str, str], ExerciseResult]  # key(alternative) -> its result


def key(alt: Alternative) -> tuple[str, str, str]:
    return alt.exercise, alt.why, alt.source


KERNELS = 2  # a module's trials run in this many kernels at once: they mostly wait


def _in_kernels(
    course: Course, module: Module, trials: list[Trial], files: Path | None
) -> tuple[dict[str, ExerciseResult], list[dict[str, ExerciseResult]]]:
    """`grade_trials`, with the trials dealt out in turn to KERNELS kernels running at the
    same time. Each kernel grades the solution first; a check it fails in any of them is
    a failure of the solution."""
    shares = [trials[k::KERNELS] for k in range(KERNELS)]
    with ThreadPoolExecutor(KERNELS) as pool:
        outcomes = list(
            pool.map(lambda share: grade_trials(course, module, share, files=files), shares)
        )
    solved: dict[str, ExerciseResult] = {}
    for solution, _ in outcomes:
        for exercise, result in solution.items():
            if exercise not in solved or not result.passed:
                solved[exercise] = result
    results: list[dict[str, ExerciseResult]] = [{} for _ in trials]
    for k, (_, share) in enumerate(outcomes):
        for n, result in enumerate(share):
            results[k + n * KERNELS] = result
    return solved, results


FILE_GRADINGS = 4  # a module whose answer is files: gradings at once (they mostly wait)


def grade_module(course: Course, module: Module, alts: list[Alternative], tmp: Path) -> Graded:
    if module.files:
        return _grade_files_module(course, module, alts, tmp)
    shipped = stubs(read_notebook(course.solution(module)))
    in_cells = [alt for alt in alts if not alt.files]
    trials = [Trial({ex: sources}, replay=True) for ex, sources in shipped.items()]
    trials += [Trial({alt.exercise: [alt.source]}) for alt in in_cells]
    solved, results = _in_kernels(course, module, trials, None)
    graded = Graded(solved, {}, {})
    for exercise, result in zip(shipped, results, strict=False):
        graded.stubs[exercise] = result
    for alt, result in zip(in_cells, results[len(trials) - len(in_cells) :], strict=True):
        graded.answers[key(alt)] = result[alt.exercise]
    return graded


def _grade_files_module(
    course: Course, module: Module, alts: list[Alternative], tmp: Path
) -> Graded:
    """The solution, the shipped files (every stub at once: they share the files) and each
    change to the files, each graded in a kernel of its own, FILE_GRADINGS at a time.
    Answers with the same files and cells are graded once: a run of the capstone's report
    takes tens of seconds, most of them waiting on its service."""
    in_cells = [alt for alt in alts if not alt.files]
    reference = answer_files(course, module, [], tmp)
    runs: dict[str, tuple[dict[str, list[str]], Path | None]] = {}
    same_as: dict[tuple[str, str, str], str] = {}
    for alt in alts:
        if alt.files:
            answers = alt.answers(solution_answers(course, module))
            same = hashlib.sha1(repr((sorted(alt.files.items()), answers)).encode()).hexdigest()
            if same not in runs:
                runs[same] = answers, answer_files(course, module, [alt], tmp / same)
            same_as[key(alt)] = same

    def solution() -> tuple[dict[str, ExerciseResult], list[dict[str, ExerciseResult]]]:
        trials = [Trial({alt.exercise: [alt.source]}) for alt in in_cells]
        return grade_trials(course, module, trials, files=reference)

    def graded_files(answers: dict[str, list[str]], files: Path | None) -> list[ExerciseResult]:
        return grade_answers(course, module, answers, files=files)[0]

    with ThreadPoolExecutor(FILE_GRADINGS) as pool:
        solved = pool.submit(solution)
        as_shipped = pool.submit(grade_answers, course, module, {})
        by_files = {same: pool.submit(graded_files, *run) for same, run in runs.items()}
        (solution_results, in_cell_results) = solved.result()
        graded = Graded(solution_results, {}, {})
        graded.stubs = {r.exercise: {r.exercise: r} for r in as_shipped.result()[0]}
        for alt, result in zip(in_cells, in_cell_results, strict=True):
            graded.answers[key(alt)] = result[alt.exercise]
        for alt in alts:
            if alt.files:
                results = by_files[same_as[key(alt)]].result()
                graded.answers[key(alt)] = next(r for r in results if r.exercise == alt.exercise)
    return graded


def _label(alt: Alternative) -> str:
    return f"{alt.exercise}: {alt.why[:60]}"


def _module_class(module: Module) -> type:
    correct, wrong = alternatives(module, "correct"), alternatives(module, "wrong")

    class SelfTests:
        @pytest.fixture(scope="class")
        @classmethod
        def graded(cls, course: Course, tmp_path_factory: pytest.TempPathFactory) -> Graded:
            tmp = tmp_path_factory.mktemp(module.name)
            return grade_module(course, module, correct + wrong, tmp)

        def test_the_solution_passes_every_check(self, graded: Graded) -> None:
            assert {ex: r.message for ex, r in graded.solution.items() if not r.passed} == {}
            assert set(graded.solution) == {ex.id for ex in module.exercises}

        @pytest.mark.parametrize("exercise", [ex.id for ex in module.exercises])
        def test_the_shipped_stub_fails_its_own_check_and_only_its_own(
            self, graded: Graded, exercise: str
        ) -> None:
            results = graded.stubs[exercise]
            own = results[exercise]
            assert not own.passed, f"{exercise}: the shipped starting code passes its check"
            assert own.message.strip() and "Traceback" not in own.message
            others = {ex: r.message for ex, r in results.items() if ex != exercise and not r.passed}
            assert others == {}, f"the stub of {exercise} also fails other checks"

        def test_every_exercise_has_a_correct_and_a_wrong_answer_on_file(self) -> None:
            ids = {ex.id for ex in module.exercises}
            assert ids - {alt.exercise for alt in correct} == set(), "a correct answer missing"
            assert ids - {alt.exercise for alt in wrong} == set(), "a wrong answer missing"

        @pytest.mark.parametrize("alt", correct, ids=_label)
        def test_a_different_correct_answer_passes(self, graded: Graded, alt: Alternative) -> None:
            result = graded.answers[key(alt)]
            assert result.passed, f"{alt.why}: {result.verdict}: {result.message}"

        @pytest.mark.parametrize("alt", wrong, ids=_label)
        def test_a_plausible_wrong_answer_fails_with_its_teaching_message(
            self, graded: Graded, alt: Alternative
        ) -> None:
            result = graded.answers[key(alt)]
            assert not result.passed, f"wrong answer passed: {alt.why}"
            assert alt.expect and alt.expect in result.message, (
                f"{alt.why}: expected the message to mention {alt.expect!r}, got {result.message!r}"
            )

    SelfTests.__name__ = SelfTests.__qualname__ = f"TestModule{module.name}"
    return SelfTests


for _module in MODULES:
    globals()[f"TestModule{_module.name}"] = _module_class(_module)
