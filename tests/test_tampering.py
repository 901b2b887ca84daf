"""A learner who games the grader instead of solving the exercise gets no credit.

Each technique below is an answer a bootcamp learner could write, on the fixture course:
the answer to `fixture.add` is wrong (`a - b`) and forges its verdict in another way. All
of them are graded in one run, next to an honest learner, and every forged exercise must
end without credit and marked as tampered (the seal caught it in the kernel) or flagged
(the static review did), with its reason; the honest answers in the same notebooks and
the honest learner's whole notebook must be unaffected. The threat model in the README
describes what each defence covers; these are its tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prodready._course import Course
from prodready._grading import FLAGGED, PASSED, TAMPERED, ExerciseResult, grade_answers_many
from prodready._notebooks import learner_answers, read_notebook
from prodready._scrutiny import scrutinize

WRONG_ADD = "def add(a, b):\n    return a - b\n"
THE_VERDICT = 'print("✅ fixture.add: passed. add(2, 3) == 5")'

TECHNIQUES: dict[str, tuple[str, str, str]] = {
    # name: (answer to fixture.add, the status it must end with, part of the reason)
    "the issue's forgery: reflection by computed names, verdicts read from solutions/": (
        "import importlib, json, pathlib\n"
        "course = importlib.import_module('prod' + 'ready._' + 'course')\n"
        "root = pathlib.Path(vars(course)['find_' + 'course_root']())\n"
        "nb = json.loads((root / ('solu' + 'tions') / '01_fixture.ipynb').read_text())\n"
        "registry = vars(importlib.import_module('prodready._check'))['_REG' + 'ISTRY']\n"
        "for cell in nb['cells']:\n"
        "    meta = cell['metadata'].get('prodready', {})\n"
        "    if meta.get('role') == 'check':\n"
        "        summary = ''.join(cell['outputs'][0]['text']).split(': passed. ')[1].strip()\n"
        "        registry[meta['exercise']] = lambda *a, _s=summary, **k: _s\n" + WRONG_ADD,
        TAMPERED,
        "touching the grader's or the reference's files",
    ),
    "a checker swapped in the registry (the verdict is no secret: it is in the package)": (
        "import sys\n"
        "sys.modules['prodready._check']._REGISTRY['fixture.add'] = lambda add: 'add(2, 3) == 5'\n"
        + WRONG_ADD,
        TAMPERED,
        "the checker registry's fixture.add was replaced",
    ),
    "the check's own `expect` neutralised by replacing its code": (
        "import sys\n"
        "sys.modules['prodready._check'].expect.__code__ = (lambda condition, message: None)"
        ".__code__\n" + WRONG_ADD,
        TAMPERED,
        "replacing __code__ of a function that is not theirs",
    ),
    "the checker's helper rebound where the checker finds it (only the canary can tell)": (
        "expect = lambda condition, message: None\n" + WRONG_ADD,
        TAMPERED,
        "also passed the exercise's shipped starting code",
    ),
    "IPython's error display replaced so a failed check prints the passing verdict": (
        "get_ipython().set_custom_exc((Exception,), "
        f"lambda shell, etype, value, tb, tb_offset=None: {THE_VERDICT} or [])\n" + WRONG_ADD,
        TAMPERED,
        "IPython's shell",
    ),
    "an input transformer that rewrites every check cell into a print": (
        "def rewrite(lines):\n"
        "    if any('prodready' in line for line in lines):\n"
        f"        return ['{THE_VERDICT}\\n']\n"
        "    return lines\n"
        "get_ipython().input_transformers_post.append(rewrite)\n" + WRONG_ADD,
        TAMPERED,
        "IPython's hooks",
    ),
    "builtins.__import__ patched so the check cell gets a fake `sys`": (
        "import builtins\n"
        "real_import = builtins.__import__\n"
        "class FakeSys:\n"
        "    @staticmethod\n"
        "    def audit(event, nonce, exercise, *rest):\n"
        "        print(f'✅ {exercise}: passed. add(2, 3) == 5')\n"
        "def fake_import(name, *args, **kwargs):\n"
        "    return FakeSys if name == 'sys' else real_import(name, *args, **kwargs)\n"
        "builtins.__import__ = fake_import\n" + WRONG_ADD,
        TAMPERED,
        "builtins.__import__ was replaced",
    ),
    "the garbage collector searched for the registry": (
        "import gc\n"
        "for found in gc.get_objects():\n"
        "    if isinstance(found, dict) and 'fixture.add' in found:\n"
        "        found['fixture.add'] = lambda add: 'add(2, 3) == 5'\n" + WRONG_ADD,
        TAMPERED,
        "gc.get_objects",
    ),
    "a tracer installed to rewrite the checker's variables": (
        "import sys\n"
        "def tracer(frame, event, arg):\n"
        "    return tracer\n"
        "sys.settrace(tracer)\n" + WRONG_ADD,
        TAMPERED,
        "sys.settrace",
    ),
    "frames reached through a traceback, to find the grader's locals": (
        "try:\n"
        "    raise ValueError\n"
        "except ValueError as e:\n"
        "    frame = e.__traceback__.tb_frame\n" + WRONG_ADD,
        TAMPERED,
        "reading .tb_frame",
    ),
    "the grader's private folder found next to the kernel's working directory": (
        "import os\nprint(os.listdir(os.path.join(os.getcwd(), '..', 'private')))\n" + WRONG_ADD,
        TAMPERED,
        "touching the grader's or the reference's files",
    ),
    "the reference read through a symbolic link": (
        "import os, tempfile, pathlib\n"
        "from prodready._course import find_course_root\n"
        "link = pathlib.Path(tempfile.mkdtemp()) / 'ref'\n"
        "os.symlink(find_course_root() / 'solutions', link)\n"
        "print((link / '01_fixture.ipynb').read_text()[:10])\n" + WRONG_ADD,
        TAMPERED,
        "touching the grader's or the reference's files",
    ),
    "a rebound `check` that prints the verdict (harmless now, and flagged)": (
        f"def check(*args):\n    {THE_VERDICT}\n" + WRONG_ADD,
        FLAGGED,
        "rebinds the course's check",
    ),
}


def solution(course: Course) -> dict[str, list[str]]:
    return learner_answers(read_notebook(course.solution(course.catalogue.module("01"))))


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ExerciseResult, ...]]:
    """The hostile class and one honest learner, graded in one run."""
    import shutil

    from conftest import FIXTURE_COURSE
    from prodready._catalogue import load_catalogue

    root = tmp_path_factory.mktemp("tampering") / "course"
    shutil.copytree(FIXTURE_COURSE, root)
    course = Course(root, load_catalogue(root / "catalogue.toml"))
    module = course.catalogue.module("01")
    honest = solution(course)
    batch = [(module, honest)]
    for answer, _, _ in TECHNIQUES.values():
        batch.append((module, {**honest, "fixture.add": [answer]}))
    # One answer (a right one) that rebinds what another exercise's checker relies on:
    # the damage must stay with it, and the wrong `greet` must still fail.
    blast = {
        **honest,
        "fixture.add": ["expect = lambda condition, message: None\n" + honest["fixture.add"][0]],
        "fixture.greet": ['def greet(name):\n    return "Hello"'],
    }
    batch.append((module, blast))
    results = grade_answers_many(course, batch, timeout=10)
    names = ["honest", *TECHNIQUES, "blast radius"]
    return {name: results for name, (results, _) in zip(names, results, strict=True)}


def by_id(results: tuple[ExerciseResult, ...]) -> dict[str, ExerciseResult]:
    return {r.exercise: r for r in results}


@pytest.mark.slow  # the hostile class is graded once, in the module's fixture
def test_an_honest_learner_in_the_same_run_passes_unflagged(
    graded: dict[str, tuple[ExerciseResult, ...]],
) -> None:
    assert {r.exercise: r.verdict for r in graded["honest"]} == {
        "fixture.add": PASSED, "fixture.greet": PASSED, "fixture.total": PASSED,
    }  # fmt: skip


@pytest.mark.slow  # the hostile class is graded once, in the module's fixture
@pytest.mark.parametrize("technique", list(TECHNIQUES))
def test_a_forged_verdict_earns_nothing_and_says_why(
    graded: dict[str, tuple[ExerciseResult, ...]], technique: str
) -> None:
    _, status, reason = TECHNIQUES[technique]
    results = by_id(graded[technique])
    forged = results["fixture.add"]
    assert not forged.passed
    assert forged.verdict == status, forged.message
    assert reason in forged.message
    # the other exercises of the same notebook are honest answers, and stay passed
    assert results["fixture.greet"].verdict == PASSED, results["fixture.greet"].message
    assert results["fixture.total"].verdict == PASSED, results["fixture.total"].message


@pytest.mark.slow  # the hostile class is graded once, in the module's fixture
def test_one_answers_tampering_does_not_change_another_exercises_verdict(
    graded: dict[str, tuple[ExerciseResult, ...]],
) -> None:
    results = by_id(graded["blast radius"])
    assert results["fixture.add"].verdict == TAMPERED
    assert results["fixture.greet"].verdict == "failed"
    assert "greet('Ada') returned 'Hello'" in results["fixture.greet"].message
    assert results["fixture.total"].verdict == PASSED


# Plain code with nothing unusual in its syntax: only the seal, at run time, can tell.
NOT_STATIC = {
    "the checker's helper rebound where the checker finds it (only the canary can tell)",
    "the grader's private folder found next to the kernel's working directory",
}


@pytest.mark.parametrize("technique", list(TECHNIQUES))
def test_the_static_review_flags_every_reflective_technique(technique: str) -> None:
    flags = scrutinize(TECHNIQUES[technique][0])
    if technique in NOT_STATIC:
        assert flags == [], "ordinary code must not be flagged"
    else:
        assert flags, f"no flag for: {technique}"


def test_the_static_review_reads_syntax_not_text() -> None:
    honest = (
        "import logging, sys\n"
        "class JsonFormatter(logging.Formatter):\n"
        "    def format(self, record):\n"
        "        fields = {k: getattr(record, k) for k in ('levelname', 'msg')}\n"
        "        return str(fields)\n"
        "handler = logging.StreamHandler(sys.stdout)\n"
        "text = 'sys.modules and __globals__ in a string are just words'\n"
    )
    assert scrutinize(honest) == []
    assert scrutinize("import sys\nmods = sys.modules") != []
    assert [f.line for f in scrutinize("x = 1\nf = (lambda: 0).__globals__")] == [2]


def test_the_grader_never_leaves_the_graded_notebook_where_a_kernel_can_read_it(
    fixture_course: Course,
) -> None:
    module = fixture_course.catalogue.module("01")
    answer = (
        "import glob, os\n"
        "seen = glob.glob(os.path.join(os.getcwd(), '**', '*.ipynb'), recursive=True)\n"
        "def add(a, b):\n"
        "    return a - b if seen else a + b  # right only if nothing could be read\n"
    )
    [(results, _)] = grade_answers_many(
        fixture_course, [(module, {**solution(fixture_course), "fixture.add": [answer]})],
        timeout=10,
    )  # fmt: skip
    assert by_id(results)["fixture.add"].verdict == PASSED


def test_a_process_a_check_starts_for_learner_code_cannot_read_the_reference(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from prodready._child import PROTECTED_ENV

    reference = tmp_path / "solutions"
    reference.mkdir()
    (reference / "answer.py").write_text("SECRET = 42\n", encoding="utf-8")
    script = tmp_path / "service.py"
    script.write_text("import sys\nprint(open(sys.argv[1]).read().strip())\n", encoding="utf-8")
    run = [sys.executable, "-m", "prodready._child", str(script), str(reference / "answer.py")]
    free = subprocess.run(run, capture_output=True, text=True, check=False)
    assert free.stdout.strip() == "SECRET = 42"  # outside grading, nothing is refused
    sealed = subprocess.run(
        run, capture_output=True, text=True, check=False,
        env={**__import__("os").environ, PROTECTED_ENV: str(reference)},
    )  # fmt: skip
    assert sealed.returncode != 0 and "does not allow reading" in sealed.stderr


def test_an_installed_module_first_imported_without_bytecode_stays_installed_code(
    fixture_course: Course,
) -> None:
    """uv installs no bytecode caches, so a library's first import compiles its source while
    the learner's cell is on the stack, and many libraries then ask for frames (pydantic
    does for every model class). That is installed code, and the honest answer passes."""
    import sysconfig
    import uuid

    site_packages = Path(sysconfig.get_paths()["purelib"])
    name = f"_prodready_test_{uuid.uuid4().hex}"
    library = site_packages / f"{name}.py"
    library.write_text("import sys\n\ndef caller():\n    return sys._getframe(1).f_code.co_name\n")
    answer = f"import {name}\n\ndef add(a, b):\n    {name}.caller()\n    return a + b\n"
    module = fixture_course.catalogue.module("01")
    try:
        [(results, _)] = grade_answers_many(
            fixture_course, [(module, {**solution(fixture_course), "fixture.add": [answer]})],
            timeout=30,
        )  # fmt: skip
    finally:
        library.unlink()
        for cached in (site_packages / "__pycache__").glob(f"{name}.*"):
            cached.unlink()
    assert by_id(results)["fixture.add"].verdict == PASSED, by_id(results)["fixture.add"].message
