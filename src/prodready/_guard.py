"""Limits for learner code in a graded kernel, installed by the grader's first cell.

A cell that prints without end would otherwise fill the grader's memory: nbval keeps
every output it receives. Each cell may write ``limit`` characters per stream.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

TRUNCATED = "\n[output truncated by the grader]\n"


class _CappedStream:
    def __init__(self, stream: TextIO, limit: int) -> None:
        self._stream, self._limit, self.used = stream, limit, 0

    def write(self, text: str) -> int:
        room = self._limit - self.used
        if room > 0:
            self._stream.write(text[:room])
            if len(text) > room:
                self._stream.write(TRUNCATED)
        self.used += len(text)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def limit_output(limit: int = 1_000_000) -> None:
    streams = [_CappedStream(sys.stdout, limit), _CappedStream(sys.stderr, limit)]
    sys.stdout, sys.stderr = streams

    def new_cell(*_: object) -> None:
        for stream in streams:
            stream.used = 0

    from IPython import get_ipython

    ipython = get_ipython()
    if ipython is not None:  # outside a kernel there are no cells to reset for
        ipython.events.register("pre_run_cell", new_cell)
