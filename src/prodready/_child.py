"""Run learner code in a process of its own, with the grader's files out of its reach.

A check that needs the learner's code in another process (a service under uvicorn, with
real workers) starts it with ``command(...)``: ``python -m prodready._child -m uvicorn ...``.
In a graded kernel the child refuses, like the seal, to open the reference and the
grader's own files, and to write into the installed packages; outside grading it just runs.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence
from typing import Any

PROTECTED_ENV = "PRODREADY_PROTECTED_PATHS"


def command(args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment for a child Python process running ``args``."""
    from ._seal import protected_paths

    env = {**os.environ, PROTECTED_ENV: os.pathsep.join(protected_paths())}
    return [sys.executable, "-m", "prodready._child", *args], env


def _protect(paths: Sequence[str]) -> None:
    stat, isabs, join, getcwd, dirname = (
        os.stat, os.path.isabs, os.path.join, os.getcwd, os.path.dirname
    )  # fmt: skip

    def inode(path: str) -> tuple[int, int] | None:
        try:
            st = stat(path)
        except (OSError, ValueError):
            return None
        return st.st_dev, st.st_ino

    refused = {i for i in map(inode, paths) if i}
    if not refused:
        return

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event not in ("open", "os.listdir", "os.scandir", "os.symlink", "os.link"):
            return
        for path in args[:2] if event in ("os.symlink", "os.link") else args[:1]:
            if type(path) not in (str, bytes):
                continue
            text = path.decode("utf-8", "replace") if type(path) is bytes else path
            current = text if isabs(text) else join(getcwd(), text)
            while current:
                if inode(current) in refused:
                    raise PermissionError(f"prodready grading does not allow reading {text}")
                parent = dirname(current)
                if parent == current:
                    break
                current = parent

    sys.addaudithook(audit)


def main(argv: Sequence[str]) -> None:
    _protect([p for p in os.environ.pop(PROTECTED_ENV, "").split(os.pathsep) if p])
    if argv and argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
