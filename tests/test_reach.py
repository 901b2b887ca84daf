"""The course where learners and instructors already are (docs/setup.md).

The fast tests here run in `make test`: course-root discovery in a learner's copy with the
package installed elsewhere, and the plan of tools/bootstrap.py (the set-up without make).

The install-based tests build scratch environments the way each audience's set-up does and
run the course from them: a hub image's install step (from the Dockerfile) with a learner's
nbgitpuller copy of the course, Binder's pip install (resolved by pip, as repo2docker runs
it), the dev container's post-create command, and the bootstrap with no `make` on the PATH.
They take minutes and need the package index, so they run in .ci/run, after `make test`
(PRODREADY_REACH=1). Nothing here needs Docker: what runs inside the images is what is run.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from prodready import _course
from prodready._course import CourseNotFound, find_course_root
from prodready._doctor import pinned_versions

REPO = Path(__file__).resolve().parents[1]
REACH = os.environ.get("PRODREADY_REACH") == "1"
install_based = pytest.mark.skipif(
    not REACH, reason="builds environments (minutes): .ci/run sets PRODREADY_REACH=1"
)
INSTALL_TIMEOUT = 1200  # seconds: a cold install of the whole stack from the index
RUN_TIMEOUT = 300


def _bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bootstrap", REPO / "tools" / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bootstrap = _bootstrap()


# --- fast: a copy of the course, the package installed somewhere else -------------------


def _make_course(folder: Path) -> Path:
    for sub in ("exercises", "notebooks"):
        (folder / sub).mkdir(parents=True)
    return folder


@pytest.fixture
def installed_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a hub image: the package is not inside any course folder."""
    monkeypatch.delenv("PRODREADY_COURSE", raising=False)
    monkeypatch.setattr(_course, "__file__", "/opt/prodready/lib/python3/site-packages/x/y.py")


@pytest.mark.usefixtures("installed_elsewhere")
def test_a_kernel_in_the_copys_exercises_folder_finds_the_copy(tmp_path: Path) -> None:
    copy = _make_course(tmp_path / "home" / "prodready")
    assert find_course_root(copy / "exercises") == copy
    assert find_course_root(copy) == copy


@pytest.mark.usefixtures("installed_elsewhere")
def test_a_terminal_in_the_home_folder_finds_the_one_course_below(tmp_path: Path) -> None:
    home = tmp_path / "home"
    copy = _make_course(home / "prodready")
    (home / "notes").mkdir()
    (home / "todo.txt").write_text("", encoding="utf-8")
    assert find_course_root(home) == copy
    _make_course(home / "prodready-2")
    with pytest.raises(CourseNotFound, match="there are 2 below it"):
        find_course_root(home)


@pytest.mark.usefixtures("installed_elsewhere")
def test_the_course_around_the_working_directory_wins_and_the_variable_wins_over_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outer = _make_course(tmp_path / "outer")
    _make_course(outer / "exercises" / "nested")
    assert find_course_root(outer / "exercises") == outer
    other = _make_course(tmp_path / "other")
    monkeypatch.setenv("PRODREADY_COURSE", str(other))
    assert find_course_root(outer) == other
    monkeypatch.delenv("PRODREADY_COURSE")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseNotFound, match="at or above"):
        find_course_root(tmp_path / "empty")


# --- fast: the bootstrap's plan (Windows' layout included) ------------------------------


def test_the_bootstrap_uses_scripts_on_windows_and_bin_elsewhere() -> None:
    venv = Path("course") / ".venv"
    assert bootstrap.program(venv, "python", windows=True) == venv / "Scripts" / "python.exe"
    assert bootstrap.program(venv, "jupyter", windows=True) == venv / "Scripts" / "jupyter.exe"
    assert bootstrap.program(venv, "python", windows=False) == venv / "bin" / "python"


def test_the_bootstrap_installs_with_the_pinned_uv_and_falls_back_to_pip(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    get_uv, install = bootstrap.uv_commands(venv)
    python = str(bootstrap.program(venv, "python"))
    assert get_uv[:4] == [python, "-m", "pip", "install"]
    assert get_uv[-1] == f"uv=={pinned_versions(REPO / 'constraints.txt')['uv']}"
    assert install == [
        str(bootstrap.program(venv, "uv")), "pip", "install", "--compile-bytecode",
        "--python", python, *bootstrap.INSTALL_DEPS,
    ]  # fmt: skip
    assert bootstrap.pip_command(venv)[-4:] == bootstrap.INSTALL_DEPS


def test_the_bootstrap_reinstalls_when_the_pins_are_newer_than_the_stamp(tmp_path: Path) -> None:
    root, venv = tmp_path, tmp_path / ".venv"
    for name in ("pyproject.toml", "constraints.txt"):
        (root / name).write_text("", encoding="utf-8")
    assert not bootstrap.is_up_to_date(venv, root)
    python = bootstrap.program(venv, "python")
    python.parent.mkdir(parents=True)
    python.write_text("", encoding="utf-8")
    (venv / ".installed").touch()
    assert bootstrap.is_up_to_date(venv, root)
    later = (venv / ".installed").stat().st_mtime + 10
    os.utime(root / "constraints.txt", (later, later))
    assert not bootstrap.is_up_to_date(venv, root)


def test_the_bootstrap_puts_the_environments_programs_first_on_the_path(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    env = bootstrap.course_env(venv)
    assert env["PATH"].split(os.pathsep)[0] == str(bootstrap.scripts_dir(venv))
    command = bootstrap.lab_command(venv, ["--no-browser"], root=tmp_path)
    assert command[:2] == [str(bootstrap.program(venv, "jupyter")), "lab"]
    assert f"--ServerApp.root_dir={tmp_path}" in command and command[-1] == "--no-browser"


# --- install-based helpers ----------------------------------------------------------------


def course_files() -> list[str]:
    """What a clone holds (nbgitpuller's, Binder's, a dev container's): the tracked files,
    and in a working tree the new ones not committed yet; never the ignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    return sorted(f for f in listed.split("\0") if f and (REPO / f).is_file())


def export(target: Path, only: Sequence[str] = ()) -> Path:
    """A copy of the course's files into ``target`` (all, or those under ``only``)."""
    for name in course_files():
        if only and not any(name == o or name.startswith(o.rstrip("/") + "/") for o in only):
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)
    return target


def python_for(minor: str) -> str:
    """An interpreter of the version an image uses (pyenv's, on this kind of machine)."""
    if override := os.environ.get("PRODREADY_REACH_PYTHON"):
        return override
    for found in sorted(Path.home().glob(f".pyenv/versions/{minor}.*/bin/python{minor}")):
        return str(found)
    found = shutil.which(f"python{minor}")
    if found and "shims" not in found:
        return found
    pytest.fail(f"no Python {minor} here for the image-like tests: set PRODREADY_REACH_PYTHON")


def wrapper_bin(folder: Path, python: str, names: Sequence[str]) -> Path:
    """A folder of launchers for ``python`` under ``names``: a PATH with nothing else."""
    folder.mkdir(parents=True)
    for name in names:
        launcher = folder / name
        launcher.write_text(f'#!/bin/sh\nexec "{python}" "$@"\n', encoding="utf-8")
        launcher.chmod(0o755)
    return folder


def clean_env(path: Sequence[Path | str], home: Path | None = None) -> dict[str, str]:
    """This machine's environment minus the test session's course settings and whatever
    points into the developer's .venv: the PATH is exactly ``path``."""
    dropped = ("PRODREADY_", "PYTEST_", "VIRTUAL_ENV", "PYTHONPATH", "JPY_", "JUPYTER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["PATH"] = os.pathsep.join(map(str, path))
    if home is not None:
        env["HOME"] = str(home)
    return env


def run(
    command: Sequence[str | Path],
    cwd: Path,
    env: dict[str, str],
    timeout: float = RUN_TIMEOUT,
    expect: int | None = 0,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if expect is not None:
        assert result.returncode == expect, (
            f"`{shlex.join(map(str, command))}` in {cwd} exited {result.returncode}, "
            f"not {expect}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n"
            f"{result.stderr[-4000:]}"
        )
    return result


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return {_normal(name): version for name, version in json.loads(out).items()}


PINS = pinned_versions(REPO / "constraints.txt")
NOT_PINNED = {"pip", "prodready"}  # the installer's own pip, and the course itself


def drifted(versions: dict[str, str]) -> list[str]:
    """Pinned packages at another version than the pin."""
    return sorted(f"{n} {v} (pinned {PINS[n]})" for n, v in versions.items() if PINS.get(n, v) != v)


def unpinned(versions: dict[str, str]) -> list[str]:
    return sorted(n for n in versions if n not in PINS and n not in NOT_PINNED)


def course_requirements() -> set[str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_normal(re.split(r"[\[<>=;\s]", r)[0]) for r in project["dependencies"]}


def dockerfile() -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    """The Dockerfile's ARG defaults and its COPY lines (sources, destination)."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))
    copies = [
        (line.split()[1:-1], line.split()[-1])
        for line in text.splitlines()
        if line.startswith("COPY ")
    ]
    return args, copies


def devcontainer() -> dict[str, object]:
    config = json.loads((REPO / ".devcontainer" / "devcontainer.json").read_text("utf-8"))
    assert isinstance(config, dict)
    return config


def image_python_version(image: str) -> str:
    match = re.search(r":(?:\d+-)?(3\.\d+)", image)
    assert match, f"no Python version in the image tag {image}"
    return match[1]


# --- a hub: the image's install, a learner's nbgitpuller copy ----------------------------


@dataclass(frozen=True)
class Hub:
    venv: Path  # the image's /opt/prodready
    home: Path  # a learner's home folder on the hub
    copy: Path  # the course, as nbgitpuller cloned it into that home

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self) -> dict[str, str]:
        return clean_env([self.bin, "/usr/bin", "/bin"], home=self.home)

    def prodready(
        self, *args: str, cwd: Path | None = None, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        return run([self.bin / "prodready", *args], cwd or self.copy, self.env(), expect=expect)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    """The Dockerfile's install step, outside Docker: the same Python version, the same
    files copied in, the same uv command (with a cache, which changes nothing installed)."""
    args, copies = dockerfile()
    base = tmp_path_factory.mktemp("hub")
    context = base / "build-context"
    for sources, destination in copies:
        assert destination.startswith("/tmp/course/"), destination
        where = context / destination.removeprefix("/tmp/course/")
        for source in sources:
            if source.endswith("/"):
                export(base / "export", [source])
                shutil.copytree(base / "export" / source, where, dirs_exist_ok=True)
            else:
                export(where, [source])
    venv = base / "opt-prodready"
    python = venv / "bin" / "python"
    env = clean_env(["/usr/bin", "/bin"])
    run([python_for(args["PYTHON_VERSION"]), "-m", "venv", venv], base, env)
    run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         f"uv=={PINS['uv']}"],
        base, env, timeout=INSTALL_TIMEOUT,
    )  # fmt: skip
    run(
        [venv / "bin" / "uv", "pip", "install", "--compile-bytecode", "--python", python,
         "-c", context / "constraints.txt", context,
         f"jupyterhub=={args['JUPYTERHUB_VERSION']}",
         f"nbgitpuller=={args['NBGITPULLER_VERSION']}"],
        base, env, timeout=INSTALL_TIMEOUT,
    )  # fmt: skip
    home = base / "home" / "jovyan"
    return Hub(venv, home, export(home / "prodready"))


@install_based
def test_hub_image_holds_the_pinned_stack_and_the_package_with_its_data(hub: Hub) -> None:
    versions = installed(hub.venv / "bin" / "python")
    assert drifted(versions) == []
    assert course_requirements() - set(versions) == set()
    assert {"jupyterhub", "nbgitpuller"} <= set(versions)
    run([hub.venv / "bin" / "uv", "pip", "check", "--python", hub.venv / "bin" / "python"],
        hub.home, hub.env())  # fmt: skip
    where = run(
        [hub.bin / "python", "-c",
         "import importlib.resources as r, prodready; print(prodready.__file__); "
         "print(*(f for f in ('catalogue.toml', 'nbval_sanitize.cfg', 'py.typed') "
         "if r.files('prodready').joinpath(f).is_file()))"],
        hub.home, hub.env(),
    ).stdout.splitlines()  # fmt: skip
    assert Path(where[0]).is_relative_to(hub.venv) and not Path(where[0]).is_relative_to(hub.copy)
    assert where[1].split() == ["catalogue.toml", "nbval_sanitize.cfg", "py.typed"]


@install_based
def test_hub_learner_loop_runs_in_the_copy_and_keeps_progress_there(hub: Hub) -> None:
    assert "exercises passed" in hub.prodready("progress").stdout
    assert "Hint 1/" in hub.prodready("hint", "validation.strict_types").stdout
    checked = hub.prodready("check", "01", expect=1)
    assert "01_validation: 0/" in checked.stdout and "✗ validation.strict_types" in checked.stdout
    progress = json.loads((hub.copy / ".prodready" / "progress.json").read_text("utf-8"))
    assert progress["validation.strict_types"]["passed"] is False
    assert progress["validation.strict_types"]["hints_seen"] >= 1
    backups = hub.copy / ".prodready" / "backups"
    before = set(backups.iterdir()) if backups.exists() else set()
    reset = hub.prodready("reset", "validation.strict_types")
    assert "Restored the starting code of validation.strict_types" in reset.stdout
    assert len(set(backups.iterdir()) - before) == 1
    # A terminal on the hub opens in the home folder; the course is the one folder below.
    assert "exercises passed" in hub.prodready("progress", cwd=hub.home).stdout
    assert not (hub.home / ".prodready").exists()


@install_based
def test_hub_course_folder_can_be_named_from_anywhere(hub: Hub) -> None:
    env = {**hub.env(), "PRODREADY_COURSE": str(hub.copy)}
    shown = run([hub.bin / "prodready", "progress"], Path("/"), env)
    assert "exercises passed" in shown.stdout


KERNEL_SCRIPT = r"""
import json, sys
from jupyter_client.manager import start_new_kernel

manager, client = start_new_kernel(kernel_name="python3", cwd=sys.argv[1])
seen = []
def hook(msg):
    content = msg["content"]
    if msg["msg_type"] == "stream":
        seen.append(content["text"])
    elif msg["msg_type"] == "error":
        seen.append(f"ERROR {content['ename']}: {content['evalue']}")
try:
    client.execute_interactive(
        "import json, sys, prodready\n"
        "prodready.progress()\n"
        "print(json.dumps([sys.executable, str(prodready.Course.discover().root)]))\n"
        "!prodready progress\n",
        timeout=120, output_hook=hook,
    )
finally:
    client.stop_channels()
    manager.shutdown_kernel(now=True)
print("".join(seen))
"""


@install_based
def test_hub_kernel_in_the_copys_exercises_finds_the_copy(hub: Hub, tmp_path: Path) -> None:
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL_SCRIPT, encoding="utf-8")
    # The kernel's PATH lacks the environment: `!prodready` must work all the same.
    env = clean_env(["/usr/bin", "/bin"], home=hub.home)
    out = run([hub.bin / "python", script, hub.copy / "exercises"], hub.home, env).stdout
    assert "ERROR" not in out, out
    executable, root = json.loads(next(line for line in out.splitlines() if line.startswith("[")))
    assert Path(executable).parent == hub.bin and Path(root) == hub.copy
    assert "exercises passed" in out


@install_based
def test_hub_instructor_grades_collected_submissions(hub: Hub, tmp_path: Path) -> None:
    submissions = tmp_path / "submissions"
    workbook = "01_validation.ipynb"
    for learner, source in (("alice", hub.copy / "exercises"), ("bob", hub.copy / "solutions")):
        (submissions / learner / "exercises").mkdir(parents=True)
        shutil.copy2(source / workbook, submissions / learner / "exercises" / workbook)
    out = tmp_path / "gradebook"
    hub.prodready(
        "grade", str(submissions), "--out", str(out), "--modules", "01", "--jobs", "2",
        "--course", str(hub.copy), cwd=tmp_path,
    )  # fmt: skip
    with (out / "summary.csv").open(encoding="utf-8", newline="") as f:
        summary = {row["learner"]: row for row in csv.DictReader(f)}
    assert summary["alice"]["passed"] == "0"
    assert summary["bob"]["passed"] == summary["bob"]["total"] != "0"
    assert {p.name for p in (out / "feedback").iterdir()} == {"alice.html", "bob.html"}


# --- Binder: what repo2docker's pip step resolves to ------------------------------------


@install_based
def test_binder_requirements_resolve_to_exactly_the_pins(tmp_path: Path) -> None:
    """repo2docker copies the repository, then, in its root, runs
    `pip install --no-cache-dir -r binder/requirements.txt` (buildpacks/python). pip
    resolves that here, in an environment of the runtime.txt Python; --dry-run --report
    says what it would install without downloading every wheel."""
    runtime = (REPO / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    repo_dir = export(tmp_path / "repo")
    venv = tmp_path / "notebook-env"
    env = clean_env(["/usr/bin", "/bin"])
    run([python_for(runtime.removeprefix("python-")), "-m", "venv", venv], tmp_path, env)
    report = tmp_path / "report.json"
    run(
        [venv / "bin" / "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
         "--dry-run", "--quiet", "--report", report, "-r", "binder/requirements.txt"],
        repo_dir, env, timeout=INSTALL_TIMEOUT,
    )  # fmt: skip
    plan = json.loads(report.read_text(encoding="utf-8"))["install"]
    versions = {_normal(item["metadata"]["name"]): item["metadata"]["version"] for item in plan}
    assert drifted(versions) == [] and unpinned(versions) == []
    assert course_requirements() - set(versions) == set()
    course = next(item for item in plan if _normal(item["metadata"]["name"]) == "prodready")
    assert course["download_info"]["url"] == repo_dir.as_uri()
    assert course["download_info"]["dir_info"].get("editable") is True
    assert set(course.get("requested_extras") or []) == {"dev"}


# --- a dev container: its post-create command --------------------------------------------


@install_based
def test_dev_container_post_create_sets_up_a_checked_course(tmp_path: Path) -> None:
    config = devcontainer()
    python = python_for(image_python_version(str(config["image"])))
    tools = wrapper_bin(tmp_path / "image-bin", python, ["python3", "python"])
    workspace = export(tmp_path / "workspace")
    env = clean_env([tools, "/usr/bin", "/bin"])
    done = run(
        ["sh", "-c", str(config["postCreateCommand"])], workspace, env, timeout=INSTALL_TIMEOUT
    )
    assert "All good." in done.stdout
    venv_python = workspace / ".venv" / "bin" / "python"
    versions = installed(venv_python)
    assert drifted(versions) == [] and unpinned(versions) == []
    minor = run([venv_python, "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
                workspace, env).stdout.strip()  # fmt: skip
    assert minor == image_python_version(str(config["image"]))


# --- no make: the bootstrap with Python alone ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serving(command: Sequence[str | Path], cwd: Path, env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen(
        [str(c) for c in command], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _get(url: str, token: str, deadline: float) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@install_based
@pytest.mark.skipif(sys.platform == "win32", reason="the scratch PATH is built for POSIX")
def test_bootstrap_without_make_sets_up_and_serves_the_course(tmp_path: Path) -> None:
    python = python_for("3.12")
    only_python = wrapper_bin(tmp_path / "only-python", python, ["python"])
    env = clean_env([only_python])
    assert shutil.which("make", path=env["PATH"]) is None
    course = export(tmp_path / "course")
    first = run(["python", "tools/bootstrap.py"], course, env, timeout=INSTALL_TIMEOUT)
    assert "environment ready in .venv" in first.stdout
    assert (course / ".venv" / ".installed").exists()
    versions = installed(course / ".venv" / "bin" / "python")
    assert drifted(versions) == [] and unpinned(versions) == []
    again = run(["python", "tools/bootstrap.py"], course, env)
    assert ".venv is up to date" in again.stdout
    assert "All good." in run(["python", "tools/bootstrap.py", "doctor"], course, env).stdout
    port, token = _free_port(), "reach-test"
    lab = ["python", "tools/bootstrap.py", "lab", "--no-browser", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]  # fmt: skip
    with _serving(lab, course, env):
        page = f"http://127.0.0.1:{port}/api/contents/notebooks/00_start_here.ipynb?content=0"
        assert _get(page, token, deadline=time.monotonic() + 120) == 200
