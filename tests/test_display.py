"""A failed check in a notebook: the verdict in short lines, never a traceback through
the course's code, and still an error that fails the cell (grading depends on it)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from prodready._course import Course
from prodready._display import WIDTH, render_failure, wrap

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

LONG = (
    "OrderLine accepted qty='3' and stored 3. The contract says qty is an integer; a client "
    "that sends anything else should get an error it can fix, not an order silently "
    "converted into something it never sent."
)


def test_prose_wraps_between_words_and_code_lines_stay_whole() -> None:
    lines = wrap(
        LONG + "\n    result = OrderLine.model_validate(payload)  # an indented line stays"
    )
    assert all(len(line) <= WIDTH for line in lines[:-1])
    words = " ".join(lines[:-1]).split()
    assert words == LONG.split(), "no word is cut in two"
    assert lines[-1].startswith("    result = ")


def test_the_verdict_names_the_exercise_the_message_and_the_notebook_hint() -> None:
    text = _ANSI.sub("", render_failure("validation.strict_types", LONG, "debug 1\ndebug 2\n"))
    first, blank, *_ = text.splitlines()
    assert first == "✗ validation.strict_types: not passing yet" and blank == ""
    assert "While checking, your code printed:" in text and "    debug 2" in text
    assert text.rstrip().endswith(
        'Run hint("validation.strict_types") in a cell for the next hint.'
    )


def _run(cells: list[str], cwd: Path) -> list[nbformat.NotebookNode]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = NotebookClient(
        nb, kernel_name="python3", allow_errors=True, timeout=60,
        resources={"metadata": {"path": str(cwd)}},
    )  # fmt: skip
    client.execute()
    return list(nb.cells)


SETUP = """
from prodready import check
from prodready._check import checker, expect

@checker("unittest.double")
def _(double):
    expect(double(2) == 4, f"double(2) returned {double(2)!r}, expected 4. " * 4)
    return "doubles numbers"
"""


@pytest.mark.usefixtures("fixture_course")
def test_in_a_kernel_a_failure_is_an_error_without_the_courses_internals(tmp_path: Path) -> None:
    wrong = (
        "def wrong(x):\n    print('trying', x)\n    return x + 1\ncheck('unittest.double', wrong)"
    )
    right = "check('unittest.double', lambda x: 2 * x)"
    setup, failing, passing = _run([SETUP, wrong, right], tmp_path)
    assert not setup.outputs
    (error,) = [o for o in failing.outputs if o.output_type == "error"]
    assert error.ename == "ExerciseFailed"
    assert error.evalue.startswith("unittest.double: double(2) returned 3, expected 4.")
    shown = _ANSI.sub("", "\n".join(error.traceback))
    assert "Traceback" not in shown and "_check.py" not in shown and "✅" not in shown
    assert all(len(line) <= WIDTH for line in shown.splitlines())
    assert "trying 2" in shown and 'hint("unittest.double")' in shown
    assert [o.text for o in passing.outputs] == ["✅ unittest.double: passed. doubles numbers\n"]


def test_other_errors_keep_their_traceback(tmp_path: Path, fixture_course: Course) -> None:
    _, broken = _run([SETUP, "check('unittest.double', lambda x: 2 * x)\nraise KeyError('pct')"],
                     tmp_path)  # fmt: skip
    (error,) = [o for o in broken.outputs if o.output_type == "error"]
    assert error.ename == "KeyError" and "Traceback" in _ANSI.sub("", "\n".join(error.traceback))
