"""How the course talks to a learner inside a notebook: failures, hints and progress.

A failed check is an exception (so the cell, and a graded notebook, fail), but a learner
should read the verdict, not a traceback through the course's own code. In IPython the
course registers a handler that shows ``ExerciseFailed`` as short, wrapped lines.
Outside IPython (a script, the CLI) nothing here changes how exceptions look.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

WIDTH = 78  # JupyterLab wraps long output lines wherever they hit the edge, mid-word
_RED, _DIM, _BOLD, _RESET = "\x1b[31m", "\x1b[2m", "\x1b[1m", "\x1b[0m"


def wrap(text: str, width: int = WIDTH, indent: str = "") -> list[str]:
    """Wrap prose line by line; lines that start indented (code, output) stay as they are."""
    lines: list[str] = []
    for line in text.splitlines() or [""]:
        if not line.strip():
            lines.append("")
        elif line[0].isspace():
            lines.append(indent + line)
        else:
            lines += textwrap.wrap(
                line,
                width,
                initial_indent=indent,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
    return lines


def render_failure(exercise_id: str, message: str, printed: str = "") -> str:
    from ._check import _printed_block

    lines = [f"{_BOLD}{_RED}✗ {exercise_id}: not passing yet{_RESET}", ""]
    lines += wrap(message)
    block = _printed_block(printed)
    if block:
        heading, _, shown = block.strip("\n").partition("\n")
        lines += ["", f"{_DIM}{heading}{_RESET}", shown]
    lines += ["", f'Stuck? Run {_BOLD}hint("{exercise_id}"){_RESET} in a cell for the next hint.']
    return "\n".join(lines)


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # not in IPython at all
        return None
    return get_ipython()


def show_failures_without_traceback() -> None:
    """In IPython, show a failed check as its verdict instead of a traceback. The cell
    still fails (the kernel reports an error named ``ExerciseFailed``), so a graded
    notebook fails too."""
    from ._check import ExerciseFailed

    shell = _shell()
    if shell is None or ExerciseFailed in getattr(shell, "custom_exceptions", ()):
        return

    def as_verdict(
        shell: Any,
        etype: type[BaseException],
        value: BaseException,
        tb: TracebackType | None,
        tb_offset: int | None = None,
    ) -> list[str]:
        if isinstance(value, ExerciseFailed):
            stb = value.render().splitlines()
        else:
            stb = list(shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset))
        # IPython discards what a custom handler returns; showing it is the handler's job.
        # In a kernel this sends the usual error message (name, value, these lines).
        shell._showtraceback(etype, value, stb)
        return stb

    shell.set_custom_exc((ExerciseFailed,), as_verdict)


def show_markdown(markdown: str, plain: str) -> None:
    """Markdown in a notebook, plain text anywhere else."""
    if _shell() is not None and type(_shell()).__name__ != "TerminalInteractiveShell":
        from IPython.display import Markdown, display

        display(Markdown(markdown))
    else:
        print(plain)
