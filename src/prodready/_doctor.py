"""``prodready doctor``: find what stops the course working here, and say how to fix it."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._catalogue import CatalogueError, load_catalogue
from ._course import Course, CourseNotFound, find_course_root
from ._notebooks import NotebookError, read_notebook

SUPPORTED = ((3, 11), (3, 13))
REBUILD = "run `make clean && make test` in the course folder to rebuild .venv"


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    fix: str = ""


def pinned_versions(constraints: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line):
            pins[_normal(match[1])] = match[2]
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _python() -> Iterator[Finding]:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = SUPPORTED[0] <= sys.version_info[:2] <= SUPPORTED[1]
    yield Finding(
        ok,
        f"Python {version} at {sys.executable}",
        ""
        if ok
        else (
            "the course supports Python 3.11 to 3.13: `make clean && make test PYTHON=python3.12`"
        ),
    )
    in_venv = sys.prefix != sys.base_prefix
    yield Finding(
        in_venv,
        "running inside a virtual environment",
        ""
        if in_venv
        else ("use the course's own environment: `make lab`, or `.venv/bin/prodready`"),
    )


def _packages(root: Path) -> Iterator[Finding]:
    constraints = root / "constraints.txt"
    if not constraints.exists():
        yield Finding(False, "constraints.txt is missing", "restore it from the course repository")
        return
    pins = pinned_versions(constraints)
    wanted = [_normal(re.split(r"[\[<>=;\s]", r)[0]) for r in _requirements()]
    wrong = []
    for name in wanted:
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            wrong.append(f"{name} is not installed")
            continue
        if name in pins and installed != pins[name]:
            wrong.append(f"{name} {installed} (course pins {pins[name]})")
    yield Finding(
        not wrong,
        f"{len(wanted)} course packages at their pinned versions"
        if not wrong
        else "packages differ from constraints.txt: " + "; ".join(wrong),
        "" if not wrong else f"stored outputs quote these libraries' messages; {REBUILD}",
    )


def _requirements() -> list[str]:
    requires = importlib.metadata.requires("prodready") or []
    return [r for r in requires if "extra ==" not in r]


def _course(root: Path) -> Iterator[Finding]:
    try:
        catalogue = load_catalogue()
    except CatalogueError as e:
        yield Finding(
            False, str(e), "the package is damaged: reinstall with `make clean && make test`"
        )
        return
    course = Course(root, catalogue)
    yield Finding(True, f"course at {root}: {len(catalogue.exercises)} exercises")
    for module in catalogue:
        for kind, path in (
            ("lesson", course.lesson(module)),
            ("solution", course.solution(module)),
        ):
            try:
                read_notebook(path)
            except NotebookError as e:
                yield Finding(
                    False,
                    f"{kind}: {e}",
                    "restore it with `git checkout -- " + f"{path.relative_to(root)}`",
                )
        try:
            read_notebook(course.workbook(module))
        except NotebookError as e:
            yield Finding(
                False,
                f"workbook: {e}",
                f"`prodready reset {module.number}` restores it and backs up what is there",
            )
    state = course.state
    try:
        state.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state):
            pass
        yield Finding(True, f"progress can be saved in {state}")
    except OSError as e:
        yield Finding(
            False,
            f"cannot write progress to {state}: {e.strerror}",
            "make the course folder writable (or set PRODREADY_STATE to a folder)",
        )


def _kernel() -> Iterator[Finding]:
    try:
        from jupyter_client.manager import start_new_kernel
    except ImportError:
        yield Finding(False, "jupyter_client is not installed", REBUILD)
        return
    try:
        # The kernel's own start-up chatter on stderr is not a finding.
        manager, client = start_new_kernel(
            kernel_name="python3", startup_timeout=60, stderr=subprocess.DEVNULL
        )
    except Exception as e:
        yield Finding(False, f"a Jupyter kernel would not start: {e}", REBUILD)
        return
    capture = _Capture()
    try:
        reply = client.execute_interactive(
            "import sys, prodready; print(sys.executable)", timeout=30, output_hook=capture
        )
        kernel_python = capture.text.strip()
        ok = reply["content"]["status"] == "ok" and os.path.samefile(kernel_python, sys.executable)
    except Exception as e:
        ok, kernel_python = False, f"error: {e}"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    yield Finding(
        ok,
        f"the python3 kernel runs {kernel_python}",
        ""
        if ok
        else (
            "notebooks would run another Python than the course's: remove the stray kernelspec "
            "(`jupyter kernelspec list`) or start JupyterLab with `make lab`"
        ),
    )


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def __call__(self, msg: dict[str, object]) -> None:
        content = msg.get("content")
        if msg.get("msg_type") == "stream" and isinstance(content, dict):
            self.text += str(content.get("text", ""))


def diagnose(with_kernel: bool = True) -> list[Finding]:
    findings = list(_python())
    try:
        root = find_course_root()
    except CourseNotFound as e:
        return [*findings, Finding(False, str(e), "run prodready from inside the course folder")]
    findings += _packages(root)
    findings += _course(root)
    if with_kernel:
        findings += _kernel()
    return findings


def render(findings: list[Finding]) -> str:
    lines = ["prodready doctor"]
    for f in findings:
        lines.append(f"  {'✓' if f.ok else '✗'} {f.what}")
        if f.fix:
            lines.append(f"      fix: {f.fix}")
    bad = sum(not f.ok for f in findings)
    lines.append("All good." if not bad else f"{bad} problem(s) found.")
    return "\n".join(lines)
