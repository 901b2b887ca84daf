"""A module whose answer is also a folder of files (the capstone's service): grading reads
the learner's folder next to their workbook, never writes it, and `reset` backs it up."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from prodready._catalogue import load_catalogue
from prodready._course import Course
from prodready._grading import grade_answers, grade_workbook
from prodready._learner import reset
from prodready._notebooks import build_workbook, write_notebook

CATALOGUE = """
[[module]]
number = "01"
slug = "service"
title = "A service in files"
files = true

[[module.exercise]]
id = "service.greeting"
title = "Greet from a module file"
hints = ["Look at greeting.py.", "Return the greeting with the name."]
"""
SETUP = '''from pathlib import Path
import importlib.util
from prodready import check
from prodready._check import checker, expect

@checker("service.greeting")
def _(folder):
    spec = importlib.util.spec_from_file_location("greeting", Path(folder) / "greeting.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expect(module.greet("Ada") == "Hello, Ada!", f"greet('Ada') gave {module.greet('Ada')!r}")
    return "greets from the file"'''
REFERENCE = 'def greet(name):\n    return f"Hello, {name}!"\n'
STARTING = 'def greet(name):\n    return "Hello"  # TODO\n'


@pytest.fixture
def files_course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Course:
    root = tmp_path / "course"
    for folder, text in (("01_service", REFERENCE), ("01_service.starting", STARTING)):
        (root / "solutions" / folder).mkdir(parents=True)
        (root / "solutions" / folder / "greeting.py").write_text(text, encoding="utf-8")
    (root / "catalogue.toml").write_text(CATALOGUE, encoding="utf-8")
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python",
                                  "name": "python3"}}  # fmt: skip
    answer = nbformat.v4.new_code_cell('FOLDER = "01_service"  # your files, beside the notebook')
    answer.metadata["prodready"] = {
        "exercise": "service.greeting", "role": "answer", "stub": 'FOLDER = "01_service"  # TODO',
    }  # fmt: skip
    check = nbformat.v4.new_code_cell('check("service.greeting", FOLDER)')
    check.metadata["prodready"] = {"exercise": "service.greeting", "role": "check"}
    check.outputs = [nbformat.v4.new_output(
        "stream", name="stdout", text="✅ service.greeting: passed. greets from the file\n"
    )]  # fmt: skip
    check.execution_count = 2
    nb.cells = [nbformat.v4.new_markdown_cell("# Files"), nbformat.v4.new_code_cell(SETUP),
                answer, check]  # fmt: skip
    (root / "exercises").mkdir()
    write_notebook(nb, root / "solutions" / "01_service.ipynb")
    write_notebook(build_workbook(nb), root / "exercises" / "01_service.ipynb")
    (root / "exercises" / "01_service").mkdir()
    (root / "exercises" / "01_service" / "greeting.py").write_text(STARTING, encoding="utf-8")
    monkeypatch.setenv("PRODREADY_STATE", str(tmp_path / "state"))
    return Course(root, load_catalogue(root / "catalogue.toml"))


def verdict(course: Course, folder: Path | None) -> str:
    module = course.catalogue.module("01")
    results, _ = grade_answers(course, module, {}, files=folder, timeout=10)
    return "pass" if results[0].passed else results[0].message


def test_the_reference_passes_the_starting_code_fails(files_course: Course) -> None:
    module = files_course.catalogue.module("01")
    assert verdict(files_course, files_course.reference_files(module)) == "pass"
    assert verdict(files_course, None) == "greet('Ada') gave 'Hello'"


def test_grading_reads_the_folder_beside_the_workbook_and_never_writes_it(
    files_course: Course, tmp_path: Path
) -> None:
    module = files_course.catalogue.module("01")
    learner = tmp_path / "alice" / "exercises"
    learner.mkdir(parents=True)
    (learner / "01_service.ipynb").write_bytes(files_course.workbook(module).read_bytes())
    (learner / "01_service").mkdir()
    (learner / "01_service" / "greeting.py").write_text(REFERENCE, encoding="utf-8")
    before = {p: p.read_bytes() for p in learner.rglob("*") if p.is_file()}
    assert grade_workbook(files_course, module, learner / "01_service.ipynb", timeout=10).passed
    assert {p: p.read_bytes() for p in learner.rglob("*") if p.is_file()} == before
    (learner / "01_service" / "greeting.py").unlink()
    (learner / "01_service").rmdir()
    missing = grade_workbook(files_course, module, learner / "01_service.ipynb", timeout=10)
    assert not missing.passed and "starting code of the service was graded" in missing.notice


def test_a_link_in_a_submission_is_not_followed(files_course: Course, tmp_path: Path) -> None:
    module = files_course.catalogue.module("01")
    folder = tmp_path / "mallory" / "01_service"
    folder.mkdir(parents=True)
    os.symlink(files_course.reference_files(module) / "greeting.py", folder / "greeting.py")
    assert "No such file" in verdict(files_course, folder)  # the link was left behind


def test_reset_of_the_module_backs_the_files_up_and_restores_them(files_course: Course) -> None:
    module = files_course.catalogue.module("01")
    mine = files_course.learner_files(module) / "greeting.py"
    mine.write_text(REFERENCE + "# my work\n", encoding="utf-8")
    message = reset(files_course, "01")
    assert mine.read_text(encoding="utf-8") == STARTING
    (saved,) = (files_course.state / "backups").glob("01_service.*[0-9]")
    assert (saved / "greeting.py").read_text(encoding="utf-8").endswith("# my work\n")
    assert str(saved) in message
    assert "unchanged" in reset(files_course, "service.greeting")
