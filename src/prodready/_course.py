"""Where a course lives on disk: its folders, its catalogue and the learner's state."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ._catalogue import PACKAGE_CATALOGUE, Catalogue, Module, load_catalogue

COURSE_ENV = "PRODREADY_COURSE"  # an explicit course folder wins over discovery
STATE_ENV = "PRODREADY_STATE"  # where progress is kept (tests point it elsewhere)


class CourseNotFound(RuntimeError):
    pass


def _is_course(path: Path) -> bool:
    # A learner's hand-out copy may come without solutions/ (the instructor keeps them).
    return (path / "exercises").is_dir() and (
        (path / "solutions").is_dir() or (path / "notebooks").is_dir()
    )


def find_course_root(start: Path | None = None) -> Path:
    if explicit := os.environ.get(COURSE_ENV):
        root = Path(explicit).expanduser().resolve()
        if not _is_course(root):
            raise CourseNotFound(f"{COURSE_ENV}={explicit} has no exercises/ and solutions/")
        return root
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if _is_course(candidate):
            return candidate
    # An editable install (what `make` sets up) sits inside the course: src/prodready/.
    beside_package = Path(__file__).resolve().parents[2]
    if _is_course(beside_package):
        return beside_package
    # Installed outside the course (a hub image, Binder): a terminal opens in the home
    # folder, and nbgitpuller put the course in a folder of its own there.
    below = _courses_below(here)
    if len(below) == 1:
        return below[0]
    several = f" (there are {len(below)} below it: cd into one)" if below else ""
    raise CourseNotFound(
        f"no course folder (one with exercises/ and notebooks/) at or above {here}{several}; "
        f"cd into the course or set {COURSE_ENV}"
    )


def _courses_below(folder: Path) -> list[Path]:
    """The course folders directly inside ``folder`` (a learner's home on a hub)."""
    found: list[Path] = []
    try:
        children = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return found
    for child in children:
        with contextlib.suppress(OSError):  # a folder this user may not look into
            if _is_course(child):
                found.append(child)
    return found


@dataclass(frozen=True)
class Course:
    root: Path
    catalogue: Catalogue = field(default_factory=load_catalogue)

    @classmethod
    def discover(cls, catalogue_path: Path = PACKAGE_CATALOGUE) -> Course:
        return cls(find_course_root(), load_catalogue(catalogue_path))

    def lesson(self, module: Module) -> Path:
        return self.root / "notebooks" / f"{module.name}.ipynb"

    def workbook(self, module: Module) -> Path:
        return self.root / "exercises" / f"{module.name}.ipynb"

    def solution(self, module: Module) -> Path:
        return self.root / "solutions" / f"{module.name}.ipynb"

    def learner_files(self, module: Module) -> Path:
        """The folder of files a learner edits for a module whose answer includes files."""
        return self.root / "exercises" / module.name

    def reference_files(self, module: Module) -> Path:
        return self.root / "solutions" / module.name

    def starting_files(self, module: Module) -> Path:
        """The files as shipped: what `reset` restores and what a missing folder grades as."""
        return self.root / "solutions" / f"{module.name}.starting"

    def has_solutions(self) -> bool:
        return (self.root / "solutions").is_dir()

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def state(self) -> Path:
        explicit = os.environ.get(STATE_ENV)
        return Path(explicit) if explicit else self.root / ".prodready"


def data_path(*parts: str) -> Path:
    """A committed data file, for notebooks: ``data_path("orders_dirty.csv")``.

    Treat it as read-only; write into ``scratch_dir()`` instead.
    """
    path = find_course_root() / "data"
    for part in parts:
        path = path / part
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: is this a complete copy of the course?")
    return path


def scratch_dir(prefix: str = "prodready-") -> Path:
    """A fresh temporary folder for a notebook's files: never write into the course."""
    return Path(tempfile.mkdtemp(prefix=prefix))
