"""The ordered catalogue: modules, exercises and their progressive hints.

The TOML file's order is the learning order. Hints live only there.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE_CATALOGUE = Path(__file__).with_name("catalogue.toml")

_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
_NUMBER = re.compile(r"^\d\d$")


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message lists every problem found."""


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    hints: tuple[str, ...]
    module: str  # the module's slug


@dataclass(frozen=True)
class Module:
    number: str
    slug: str
    title: str
    exercises: tuple[Exercise, ...]
    # A module whose answer is also a folder of files the learner edits (the capstone's
    # service): exercises/<name>/, with the reference in solutions/<name>/ and the shipped
    # starting code in solutions/<name>.starting/. Empty for notebook-only modules.
    files: bool = False

    @property
    def name(self) -> str:
        """The notebook stem shared by lesson, workbook and solution: ``01_validation``."""
        return f"{self.number}_{self.slug}"


@dataclass(frozen=True)
class Catalogue:
    modules: tuple[Module, ...]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.modules)

    @property
    def exercises(self) -> tuple[Exercise, ...]:
        return tuple(ex for module in self.modules for ex in module.exercises)

    def exercise(self, exercise_id: str) -> Exercise:
        for ex in self.exercises:
            if ex.id == exercise_id:
                return ex
        raise KeyError(f"no exercise {exercise_id!r}; `prodready progress` lists them all")

    def module(self, key: str) -> Module:
        """Find a module by number (``01``/``1``), slug or notebook name."""
        for module in self.modules:
            if key in (module.number, module.slug, module.name) or (
                key.isdigit() and int(key) == int(module.number)
            ):
                return module
        known = ", ".join(m.name for m in self.modules)
        raise KeyError(f"no module {key!r}; the modules are: {known}")

    def module_of(self, exercise_id: str) -> Module:
        return self.module(self.exercise(exercise_id).module)

    def select(self, key: str | None) -> tuple[Module, tuple[Exercise, ...]]:
        """Resolve a CLI target (module or exercise id) to its module and exercises."""
        if key is None:
            raise KeyError("name a module or an exercise id")
        if "." in key:
            return self.module_of(key), (self.exercise(key),)
        module = self.module(key)
        return module, module.exercises


def load_catalogue(path: Path = PACKAGE_CATALOGUE) -> Catalogue:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CatalogueError(f"cannot read catalogue {path}: {e}") from e
    return parse_catalogue(raw, source=str(path))


def parse_catalogue(raw: dict[str, Any], source: str = "catalogue") -> Catalogue:
    problems: list[str] = []
    modules: list[Module] = []
    seen_ids: set[str] = set()
    seen_modules: set[str] = set()
    for m_index, m in enumerate(raw.get("module", [])):
        where = f"module #{m_index + 1}"
        number, slug, title = (str(m.get(k, "")) for k in ("number", "slug", "title"))
        if not _NUMBER.match(number):
            problems.append(f"{where}: number must be two digits, got {number!r}")
        if not _SLUG.match(slug):
            problems.append(f"{where}: slug must be lower_snake_case, got {slug!r}")
        if not title:
            problems.append(f"{where}: title is missing")
        if number in seen_modules or slug in seen_modules:
            problems.append(f"{where}: number {number!r} or slug {slug!r} is used twice")
        seen_modules.update((number, slug))
        exercises: list[Exercise] = []
        for e in m.get("exercise", []):
            ex_id, ex_title = str(e.get("id", "")), str(e.get("title", ""))
            hints = tuple(str(h).strip() for h in e.get("hints", []))
            if not _ID.match(ex_id) or not ex_id.startswith(f"{slug}."):
                problems.append(f"{where}: exercise id {ex_id!r} must look like '{slug}.name'")
            if ex_id in seen_ids:
                problems.append(f"{where}: exercise id {ex_id!r} is used twice")
            seen_ids.add(ex_id)
            if not ex_title:
                problems.append(f"{ex_id}: title is missing")
            if not 2 <= len(hints) <= 3 or not all(hints):
                problems.append(f"{ex_id}: needs 2 or 3 non-empty hints, has {len(hints)}")
            exercises.append(Exercise(ex_id, ex_title, hints, slug))
        files = m.get("files", False)
        if not isinstance(files, bool):
            problems.append(f"{where}: files must be true or false, got {files!r}")
        modules.append(Module(number, slug, title, tuple(exercises), files is True))
    numbers = [m.number for m in modules]
    if numbers != sorted(numbers):
        problems.append(f"modules must be listed in learning order, got {numbers}")
    if not modules:
        problems.append("no [[module]] entries")
    if problems:
        raise CatalogueError(f"{source} is invalid:\n  - " + "\n  - ".join(problems))
    return Catalogue(tuple(modules))
