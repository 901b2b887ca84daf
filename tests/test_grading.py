"""The grading core on the fixture course: verdicts per exercise id, whatever arrives."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from prodready._course import Course
from prodready._grading import grade_answers, grade_workbook
from prodready._notebooks import learner_answers, read_notebook, write_notebook


def verdicts(course: Course, answers: dict[str, list[str]], timeout: float = 10) -> dict[str, str]:
    module = course.catalogue.module("01")
    results, _ = grade_answers(course, module, answers, timeout=timeout)
    return {r.exercise: "pass" if r.passed else r.message for r in results}


def solved(course: Course) -> dict[str, list[str]]:
    return learner_answers(read_notebook(course.solution(course.catalogue.module("01"))))


def test_solution_passes_and_stubs_fail_with_their_checkers_messages(
    fixture_course: Course,
) -> None:
    assert set(verdicts(fixture_course, solved(fixture_course)).values()) == {"pass"}
    assert verdicts(fixture_course, {}) == {
        "fixture.add": "add(2, 3) returned -1, expected 5",
        "fixture.greet": "greet('Ada') returned 'Hello'",
        "fixture.total": "total([1, 2, 3]) should be 6",
    }


def test_hostile_answers_cost_only_their_own_exercise(fixture_course: Course) -> None:
    answers = solved(fixture_course)
    answers["fixture.add"] = ["def add(a, b):\n    while True:\n        pass"]
    answers["fixture.greet"] = ["import sys\nsys.exit(3)"]
    answers["fixture.total"] = ["def total(:"]
    got = verdicts(fixture_course, answers, timeout=3)
    assert got["fixture.add"].startswith("stopped after 3 s")
    assert got["fixture.greet"] == "your answer raised SystemExit: 3"
    assert got["fixture.total"].startswith("your answer raised SyntaxError: invalid syntax")
    assert "(line 1 of the cell)" in got["fixture.total"]


@pytest.mark.slow
def test_a_dead_kernel_fails_what_could_not_run(fixture_course: Course) -> None:
    answers = solved(fixture_course)
    answers["fixture.greet"] = ["import os\nos._exit(1)"]
    # nbval notices a dead kernel only when the cell's time limit runs out; a tight limit
    # on a loaded machine can run out before the kernel has even run the cell.
    got = verdicts(fixture_course, answers, timeout=30)
    assert got["fixture.add"] == "pass"
    assert got["fixture.greet"].startswith("the Python kernel died running this cell")
    assert got["fixture.total"] == "not checked: the Python kernel died in an earlier exercise"


def test_prints_warnings_and_stderr_do_not_fail_a_correct_answer(fixture_course: Course) -> None:
    answers = solved(fixture_course)
    answers["fixture.total"] = [
        "import sys, warnings\nprint('loading')\nwarnings.warn('careful')\n"
        "def total(values):\n    print('debug', values, file=sys.stderr)\n    return sum(values)"
    ]
    assert verdicts(fixture_course, answers)["fixture.total"] == "pass"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_workbook_is_read_never_written_and_tampered_checks_change_nothing(
    fixture_course: Course,
) -> None:
    module = fixture_course.catalogue.module("01")
    path = fixture_course.workbook(module)
    nb = read_notebook(path)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("prodready", {}).get("role") == "check":
            cell.source = "print('✅ passed')"
            cell.outputs = [nbformat.v4.new_output("stream", text="✅ passed\n")]
    write_notebook(nb, path)
    before = digest(path)
    grade = grade_workbook(fixture_course, module, path, timeout=10)
    assert grade.passed == 0
    assert digest(path) == before


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "is empty"), (b'{"cells": [', "not valid JSON"), (b"\x00\x01", "binary data")],
)
def test_an_unreadable_workbook_fails_every_exercise_with_the_reason(
    fixture_course: Course, content: bytes, problem: str
) -> None:
    module = fixture_course.catalogue.module("01")
    path = fixture_course.workbook(module)
    path.write_bytes(content)
    grade = grade_workbook(fixture_course, module, path)
    assert grade.passed == 0 and problem in grade.notice
    assert all(problem in r.message for r in grade.results)


def test_deleted_answer_cells_are_graded_as_stubs_and_say_how_to_restore(
    fixture_course: Course,
) -> None:
    module = fixture_course.catalogue.module("01")
    path = fixture_course.workbook(module)
    nb = read_notebook(fixture_course.solution(module))
    nb.cells = [
        c for c in nb.cells if c.metadata.get("prodready", {}).get("exercise") != "fixture.add"
    ]
    write_notebook(nb, path)
    results = {r.exercise: r for r in grade_workbook(fixture_course, module, path).results}
    assert results["fixture.greet"].passed and results["fixture.total"].passed
    assert "no answer cell" in results["fixture.add"].message
    assert "prodready reset fixture.add" in results["fixture.add"].message


def test_another_modules_workbook_under_this_name_is_named(fixture_course: Course) -> None:
    module = fixture_course.catalogue.module("01")
    path = fixture_course.workbook(module)
    nb = read_notebook(path)
    for cell in nb.cells:
        meta = cell.metadata.get("prodready")
        if meta:
            meta["exercise"] = meta["exercise"].replace("fixture.", "sessions.")
    write_notebook(nb, path)
    grade = grade_workbook(fixture_course, module, path)
    assert grade.passed == 0
    assert "holds answers for sessions, not for 01_fixture" in grade.notice


@pytest.mark.parametrize(
    "first_import",
    [
        # the grader's test run: its plugin is loaded with -p, before nbval's entry point
        "prodready._nbval_report, nbval.plugin",
        # the `prodready` command, which reads and writes notebooks before any run starts
        "prodready._cli",
    ],
)
def test_reading_notebooks_never_builds_the_grammar_nbformat_never_uses(first_import: str) -> None:
    # rfc3987_syntax builds a grammar on import: about a second of CPU each time
    probe = (
        f"import sys, {first_import}, nbformat; "
        "nbformat.validate(nbformat.v4.new_notebook()); "
        "print(sys.modules.get('rfc3987_syntax'))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "None"


def test_the_first_kernel_boots_as_the_plugin_loads_in_its_notebooks_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prodready import _nbval_report
    from prodready._check import FIRST_KERNEL_ENV

    monkeypatch.delenv(FIRST_KERNEL_ENV, raising=False)
    assert _nbval_report._start_first_kernel() is None  # not a grading run: nothing starts
    monkeypatch.setenv(FIRST_KERNEL_ENV, str(tmp_path))
    started = _nbval_report._start_first_kernel()
    assert started is not None and started[0] == str(tmp_path)
    assert FIRST_KERNEL_ENV not in os.environ  # the kernels it starts do not see it
    kernel = started[1].result(timeout=60)
    try:
        msg_id = kernel.execute_cell_input("import os; print(os.getcwd())", allow_stdin=False)
        kernel.await_reply(msg_id, timeout=30)
        printed = ""
        while True:
            msg = kernel.get_message("iopub", timeout=10)
            if msg["msg_type"] == "stream":
                printed += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert printed.strip() == os.path.realpath(tmp_path)
    finally:
        kernel.stop()
