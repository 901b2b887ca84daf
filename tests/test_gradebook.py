"""Class grading on the fixture course: one run over good, partial, stub and hostile
submissions gives the right verdict per exercise, never crashes, never hangs past the
timeout, and leaves every submission byte-identical."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from prodready import _cli
from prodready._course import Course
from prodready._gradebook import (
    _chunks,
    find_submissions,
    grade_class,
    read_grades,
    shard,
    write_gradebook,
)
from prodready._notebooks import build_workbook, cell_role, read_notebook

Edit = Callable[[nbformat.NotebookNode], None]


def answer(exercise: str, source: str) -> Edit:
    def edit(nb: nbformat.NotebookNode) -> None:
        for cell in nb.cells:
            if cell_role(cell) == (exercise, "answer"):
                cell.source = source

    return edit


SOLVED = {
    "fixture.add": "def add(a, b):\n    return b + a",
    "fixture.greet": "def greet(name):\n    return 'Hello, ' + name + '!'",
    "fixture.total": (
        "def total(values):\n    result = 0\n    for v in values:\n        result += v\n"
        "    return result"
    ),
}


def solved(*skip: str) -> list[Edit]:
    return [answer(ex, src) for ex, src in SOLVED.items() if ex not in skip]


def write_learner(
    class_dir: Path,
    learner: str,
    content: bytes | list[Edit],
    course: Course,
    layout: str = "exercises",
) -> Path:
    folder = class_dir / learner / layout if layout else class_dir / learner
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "01_fixture.ipynb"
    if isinstance(content, bytes):
        path.write_bytes(content)
        return path
    nb = build_workbook(read_notebook(course.solution(course.catalogue.module("01"))))
    for edit in content:
        edit(nb)
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path


def tamper_checks(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if (cell_role(cell) or ("", ""))[1] == "check":
            cell.source = "print('✅ passed')"


def copy_solution_outputs(course: Course) -> Edit:
    solution = read_notebook(course.solution(course.catalogue.module("01")))

    def edit(nb: nbformat.NotebookNode) -> None:
        for mine, theirs in zip(nb.cells, solution.cells, strict=True):
            if mine.cell_type == "code":
                mine.outputs, mine.execution_count = theirs.outputs, theirs.execution_count

    return edit


def shuffle_and_duplicate(nb: nbformat.NotebookNode) -> None:
    nb.cells = list(reversed(nb.cells)) + [
        c for c in nb.cells if cell_role(c) == ("fixture.add", "answer")
    ]


def delete_answer(exercise: str) -> Edit:
    def edit(nb: nbformat.NotebookNode) -> None:
        nb.cells = [c for c in nb.cells if cell_role(c) != (exercise, "answer")]

    return edit


def other_module(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if meta := cell.metadata.get("prodready"):
            meta["exercise"] = meta["exercise"].replace("fixture.", "sessions.")


def build_class(class_dir: Path, course: Course) -> dict[str, str]:
    """Learners and the verdicts they must get: P for pass, F for fail (add, greet, total)."""
    v3 = json.dumps({"cells": [], "metadata": {}, "nbformat": 3, "nbformat_minor": 0}).encode()
    cases: dict[str, tuple[bytes | list[Edit], str]] = {
        "good": (solved(), "PPP"),
        "partial": (solved("fixture.greet"), "PFP"),
        "stub": ([], "FFF"),
        "invalid-json": (b'{"cells": [', "FFF"),
        "empty": (b"", "FFF"),
        "binary": (bytes(range(256)), "FFF"),
        "nbformat-v3": (v3, "FFF"),
        "other-module": ([*solved(), other_module], "FFF"),
        "shuffled": ([*solved(), shuffle_and_duplicate], "PPP"),
        "deleted-cell": ([*solved(), delete_answer("fixture.greet")], "PFP"),
        "edited-checks": ([tamper_checks], "FFF"),
        "copied-outputs": ([copy_solution_outputs(course)], "FFF"),
        "infinite-loop": ([*solved(), answer("fixture.add", "while True:\n    pass")], "FPP"),
        "sys-exit": ([*solved(), answer("fixture.greet", "import sys\nsys.exit(1)")], "PFP"),
        "os-exit": ([*solved(), answer("fixture.greet", "import os\nos._exit(0)")], "PFF"),
        "huge-output": (
            [*solved(), answer("fixture.add", "print('x' * 50_000_000)\n" + SOLVED["fixture.add"])],
            "PPP",
        ),
        "noisy": (
            [
                *solved(),
                answer(
                    "fixture.total",
                    "import sys, warnings\n"
                    "warnings.warn('w')\nprint('e', file=sys.stderr)\n" + SOLVED["fixture.total"],
                ),
            ],
            "PPP",
        ),
        "rebinds-check": (
            [
                *solved(),
                answer(
                    "fixture.add",
                    "def check(*args):\n"
                    "    print('✅ fixture.add: passed. add(2, 3) == 5')\n" + SOLVED["fixture.add"],
                ),
            ],
            "FPP",
        ),
    }
    for learner, (content, _) in cases.items():
        write_learner(
            class_dir, learner, content, course, layout="" if learner == "good" else "exercises"
        )
    return {learner: expected for learner, (_, expected) in cases.items()}


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::nbformat.warnings.DuplicateCellId")  # built on purpose
def test_a_hostile_class_grades_in_one_run_with_the_right_verdicts(
    fixture_course: Course, tmp_path: Path
) -> None:
    class_dir = tmp_path / "class"
    expected = build_class(class_dir, fixture_course)
    before = digests(class_dir)
    started = time.monotonic()
    submissions = find_submissions(fixture_course, [class_dir])
    rows = grade_class(fixture_course, submissions, jobs=2, timeout=5)
    elapsed = time.monotonic() - started
    assert digests(class_dir) == before, "submissions must be byte-identical afterwards"
    got: dict[str, str] = {}
    for row in rows:
        got[row.learner] = got.get(row.learner, "") + ("P" if row.passed else "F")
    assert got == expected
    by_key = {(r.learner, r.exercise): r.message for r in rows}
    assert "not valid JSON" in by_key[("invalid-json", "fixture.add")]
    assert "format v3" in by_key[("nbformat-v3", "fixture.add")]
    assert "holds answers for sessions" in by_key[("other-module", "fixture.add")]
    assert by_key[("infinite-loop", "fixture.add")].startswith("stopped after 5 s")
    assert "kernel died" in by_key[("os-exit", "fixture.greet")]
    assert "rebinds the course's check" in by_key[("rebinds-check", "fixture.add")]
    assert elapsed < 600, "no hang past the timeouts"

    out = tmp_path / "out"
    write_gradebook(fixture_course, rows, out)
    assert read_grades(out / "grades.csv") == [
        r.__class__(
            r.learner, r.module, r.exercise, r.passed, round(r.seconds, 2), r.message, r.verdict
        )
        for r in rows
    ]
    with (out / "summary.csv").open(newline="", encoding="utf-8") as f:
        summary = {line["learner"]: line for line in csv.DictReader(f)}
    assert summary["partial"]["01_fixture"] == "2/3" and summary["good"]["percent"] == "100"
    assert summary["rebinds-check"]["flagged"] == "1" and summary["good"]["flagged"] == "0"
    page = (out / "feedback" / "partial.html").read_text(encoding="utf-8")
    assert "fixture.greet" in page and "An f-string helps." in page  # first hint only
    assert "Return f" not in page and "Mind the comma" not in page  # later hints withheld
    solution_text = fixture_course.solution(fixture_course.catalogue.module("01")).read_text()
    for secret in ("return a + b", "return sum(values)", "_check_greet", "expect("):
        assert secret in solution_text and secret not in page
    assert {p.name for p in (out / "feedback").iterdir()} == {f"{name}.html" for name in expected}


@pytest.mark.slow
def test_rerunning_replaces_the_gradebook_and_shards_merge_to_the_same_result(
    fixture_course: Course,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class_dir = tmp_path / "class"
    for learner, content in {"ann": solved(), "bob": [], "cy": solved("fixture.add")}.items():
        write_learner(class_dir, learner, content, fixture_course)
    monkeypatch.setattr(_cli.Course, "discover", classmethod(lambda cls: fixture_course))
    whole, parts = tmp_path / "whole", [tmp_path / "shard1", tmp_path / "shard2"]
    assert _cli.main(["grade", str(class_dir), "--out", str(whole), "--jobs", "2"]) == 0
    (whole / "feedback" / "stale.html").write_text("old")
    assert _cli.main(["grade", str(class_dir), "--out", str(whole), "--jobs", "2"]) == 0
    assert not (whole / "feedback" / "stale.html").exists(), "a re-run replaces, never appends"
    for k, part in enumerate(parts, start=1):
        assert _cli.main(["grade", str(class_dir), "--out", str(part), "--shard", f"{k}/2"]) == 0
    merged = tmp_path / "merged"
    assert _cli.main(["grade", "--merge", *map(str, parts), "--out", str(merged)]) == 0

    def results(folder: Path) -> list[tuple[str, str, str, bool, str]]:
        return [
            (r.learner, r.module, r.exercise, r.passed, r.message)
            for r in read_grades(folder / "grades.csv")
        ]

    assert results(merged) == results(whole)
    assert (merged / "summary.csv").read_text() == (whole / "summary.csv").read_text()
    assert sorted(p.name for p in (merged / "feedback").iterdir()) == [
        "ann.html",
        "bob.html",
        "cy.html",
    ]
    assert "graded 3 notebooks of 3 learners" in capsys.readouterr().out


def test_shards_are_deterministic_and_cover_every_learner_once(
    fixture_course: Course, tmp_path: Path
) -> None:
    class_dir = tmp_path / "class"
    for learner in ["a", "b", "c", "d", "e"]:
        write_learner(class_dir, learner, [], fixture_course)
    submissions = find_submissions(fixture_course, [class_dir])
    slices = [[s.learner for s in shard(submissions, k, 3)] for k in (1, 2, 3)]
    assert sorted(learner for part in slices for learner in part) == ["a", "b", "c", "d", "e"]
    assert slices == [[s.learner for s in shard(submissions, k, 3)] for k in (1, 2, 3)]
    with pytest.raises(ValueError, match="between 1 and N"):
        shard(submissions, 4, 3)


@pytest.mark.parametrize(("notebooks", "workers"), [(63, 2), (210, 2), (7, 2), (100, 8), (1, 4)])
def test_chunks_share_start_up_yet_shrink_so_no_worker_finishes_alone(
    notebooks: int, workers: int
) -> None:
    chunks = _chunks(list(range(notebooks)), workers)
    assert [n for chunk in chunks for n in chunk] == list(range(notebooks))  # all, once, in order
    sizes = [len(chunk) for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) <= 8
    assert sizes[-workers:] == [1] * min(workers, notebooks)  # the tail is one notebook each
    assert len(chunks) < notebooks or notebooks <= 2 * workers  # big classes share runs


def test_submissions_are_found_by_name_whatever_the_layout(
    fixture_course: Course, tmp_path: Path
) -> None:
    class_dir = tmp_path / "class"
    write_learner(class_dir, "flat", [], fixture_course, layout="")
    write_learner(class_dir, "nested", [], fixture_course, layout="work/week1/exercises")
    write_learner(class_dir, "twice", [], fixture_course, layout="exercises")
    write_learner(class_dir, "twice", [], fixture_course, layout="old/copy")
    (class_dir / "nobody").mkdir()
    found = {s.learner: s for s in find_submissions(fixture_course, [class_dir])}
    assert set(found) == {"flat", "nested", "twice"}
    assert found["twice"].path and found["twice"].path.parent.name == "exercises"
    assert "several copies found" in found["twice"].note
    nested = found["nested"].path
    assert nested is not None
    single = find_submissions(fixture_course, [nested])
    assert [s.learner for s in single] == ["week1"]
