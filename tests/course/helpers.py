"""Shared by the course self-tests: the modules, and the alternative answers on file."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from prodready._catalogue import Module, load_catalogue
from prodready._course import Course
from prodready._notebooks import learner_answers, read_notebook

ANSWERS = Path(__file__).with_name("answers")
MODULES = list(load_catalogue())
EXERCISES = [ex for module in MODULES for ex in module.exercises]


@dataclass(frozen=True)
class Alternative:
    exercise: str
    why: str
    source: str = ""  # the answer cell; empty: the solution's, for a change in files only
    expect: str = ""  # for a wrong answer: part of the teaching message it must get
    files: dict[str, str] = field(default_factory=dict)  # path -> content, over the reference

    def answers(self, base: dict[str, list[str]]) -> dict[str, list[str]]:
        return {**base, self.exercise: [self.source]} if self.source else dict(base)


def alternatives(module: Module, kind: str) -> list[Alternative]:
    """The module's ``[[correct]]`` or ``[[wrong]]`` answers from its answers file."""
    path = ANSWERS / f"{module.name}.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    overlays: dict[str, dict[str, str]] = raw.get("overlay", {})
    found = []
    for entry in raw.get(kind, []):
        entry = dict(entry)
        if "overlay" in entry:  # a set of files several entries share: see the answers file
            entry["files"] = {**overlays[entry.pop("overlay")], **entry.get("files", {})}
        found.append(Alternative(**entry))
    return found


def rounds(alts: list[Alternative]) -> list[list[Alternative]]:
    """Batch answers so one grading run holds at most one answer per exercise, and at most
    one change to a module's files (two could touch the same file)."""
    batches: list[list[Alternative]] = []
    for alt in alts:
        for batch in batches:
            clash = alt.files and any(other.files for other in batch)
            if not clash and all(other.exercise != alt.exercise for other in batch):
                batch.append(alt)
                break
        else:
            batches.append([alt])
    return batches


def solution_answers(course: Course, module: Module) -> dict[str, list[str]]:
    return learner_answers(read_notebook(course.solution(module)))


def answer_files(course: Course, module: Module, alts: list[Alternative], tmp: Path) -> Path | None:
    """For a module whose answer includes files: the reference's files with the changes of
    ``alts`` written over them; None for a notebook-only module."""
    if not module.files:
        return None
    folder = tmp / module.name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(course.reference_files(module), folder)
    for alt in alts:
        for relative, content in alt.files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(content, encoding="utf-8")
    return folder
