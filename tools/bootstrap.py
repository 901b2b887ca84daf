"""Set up and run the course with Python alone: no `make` needed (Windows, or any machine).

    python tools/bootstrap.py            # create .venv and install the pinned stack (once)
    python tools/bootstrap.py lab        # the same, then open JupyterLab (what `make lab` does)
    python tools/bootstrap.py doctor     # the same, then `prodready doctor`

On Windows, `py -3.12 tools\\bootstrap.py lab` picks the Python. It does what the Makefile
does, in the same files: `.venv/` in the course folder (`.venv\\Scripts\\` on Windows), the
packages from `-c constraints.txt -e .[dev]` (with uv where it can be had, else pip), and the
`.venv/.installed` stamp, so `make` and this script can take turns. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUPPORTED = ((3, 11), (3, 13))  # tools/check_python.py and pyproject.toml say the same
INSTALL_DEPS = ["-c", "constraints.txt", "-e", ".[dev]"]  # the Makefile's INSTALL_DEPS
START_PAGE = "/lab/tree/notebooks/00_start_here.ipynb"
# The server extension that lets the course's notebooks open without unsaved changes.
LAB_EXTENSIONS = """--ServerApp.jpserver_extensions={"prodready._lab": True}"""
WINDOWS = os.name == "nt"


def scripts_dir(venv: Path, windows: bool = WINDOWS) -> Path:
    """Where a virtual environment keeps its programs: Scripts\\ on Windows, bin/ elsewhere."""
    return venv / ("Scripts" if windows else "bin")


def program(venv: Path, name: str, windows: bool = WINDOWS) -> Path:
    return scripts_dir(venv, windows) / (f"{name}.exe" if windows else name)


def check_python() -> None:
    if not SUPPORTED[0] <= sys.version_info[:2] <= SUPPORTED[1]:
        found = ".".join(map(str, sys.version_info[:3]))
        example = "py -3.12 tools\\bootstrap.py" if WINDOWS else "python3.12 tools/bootstrap.py"
        sys.exit(
            f"prodready needs Python 3.11, 3.12 or 3.13; `{sys.executable}` is {found}.\n"
            f"Run this script with a supported one, for example: {example}"
        )
    try:
        import ensurepip  # noqa: F401  (venv needs it to bootstrap pip)
        import venv  # noqa: F401
    except ImportError:
        sys.exit(
            "This Python cannot create virtual environments (the venv module is missing).\n"
            "On Debian/Ubuntu: sudo apt install python3-venv; or use a python.org Python."
        )


def is_up_to_date(venv: Path, root: Path = ROOT) -> bool:
    """Make's rule: the stamp is newer than pyproject.toml and constraints.txt."""
    stamp = venv / ".installed"
    if not stamp.exists() or not program(venv, "python").exists():
        return False
    inputs = (root / "pyproject.toml", root / "constraints.txt")
    return all(stamp.stat().st_mtime >= path.stat().st_mtime for path in inputs)


def uv_commands(venv: Path, root: Path = ROOT) -> list[list[str]]:
    """Get the pinned uv, then install the stack with it (none if uv is not pinned)."""
    text = (root / "constraints.txt").read_text(encoding="utf-8")
    pin = re.search(r"^uv==(\S+)", text, flags=re.MULTILINE)
    if pin is None:
        return []
    python = str(program(venv, "python"))
    return [
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         f"uv=={pin[1]}"],
        # Bytecode at install, as pip does: where PYTHONDONTWRITEBYTECODE is set, Python
        # never writes it, and every process would compile the stack from source again.
        [str(program(venv, "uv")), "pip", "install", "--compile-bytecode", "--python", python,
         *INSTALL_DEPS],
    ]  # fmt: skip


def pip_command(venv: Path) -> list[str]:
    python = str(program(venv, "python"))
    return [python, "-m", "pip", "install", "--disable-pip-version-check", *INSTALL_DEPS]


def setup(venv: Path, root: Path = ROOT) -> None:
    check_python()
    if is_up_to_date(venv, root):
        print(f"prodready: {venv.name} is up to date")
        return
    print(f"prodready: setting up {venv.name} with the pinned stack (first run only) ...")
    if not program(venv, "python").exists():
        _run([sys.executable, "-m", "venv", str(venv)], root)
    with_uv = uv_commands(venv, root)
    if with_uv and subprocess.run(with_uv[0], cwd=root).returncode == 0:
        _run(with_uv[1], root)
    else:
        print("prodready: uv is not available here; installing with pip instead")
        _run(pip_command(venv), root)
    (venv / ".installed").touch()
    version = subprocess.run(
        [str(program(venv, "python")), "--version"], capture_output=True, text=True
    ).stdout.strip()
    print(f"prodready: environment ready in {venv.name} ({version})")


def course_env(venv: Path) -> dict[str, str]:
    """The environment's programs first on the PATH, so `prodready ...` works as typed in
    JupyterLab's terminals and in `!prodready ...` cells, without activating anything."""
    path = os.environ.get("PATH", "")
    return {**os.environ, "PATH": f"{scripts_dir(venv)}{os.pathsep}{path}"}


def lab_command(venv: Path, extra: Sequence[str] = (), root: Path = ROOT) -> list[str]:
    # JupyterLab refuses to start as root unless told; containers often run as root.
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return [
        str(program(venv, "jupyter")), "lab", *(["--allow-root"] if as_root else []),
        f"--ServerApp.root_dir={root}", LAB_EXTENSIONS, f"--LabApp.default_url={START_PAGE}",
        *extra,
    ]  # fmt: skip


def _run(command: Sequence[str], cwd: Path) -> None:
    result = subprocess.run(list(command), cwd=cwd)
    if result.returncode:
        sys.exit(f"prodready: `{' '.join(command)}` failed (exit code {result.returncode})")


def _serve(command: Sequence[str], venv: Path, root: Path) -> int:
    """Run until it ends. Ctrl-C reaches JupyterLab too, which asks before it stops."""
    process = subprocess.Popen(list(command), cwd=root, env=course_env(venv))
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bootstrap.py", description="Set up and run the course without make."
    )
    parser.add_argument(
        "command", nargs="?", default="setup", choices=["setup", "lab", "doctor"],
        help="setup (default): create .venv; lab: then open JupyterLab; doctor: then check it",
    )  # fmt: skip
    parser.add_argument(
        "extra", nargs=argparse.REMAINDER, help="lab: more arguments for jupyter lab"
    )
    args = parser.parse_args(argv)
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    venv = ROOT / ".venv"
    setup(venv)
    if args.command == "lab":
        return _serve(lab_command(venv, extra), venv, ROOT)
    if args.command == "doctor":
        return _serve([str(program(venv, "prodready")), "doctor"], venv, ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
