"""JupyterLab as a learner meets it: a scratch copy of the course, a server started with
`make lab`'s own command line, and headless Chromium driven by Playwright.

Everything here waits for something the learner could see (a prompt number, a rendered
output, a tab without the unsaved-changes dot) or that the server says (a kernel's state),
with generous limits: the test runs on loaded two-core machines.
"""

from __future__ import annotations

import json
import os
import pty
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)  # the project's environment: the test runs from .venv/bin/pytest
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NOT_RUN = "browser test not run: no Chromium (install Debian's chromium package)"
# Learner-invisible settings, for a test that reads the screen: a terminal that keeps its
# text in the page (xterm's screen-reader rows) and no news pop-up over the cells.
LAB_SETTINGS = {
    "@jupyterlab/terminal-extension/plugin.jupyterlab-settings": {"screenReaderMode": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_COPY_SKIP = {".git", ".venv", ".prodready", "__pycache__", ".ipynb_checkpoints", "build"}


def find_chromium() -> str | None:
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


# --------------------------------------------------------------------------- the course


def copy_course(target: Path) -> None:
    """The course as a fresh clone has it: git's files (tracked, plus new ones not ignored)
    as they are in the working tree. Without git, the folder minus environments and state."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout.split("\0")  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        listed = [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not _COPY_SKIP & set(p.relative_to(REPO).parts)
            and "cache" not in p.relative_to(REPO).parts and not p.name.endswith(".egg-info")
        ]  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a file deleted in the working tree is still in git's index
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def lab_command(course: Path) -> str:
    """The command `make lab` runs in ``course``, with the project's environment, as make
    prints it: whatever the Makefile's `lab` target does, this test does."""
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "lab", f"VENV={VENV}"],
        cwd=course, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    printed = re.sub(r"\\\n\s*", " ", printed)  # one line per command
    commands = [
        line.strip() for line in printed.splitlines() if re.search(r"jupyter\S* lab\b", line)
    ]
    assert len(commands) == 1, f"`make -n lab` printed no single jupyter lab command:\n{printed}"
    return commands[0]


def notebook_cells(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text(encoding="utf-8"))["cells"])


def source(cell: dict[str, Any]) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def role(cell: dict[str, Any]) -> tuple[str, str] | None:
    meta = cell.get("metadata", {}).get("prodready")
    return (meta["exercise"], meta["role"]) if isinstance(meta, dict) else None


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Lab:
    """A JupyterLab server on a scratch course, as `make lab` starts it, with a token and
    a free port, and with its own Jupyter settings, state and runtime folders."""

    def __init__(self, course: Path, home: Path, log: Path) -> None:
        self.course, self.home, self.log = course, home, log
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = lab_command(course)
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._pids: set[int] = set()

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRODREADY_", "JUPYTER"))}
        # the environment's scripts must reach the terminals through `make lab` alone
        bin_dir = str(VENV / "bin")
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir
        )
        env.pop("VIRTUAL_ENV", None)
        folders = {
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data",
            "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython",
        }
        for variable, name in folders.items():
            (self.home / name).mkdir(parents=True, exist_ok=True)
            env[variable] = str(self.home / name)
        for name, settings in LAB_SETTINGS.items():
            path = self.home / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings), encoding="utf-8")
        return env

    def start(self, timeout: float = 240) -> None:
        extra = (
            f" --no-browser --port={self.port} --ServerApp.port_retries=0"
            f" --ServerApp.ip=127.0.0.1 --IdentityProvider.token={self.token}"
        )
        # `make lab` runs in a terminal: JupyterLab's terminals then start a plain (not a
        # login) shell, which keeps the PATH that `make lab` set. A pty gives the same.
        leader, follower = pty.openpty()
        self.proc = subprocess.Popen(
            ["sh", "-c", self.command + extra],
            cwd=self.course, env=self.environment(), stdin=subprocess.DEVNULL,
            stdout=follower, stderr=follower, start_new_session=True,
        )  # fmt: skip
        os.close(follower)
        self._reader = threading.Thread(target=self._keep_log, args=(leader,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}); see {self.log}")
            with suppress(OSError, urllib.error.URLError):
                self.api("GET", "status")
                return
            time.sleep(0.5)
        raise TimeoutError(f"jupyter lab did not answer within {timeout:.0f} s; see {self.log}")

    def _keep_log(self, leader: int) -> None:
        with self.log.open("ab") as out:
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the server closed its side
                    break
                if not chunk:
                    break
                out.write(chunk)
                out.flush()
        os.close(leader)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}/api/{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def kernel_state(self, path: str) -> str | None:
        for session in self.api("GET", "sessions"):
            if session.get("path") == path and session.get("kernel"):
                return str(session["kernel"]["execution_state"])
        return None

    def shut_down_kernel(self, path: str) -> None:
        for session in self.api("GET", "sessions"):
            if session.get("path") == path:
                self.api("DELETE", f"sessions/{session['id']}")

    def stop(self) -> None:
        """Server, kernels, terminals: every process this server started, on every path."""
        if self.proc is None:
            return
        self._pids.update(_descendants(self.proc.pid))
        with suppress(OSError, urllib.error.URLError):
            self.api("POST", "shutdown")  # shuts its kernels and terminals down too
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        for pid in self._pids:  # kernels run in sessions of their own
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=10)

    def remember_processes(self) -> None:
        """Note the server's children now (kernels, shells), to be sure they end with it."""
        if self.proc is not None:
            self._pids.update(_descendants(self.proc.pid))


# --------------------------------------------------------------------------- the steps


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    status: str = "ok"
    notes: list[str] = field(default_factory=list)


STEPS: list[Step] = []  # read by the terminal summary (tests/browser/conftest.py)
ARTIFACTS: list[Path] = []


class Steps:
    """Named, timed steps; a failing step leaves a screenshot behind."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page, self.shots = page, shots
        self.current: Step | None = None

    @contextmanager
    def __call__(self, name: str) -> Iterator[Step]:
        step = self.current = Step(name)
        STEPS.append(step)
        started = time.perf_counter()
        try:
            yield step
        except BaseException:
            step.status = "FAILED"
            self.shots.mkdir(parents=True, exist_ok=True)
            shot = self.shots / f"{len(STEPS):02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.png"
            with suppress(Exception):
                self.page.screenshot(path=str(shot), full_page=True)
                step.notes.append(f"screenshot: {shot}")
            raise
        finally:
            step.seconds = time.perf_counter() - started

    def note(self, text: str) -> None:
        assert self.current is not None
        self.current.notes.append(text)


def format_steps(steps: list[Step]) -> list[str]:
    width = max((len(s.name) for s in steps), default=10)
    lines = [f"{'step':<{width}}  {'seconds':>7}  result"]
    for s in steps:
        lines.append(f"{s.name:<{width}}  {s.seconds:7.1f}  {s.status}")
        lines += [f"{'':<{width}}           {note}" for note in s.notes]
    lines.append(f"{'total':<{width}}  {sum(s.seconds for s in steps):7.1f}")
    return lines


# --------------------------------------------------------------------------- the screen

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in front
LONG = 180_000  # ms: a kernel start or a check on a loaded machine
RUN = 900_000  # ms: a whole lesson


@dataclass
class RunAll:
    quiet: dict[int, float]  # code cell -> seconds it ran before it showed anything
    # "Executed N/M cells", as the notebook's busy progress circle said while the cells still
    # waiting had blank prompts (after the first cell that fails on purpose)
    executed_while_blank: list[int]


class Learner:
    """What a learner does in JupyterLab, through its menus, keys and visible state."""

    def __init__(self, page: Any, lab: Lab) -> None:
        self.page, self.lab = page, lab

    # -- documents
    def tab(self, path: str) -> Any:
        return self.page.locator(f'li.lm-TabBar-tab[title*="Path: {path}"]')

    def panel(self) -> Any:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

    def cells(self) -> Any:
        return self.panel().locator(".jp-Notebook-cell")

    def cell(self, index: int) -> Any:
        return self.panel().locator(f'.jp-Notebook-cell[data-windowed-list-index="{index}"]')

    def is_dirty(self, path: str) -> bool:
        return "jp-mod-dirty" in (self.tab(path).get_attribute("class") or "")

    def wait_for_notebook(self, path: str, cells: int | None = None) -> None:
        """The notebook is the current tab, all its cells are there, and its kernel is idle,
        as the server and the notebook's own kernel indicator both say."""
        self.page.wait_for_selector(
            f'li.lm-TabBar-tab.lm-mod-current[title*="Path: {path}"]', timeout=LONG
        )
        if cells is not None:
            self.page.wait_for_function(
                "n => document.querySelectorAll("
                "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-cell').length === n",
                arg=cells, timeout=LONG,
            )  # fmt: skip
        self.wait_until(lambda: self.lab.kernel_state(path) == "idle", LONG, f"{path}'s kernel")
        indicator = '.jp-Notebook-ExecutionIndicator[data-status="idle"]'
        self.page.wait_for_selector(f"{PANEL} {indicator}", timeout=LONG)

    def wait_until(self, condition: Any, timeout_ms: int, what: str) -> None:
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.25)
        raise TimeoutError(f"waited {timeout_ms / 1000:.0f} s for {what}")

    def menu(self, top: str, *path: str) -> None:
        """Click through the menu bar: ``menu("Run", "Run All Cells")``."""
        self.page.locator(f'.lm-MenuBar-item:has(.lm-MenuBar-itemLabel:text-is("{top}"))').click()
        for n, label in enumerate(path):
            item = self.page.locator(
                f'.lm-Menu:visible .lm-Menu-item:has(.lm-Menu-itemLabel:text-is("{label}"))'
            ).last
            if n < len(path) - 1:
                item.hover()  # opens the submenu
            else:
                item.click()

    def menu_item_disabled(self, top: str, label: str) -> bool:
        self.page.locator(f'.lm-MenuBar-item:has(.lm-MenuBar-itemLabel:text-is("{top}"))').click()
        item = self.page.locator(
            f'.lm-Menu:visible .lm-Menu-item:has(.lm-Menu-itemLabel:text-is("{label}"))'
        ).last
        item.wait_for()
        disabled = item.get_attribute("aria-disabled") == "true"
        self.page.keyboard.press("Escape")
        return disabled

    # -- cells
    def select(self, index: int) -> Any:
        """Select a cell in command mode, by clicking its prompt as a learner would."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        self.page.wait_for_selector(
            f".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-cell.jp-mod-selected"
            f'[data-windowed-list-index="{index}"]'
        )
        return cell

    def prompt(self, index: int) -> str:
        return str(self.cell(index).locator(".jp-InputPrompt").text_content() or "").strip()

    def run(self, index: int, timeout: int = LONG) -> Any:
        """Run one cell with Ctrl+Enter and wait for its new execution count."""
        before = self.prompt(index)
        cell = self.select(index)
        self.page.keyboard.press("Control+Enter")
        cell.locator(".jp-InputPrompt").wait_for()
        self.page.wait_for_function(
            "([el, before]) => /^\\[\\d+\\]:$/.test(el.textContent.trim())"
            " && el.textContent.trim() !== before",
            arg=[cell.locator(".jp-InputPrompt").element_handle(), before], timeout=timeout,
        )  # fmt: skip
        return cell

    def edit(self, index: int, text: str) -> None:
        """Replace a cell's code, as if typed (pasted, so the editor adds no indentation)."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Escape")

    def editor_text(self, index: int) -> str:
        lines = self.cell(index).locator(".cm-line").all_text_contents()
        return "\n".join(lines)

    def add_below(self, index: int, text: str) -> int:
        """A new code cell under cell ``index`` (key B), with ``text`` in it."""
        count = self.cells().count()
        self.select(index)
        self.page.keyboard.press("b")
        self.page.wait_for_function(
            "n => document.querySelectorAll("
            "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-cell').length === n",
            arg=count + 1,
        )  # fmt: skip
        self.edit(index + 1, text)
        return index + 1

    def output_text(self, index: int) -> str:
        """What a cell's outputs say (the DOM's text: off-screen cells are not painted)."""
        outputs = self.cell(index).locator(".jp-OutputArea-output")
        return "\n".join(t.strip("\n") for t in outputs.all_text_contents())

    def save(self, path: str) -> None:
        self.tab(path).click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Control+s")
        self.wait_until(lambda: not self.is_dirty(path), LONG, f"{path} to be saved")

    # -- the terminal
    def open_terminal(self) -> None:
        self.page.locator('.lm-MenuBar-item:has(.lm-MenuBar-itemLabel:text-is("File"))').click()
        self.page.locator(
            '.lm-Menu:visible .lm-Menu-item:has(.lm-Menu-itemLabel:text-is("New"))'
        ).hover()
        self.page.locator(
            '.lm-Menu:visible .lm-Menu-item:has(.lm-Menu-itemLabel:text-is("Terminal"))'
        ).click()
        self.page.wait_for_selector(".jp-Terminal:visible .xterm-accessibility-tree", timeout=LONG)
        self.wait_until(lambda: self.screen().strip() != "", LONG, "the shell's prompt")

    def show_terminal(self) -> None:
        label = '.lm-TabBar-tabLabel:text-matches("^Terminal")'
        self.page.locator(f".lm-DockPanel-tabBar li.lm-TabBar-tab:has({label})").first.click()
        self.page.wait_for_selector(".jp-Terminal:visible .xterm")

    def screen(self) -> str:
        rows = self.page.locator(".jp-Terminal:visible .xterm-accessibility-tree > div")
        return "\n".join(r.replace("\xa0", " ").rstrip() for r in rows.all_text_contents())

    def type_command(self, command: str, until: str, timeout: int = LONG) -> str:
        """Type a command into the terminal and wait for a line that matches ``until``."""
        self.page.locator(".jp-Terminal:visible .xterm").click()
        self.page.keyboard.type("clear\n")
        self.wait_until(
            lambda: "clear" not in self.screen() and self.screen().strip() != "",
            LONG, "a cleared terminal with its prompt",
        )  # fmt: skip
        self.page.keyboard.type(command + "\n")
        pattern = re.compile(until, re.M)
        self.wait_until(lambda: pattern.search(self.screen()) is not None, timeout, repr(command))
        return self.screen()

    # -- a whole notebook
    def run_all(self, path: str, code: list[int], timeout: int = RUN) -> RunAll:
        """Run → Run All Cells, and wait until every code cell has run: how long each cell
        ran before showing anything, and what the learner saw meanwhile.

        JupyterLab queues every cell at once ([*]); after the first cell that fails on
        purpose it blanks the queued prompts, and the kernel goes on running them. So the
        page is watched, not polled: a cell is done when its prompt gets a number again."""
        self.page.evaluate(
            """panel => {
                window.__runLog = [];
                const cells = document.querySelectorAll(panel + ' .jp-Notebook-cell');
                cells.forEach((cell, i) => {
                    const log = kind => window.__runLog.push([i, kind, performance.now(),
                        cell.querySelector('.jp-InputPrompt')?.textContent.trim() ?? '']);
                    const prompt = cell.querySelector('.jp-InputPrompt');
                    const outputs = cell.querySelector('.jp-OutputArea');
                    const watch = {childList: true, characterData: true, subtree: true};
                    if (prompt) new MutationObserver(() => log('prompt')).observe(prompt, watch);
                    const shown = records => records.some(
                        r => r.type === 'characterData' || r.addedNodes.length > 0);
                    if (outputs) new MutationObserver(
                        records => shown(records) && log('output')).observe(outputs, watch);
                });
                window.__runStarted = performance.now();
            }""",
            PANEL,
        )
        self.menu("Run", "Run All Cells")
        numbered = re.compile(r"^\[\d+\]:$")
        deadline = time.monotonic() + timeout / 1000
        progress_while_blank: set[int] = set()
        while True:
            log = self.page.evaluate("() => window.__runLog")
            queued = {i for i, kind, _, prompt in log if kind == "prompt" and prompt == "[*]:"}
            last_prompt = {i: prompt for i, kind, _, prompt in log if kind == "prompt"}
            done = all(i in queued and numbered.match(last_prompt.get(i, "")) for i in code)
            if done and self.lab.kernel_state(path) == "idle":
                break
            if any(last_prompt.get(i) in ("", "[ ]:") for i in queued):
                # the waiting cells look idle: does the notebook's progress circle say so?
                indicator = self.panel().locator(
                    '.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status="busy"]'
                )
                if indicator.count():
                    executed = re.search(r"Executed (\d+)/", indicator.text_content() or "")
                    progress_while_blank.add(int(executed[1]) if executed else -1)
            if time.monotonic() > deadline:
                waiting = [i for i in code if not numbered.match(last_prompt.get(i, ""))]
                raise TimeoutError(f"Run All: cells {waiting} did not finish in {timeout} ms")
            time.sleep(0.5)
        started = float(self.page.evaluate("() => window.__runStarted"))
        finished = {}
        for i, kind, at, prompt in log:
            if kind == "prompt" and numbered.match(prompt):
                finished[i] = at
        quiet: dict[int, float] = {}
        previous_end = started
        for i in code:
            begin = previous_end
            shown = [at for j, kind, at, _ in log if j == i and kind == "output" and at > begin]
            quiet[i] = (min(shown, default=finished[i]) - begin) / 1000
            previous_end = max(previous_end, finished[i])
        return RunAll(quiet, sorted(progress_while_blank))
