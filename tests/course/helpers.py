"""Shared by the course self-tests: the modules, and the alternative answers on file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
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
    source: str
    expect: str = ""  # for a wrong answer: part of the teaching message it must get


def alternatives(module: Module, kind: str) -> list[Alternative]:
    """The module's ``[[correct]]`` or ``[[wrong]]`` answers from its answers file."""
    path = ANSWERS / f"{module.name}.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return [Alternative(**entry) for entry in raw.get(kind, [])]


def rounds(alts: list[Alternative]) -> list[list[Alternative]]:
    """Batch answers so one grading run holds at most one answer per exercise."""
    batches: list[list[Alternative]] = []
    for alt in alts:
        for batch in batches:
            if all(other.exercise != alt.exercise for other in batch):
                batch.append(alt)
                break
        else:
            batches.append([alt])
    return batches


def solution_answers(course: Course, module: Module) -> dict[str, list[str]]:
    return learner_answers(read_notebook(course.solution(module)))
