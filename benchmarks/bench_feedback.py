"""Feedback at every level, next to its target (issue 21).

- The learner's in-notebook check: every solution notebook runs in one kernel as a learner
  runs it (nbclient, cells in order), and each check cell's time is read from the kernel's
  own timestamps (execute_input to execute_reply). Median of RUNS runs per exercise; the
  target is a median under 0.2 s across all exercises and none over 2 s.
- A fresh clone to JupyterLab serving: `git clone`, then `make lab` with an empty uv cache
  (every package comes from the registry), until the server says it is running. Target 60 s.
- `make test` in that same clone, the whole suite: target 5 minutes on an idle 2-core machine.

`prodready check NN` per module is bench_check; class grading against nbgrader is bench_grade.

Run: .venv/bin/python benchmarks/bench_feedback.py (or benchmarks/run.py feedback).
BENCH_FEEDBACK_SKIP=clone skips the clone, `make lab` and `make test` (about 8 minutes).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from prodready._course import Course

RUNS = 3
CHECK_MEDIAN_TARGET, CHECK_MAX_TARGET = 0.2, 2.0
LAB_TARGET, TEST_TARGET = 60.0, 300.0
SERVING = re.compile(r"Jupyter Server .* is running at|http://127\.0\.0\.1:\d+/lab")


def _seconds(cell: nbformat.NotebookNode) -> float:
    timing = cell.metadata["execution"]
    start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def check_cell_times(course: Course) -> dict[str, list[float]]:
    """Seconds per check cell, RUNS runs of every solution notebook, each in a new kernel."""
    times: dict[str, list[float]] = {}
    for module in course.catalogue:
        path = course.solution(module)
        for _ in range(RUNS):
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(
                nb, timeout=600, kernel_name="python3", record_timing=True,
                resources={"metadata": {"path": str(path.parent)}},
            )  # fmt: skip
            client.execute()
            for cell in nb.cells:
                meta = cell.metadata.get("prodready", {})
                if cell.cell_type == "code" and meta.get("role") == "check":
                    times.setdefault(meta["exercise"], []).append(_seconds(cell))
    return times


def clone_to_serving(into: Path) -> float:
    """Seconds from `make lab` in a fresh clone, nothing cached, to JupyterLab serving."""
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["git", "clone", "-q", str(repo), str(into)], check=True)
    env = {**os.environ, "UV_CACHE_DIR": str(into / ".bench-uv-cache"),
           "PIP_NO_CACHE_DIR": "1"}  # fmt: skip
    flags = "--no-browser --ServerApp.port=0 --ServerApp.token=bench"
    if os.geteuid() == 0:
        flags = "--allow-root " + flags
    started = time.perf_counter()
    lab = subprocess.Popen(
        ["make", "lab", f"LAB_FLAGS={flags}"], cwd=into, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    assert lab.stdout is not None
    try:
        for line in lab.stdout:
            if SERVING.search(line):
                return time.perf_counter() - started
        raise RuntimeError(f"make lab ended (exit {lab.wait()}) before JupyterLab served")
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(30)


def make_test_seconds(clone: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(["make", "test"], cwd=clone, capture_output=True, text=True)
    if done.returncode:
        failures = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        print("`make test` failed:", *(failures or done.stdout.splitlines()[-20:]), sep="\n  ")
    return time.perf_counter() - started, done.returncode


def main() -> None:
    course = Course.discover()
    times = check_cell_times(course)
    medians = {exercise: statistics.median(ts) for exercise, ts in times.items()}
    overall = statistics.median(medians.values())
    slow = {ex: s for ex, s in sorted(medians.items(), key=lambda kv: -kv[1]) if s > 0.5}
    rows = [
        ("in-notebook check, median over exercises", f"{overall:.3f} s",
         f"< {CHECK_MEDIAN_TARGET} s", overall < CHECK_MEDIAN_TARGET),
        ("in-notebook check, slowest exercise", f"{max(medians.values()):.2f} s",
         f"<= {CHECK_MAX_TARGET} s", max(medians.values()) <= CHECK_MAX_TARGET),
    ]  # fmt: skip
    if "clone" not in os.environ.get("BENCH_FEEDBACK_SKIP", ""):
        with tempfile.TemporaryDirectory(prefix="bench-feedback-") as tmp:
            clone = Path(tmp) / "course"
            serving = clone_to_serving(clone)
            suite, code = make_test_seconds(clone)
            shutil.rmtree(clone / ".bench-uv-cache", ignore_errors=True)
        lab = "fresh clone to JupyterLab serving (`make lab`, nothing cached)"
        rows.append((lab, f"{serving:.0f} s", f"<= {LAB_TARGET:.0f} s", serving <= LAB_TARGET))
        test = f"`make test` in that clone (exit {code})"
        rows.append(
            (test, f"{suite:.0f} s", f"<= {TEST_TARGET:.0f} s", not code and suite <= TEST_TARGET)
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>9}  {'target':>9}  met")
    for name, measured, target, met in rows:
        print(f"{name:<{width}}  {measured:>9}  {target:>9}  {'yes' if met else 'NO'}")
    print(f"\nexercises over 0.5 s (median of {RUNS} runs):")
    for exercise, seconds in slow.items():
        print(f"  {exercise:<32} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
