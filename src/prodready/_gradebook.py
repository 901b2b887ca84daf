"""Grading a whole class: find submissions, grade them in parallel, write the gradebook.

    class/                       grades.csv     learner, module, exercise, passed, seconds, message
      alice/…/01_validation.ipynb   summary.csv    per learner: passed/total per module, overall,
                                                   and exercises tampered or flagged for review
      bob/01_validation.ipynb       feedback/<learner>.html   per exercise: result, message, hint

Submissions are found by notebook name, whatever the folder layout, and are only read.
"""

from __future__ import annotations

import csv
import html
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ._catalogue import Module
from ._course import Course
from ._grading import DEFAULT_TIMEOUT, ExerciseResult, ModuleGrade, grade_workbooks

GRADES, SUMMARY, FEEDBACK = "grades.csv", "summary.csv", "feedback"
_COLUMNS = ["learner", "module", "exercise", "passed", "status", "seconds", "message"]
_SKIPPED_DIRS = {".ipynb_checkpoints", ".prodready", ".git", "__pycache__", ".venv"}


@dataclass(frozen=True)
class Submission:
    learner: str
    module: Module
    path: Path | None  # None: the learner handed in no workbook for this module
    note: str = ""


@dataclass(frozen=True)
class Row:
    learner: str
    module: str
    exercise: str
    passed: bool
    seconds: float
    message: str
    status: str = ""  # passed, failed, tampered or flagged; see _grading

    @property
    def verdict(self) -> str:
        return self.status or ("passed" if self.passed else "failed")


def find_submissions(
    course: Course, paths: Sequence[Path], modules: Sequence[Module] | None = None
) -> list[Submission]:
    """Every (learner, module) to grade. A folder of folders is a class (one learner per
    subfolder); a folder of notebooks is one learner; a notebook path is one submission."""
    by_name = {f"{m.name}.ipynb": m for m in course.catalogue}
    found: dict[tuple[str, str], list[Path]] = {}
    for path in paths:
        for learner, notebook in _learner_notebooks(path, set(by_name)):
            found.setdefault((learner, notebook.name), []).append(notebook)
    learners = sorted({learner for learner, _ in found})
    wanted = list(modules) if modules else [
        m for m in course.catalogue if any(name == f"{m.name}.ipynb" for _, name in found)
    ]  # fmt: skip
    submissions = []
    for learner in learners:
        for module in wanted:
            candidates = found.get((learner, f"{module.name}.ipynb"), [])
            submissions.append(_choose(learner, module, candidates))
    return submissions


def _learner_notebooks(path: Path, names: set[str]) -> Iterable[tuple[str, Path]]:
    if path.is_file():
        yield _learner_of_file(path), path
        return
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a notebook nor a folder")
    direct = [p for p in path.iterdir() if p.is_file() and p.name in names]
    if direct:  # a folder of notebooks: one learner
        for notebook in _walk(path, names):
            yield path.resolve().name, notebook
        return
    for learner_dir in sorted(p for p in path.iterdir() if p.is_dir()):
        if learner_dir.name in _SKIPPED_DIRS:
            continue
        for notebook in _walk(learner_dir, names):
            yield learner_dir.name, notebook


def _learner_of_file(path: Path) -> str:
    parent = path.resolve().parent
    return parent.parent.name if parent.name == "exercises" else parent.name


def _walk(folder: Path, names: set[str]) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in sorted(files):
            if name in names:
                yield Path(root) / name


def _choose(learner: str, module: Module, candidates: list[Path]) -> Submission:
    if not candidates:
        return Submission(learner, module, None)
    # Several copies (backups, a second clone): prefer one in exercises/, then the shallowest.
    ranked = sorted(candidates, key=lambda p: (p.parent.name != "exercises", len(p.parts), str(p)))
    note = ""
    if len(ranked) > 1:
        others = ", ".join(str(p) for p in ranked[1:])
        note = f"several copies found; graded {ranked[0]}, not {others}"
    return Submission(learner, module, ranked[0], note)


def shard(submissions: list[Submission], index: int, count: int) -> list[Submission]:
    """Shard ``index`` of ``count`` (1-based): whole learners, dealt round-robin by name."""
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: K must be between 1 and N")
    learners = sorted({s.learner for s in submissions})
    mine = set(learners[index - 1 :: count])
    return [s for s in submissions if s.learner in mine]


def grade_class(
    course: Course,
    submissions: list[Submission],
    *,
    jobs: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    on_graded: Callable[[Submission, list[Row]], None] | None = None,
) -> list[Row]:
    """Grade every submission, each in a fresh kernel, ``jobs`` test runs at a time.
    Never raises for a submission: whatever goes wrong becomes its verdicts."""
    workers = jobs or os.cpu_count() or 1
    chunks = _chunks(submissions, workers)
    rows: list[Row] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_grade_chunk, course, chunk, timeout): chunk for chunk in chunks}
        for future in as_completed(futures):
            for submission, graded in zip(futures[future], future.result(), strict=True):
                rows.extend(graded)
                if on_graded:
                    on_graded(submission, graded)
    return sort_rows(course, rows)


_T = TypeVar("_T")


def _chunks(items: list[_T], workers: int) -> list[list[_T]]:
    """Several notebooks share one test run (its start-up is a large part of the cost), but
    the chunks shrink as the queue drains: the last ones hold a notebook each, so no worker
    sits idle while another finishes a long chunk alone (guided self-scheduling)."""
    chunks, start = [], 0
    while start < len(items):
        left = len(items) - start
        size = max(1, min(_MAX_CHUNK, math.ceil(left / (2 * workers))))  # a share of what is left
        chunks.append(items[start : start + size])
        start += size
    return chunks


_MAX_CHUNK = 8


def _grade_chunk(course: Course, chunk: list[Submission], timeout: float) -> list[list[Row]]:
    handed_in = [s for s in chunk if s.path is not None]
    try:
        grades = iter(
            grade_workbooks(
                course, [(s.module, s.path) for s in handed_in if s.path], timeout=timeout
            )
        )
        by_submission = {id(s): next(grades) for s in handed_in}
    except Exception as e:  # a grader fault must cost these submissions, never the class
        message = f"could not be graded ({type(e).__name__}: {e}); please report this"
        by_submission = {
            id(s): ModuleGrade(s.module, tuple(ExerciseResult(ex.id, False, message)
                                               for ex in s.module.exercises))
            for s in handed_in
        }  # fmt: skip
    rows = []
    for submission in chunk:
        grade = by_submission.get(id(submission)) or ModuleGrade(
            submission.module,
            tuple(ExerciseResult(ex.id, False, "no workbook handed in")
                  for ex in submission.module.exercises),
        )  # fmt: skip
        rows.append(_rows(submission, grade))
    return rows


def _rows(submission: Submission, grade: ModuleGrade) -> list[Row]:
    rows = []
    for result in grade.results:
        message = "passed" if result.passed else result.message
        if submission.note and not result.passed:
            message += f" [{submission.note}]"
        rows.append(Row(submission.learner, submission.module.name, result.exercise,
                        result.passed, result.seconds, message, result.verdict))  # fmt: skip
    return rows


def sort_rows(course: Course, rows: Iterable[Row]) -> list[Row]:
    order = {ex.id: i for i, ex in enumerate(course.catalogue.exercises)}
    return sorted(rows, key=lambda r: (r.learner, r.module, order.get(r.exercise, len(order))))


def read_grades(path: Path) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as f:
        return [
            Row(
                r["learner"],
                r["module"],
                r["exercise"],
                r["passed"] == "true",
                float(r["seconds"]),
                r["message"],
                r.get("status", ""),
            )
            for r in csv.DictReader(f)
        ]


def write_gradebook(course: Course, rows: list[Row], out: Path) -> None:
    """Write grades.csv, summary.csv and feedback/, each replaced whole and atomically,
    so a re-run gives the same files and an interrupted run leaves the old ones intact."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic_csv(out / GRADES, _COLUMNS, (
        [r.learner, r.module, r.exercise, "true" if r.passed else "false", r.verdict,
         f"{r.seconds:.2f}", r.message] for r in rows
    ))  # fmt: skip
    modules = [m for m in course.catalogue if any(r.module == m.name for r in rows)]
    learners = sorted({r.learner for r in rows})
    header = [
        "learner", *(m.name for m in modules), "passed", "total", "percent", "tampered", "flagged",
    ]  # fmt: skip
    _atomic_csv(
        out / SUMMARY, header, (_summary_line(learner, modules, rows) for learner in learners)
    )
    staging = Path(tempfile.mkdtemp(prefix=".feedback-", dir=out))
    for learner in learners:
        page = render_feedback(course, learner, [r for r in rows if r.learner == learner])
        (staging / f"{safe_name(learner)}.html").write_text(page, encoding="utf-8")
    target, old = out / FEEDBACK, out / ".feedback-old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _summary_line(learner: str, modules: list[Module], rows: list[Row]) -> list[str]:
    mine = [r for r in rows if r.learner == learner]
    cells = []
    for module in modules:
        in_module = [r for r in mine if r.module == module.name]
        cells.append(f"{sum(r.passed for r in in_module)}/{len(in_module)}")
    passed, total = sum(r.passed for r in mine), len(mine)
    return [
        learner,
        *cells,
        str(passed),
        str(total),
        f"{100 * passed / total:.0f}" if total else "0",
        str(sum(r.verdict == "tampered" for r in mine)),
        str(sum(r.verdict == "flagged" for r in mine)),
    ]


def _atomic_csv(path: Path, header: list[str], lines: Iterable[list[str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(lines)
    tmp.replace(path)


def safe_name(learner: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", learner).strip("._") or "learner"


def render_feedback(course: Course, learner: str, rows: list[Row]) -> str:
    """One learner's page: verdicts, teaching messages and the first hint. Never the
    solution and never a check's source: only what `prodready check` would show them."""
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>prodready feedback: {esc(learner)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}td,th{vertical-align:top;padding:.3rem .6rem;text-align:left}"
        ".pass{color:#1a7f37}.fail{color:#cf222e}pre{white-space:pre-wrap;margin:0}</style>",
        "</head><body>",
        f"<h1>Feedback for {esc(learner)}</h1>",
    ]
    passed = sum(r.passed for r in rows)
    parts.append(f"<p>{passed} of {len(rows)} exercises passed.</p>")
    for module in course.catalogue:
        in_module = [r for r in rows if r.module == module.name]
        if not in_module:
            continue
        done = sum(r.passed for r in in_module)
        parts.append(f"<h2>{esc(module.number)}. {esc(module.title)}: {done}/{len(in_module)}</h2>")
        parts.append("<table><tr><th>exercise</th><th>result</th><th>feedback</th></tr>")
        for row in in_module:
            exercise = course.catalogue.exercise(row.exercise)
            if row.passed:
                verdict, feedback = '<span class="pass">✓ passed</span>', ""
            elif row.verdict in ("tampered", "flagged"):
                label = "⚠ tampered" if row.verdict == "tampered" else "⚑ flagged for review"
                verdict = f'<span class="fail">{label}</span>'
                feedback = f"<pre>{esc(row.message)}</pre>"
            else:
                verdict = '<span class="fail">✗ not yet</span>'
                feedback = (
                    f"<pre>{esc(row.message)}</pre><p><b>Hint:</b> {esc(exercise.hints[0])}<br>"
                    f"More hints: <code>prodready hint {esc(row.exercise)}</code></p>"
                )
            parts.append(
                f"<tr><td><code>{esc(row.exercise)}</code><br>{esc(exercise.title)}</td>"
                f"<td>{verdict}</td><td>{feedback}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<p>Run <code>prodready check</code> in your course folder to see the same verdicts "
        "on your own machine.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


def merge(course: Course, shard_dirs: Sequence[Path], out: Path) -> list[Row]:
    """Combine the gradebooks of several shards into one, as if graded in one run."""
    rows: dict[tuple[str, str, str], Row] = {}
    for folder in shard_dirs:
        grades = folder / GRADES
        if not grades.exists():
            raise FileNotFoundError(f"{grades} is missing: did that shard finish?")
        for row in read_grades(grades):
            key = (row.learner, row.module, row.exercise)
            if key in rows:
                raise ValueError(f"{row.learner} {row.exercise} appears in two shards")
            rows[key] = row
    merged = sort_rows(course, rows.values())
    write_gradebook(course, merged, out)
    return merged
