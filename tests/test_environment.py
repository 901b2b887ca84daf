"""The front door agrees with itself: pyproject, constraints, environment.yml, Makefile, CI."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
import tomllib
from types import ModuleType

import yaml
from packaging.specifiers import SpecifierSet

from conftest import REPO
from prodready._doctor import pinned_versions

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def name_of(requirement: str) -> str:
    return re.split(r"[\[<>=;\s]", requirement)[0].lower().replace("_", "-")


def test_every_dependency_is_pinned_in_the_constraints_file() -> None:
    pins = pinned_versions(REPO / "constraints.txt")
    project = PYPROJECT["project"]
    extras = [r for extra in project["optional-dependencies"].values() for r in extra]
    wanted = [*project["dependencies"], *extras]
    assert [name_of(r) for r in wanted if name_of(r) not in pins] == []


def test_environment_yml_installs_what_make_installs() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python" + PYPROJECT["project"]["requires-python"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "-c constraints.txt -e '.[dev]'" in makefile
    assert pip_section == ["-c constraints.txt", "-e .[dev]"]


def test_ci_and_readme_use_the_same_two_commands() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make test" in ci
    assert readme.index("make lab") < readme.index("##")
    assert "make test" in readme


def test_the_public_api_is_small_and_sorted() -> None:
    import prodready

    assert prodready.__all__ == sorted(prodready.__all__)
    assert all(hasattr(prodready, name) for name in prodready.__all__)


# --- the other front doors (docs/setup.md): Binder, the hub image, a dev container and the
# bootstrap without make install the same pinned set the same way as the Makefile.

MAKEFILE = (REPO / "Makefile").read_text(encoding="utf-8")


def make_install_args() -> list[str]:
    line = re.search(r"^INSTALL_DEPS := (.+)$", MAKEFILE, flags=re.MULTILINE)
    assert line, "the Makefile's INSTALL_DEPS line is gone"
    return shlex.split(line[1])


def supported_pythons() -> list[str]:
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    return [f"3.{minor}" for minor in range(8, 20) if f"3.{minor}" in spec]


def load_bootstrap() -> ModuleType:
    path = REPO / "tools" / "bootstrap.py"
    spec = importlib.util.spec_from_file_location("bootstrap", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_binder_installs_what_make_installs() -> None:
    # A binder/ folder makes repo2docker ignore the root (environment.yml among it);
    # requirements.txt and runtime.txt alone select its Python buildpack.
    assert sorted(p.name for p in (REPO / "binder").iterdir()) == [
        "requirements.txt",
        "runtime.txt",
    ]
    lines = (REPO / "binder" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    wanted = [line for line in lines if line.strip() and not line.startswith("#")]
    # pip reads -c relative to the file and -e relative to the root, where repo2docker runs it.
    constraint, constraints, editable, project = make_install_args()
    assert (constraint, editable) == ("-c", "-e")
    assert wanted == [f"-c ../{constraints}", f"-e {project}"]
    runtime = (REPO / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    assert runtime.removeprefix("python-") in supported_pythons()


def test_hub_image_installs_the_pins_once_outside_the_course() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))
    assert args["PYTHON_VERSION"] in supported_pythons()
    assert "FROM python:${PYTHON_VERSION}-" in text
    copied = [
        w for line in text.splitlines() if line.startswith("COPY ") for w in line.split()[1:-1]
    ]
    readme = PYPROJECT["project"]["readme"]
    assert sorted(copied) == sorted(["pyproject.toml", readme, "constraints.txt", "src/"])
    install = " ".join(text.split("\\\n"))
    assert "uv==$(sed -n 's/^uv==//p' /tmp/course/constraints.txt)" in install
    # Non-editable, from the same constraints as make: the course folder can be anywhere.
    assert re.search(r"uv\" pip install .*-c /tmp/course/constraints.txt /tmp/course ", install)
    assert " -e " not in install and "--editable" not in install
    for name in ("JUPYTERHUB_VERSION", "NBGITPULLER_VERSION"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", args[name]), f"{name} must be an exact version"


def test_dev_container_runs_the_readme_setup() -> None:
    config = json.loads((REPO / ".devcontainer" / "devcontainer.json").read_text("utf-8"))
    target = config["postCreateCommand"].removeprefix("make ")
    assert re.search(rf"^{target}: \$\(STAMP\)", MAKEFILE, flags=re.MULTILINE), (
        "the post-create step must be a make target that sets up .venv first"
    )
    python = re.search(r":(?:\d+-)?(3\.\d+)", config["image"])
    assert python and python[1] in supported_pythons()
    settings = config["customizations"]["vscode"]["settings"]
    assert settings["python.defaultInterpreterPath"].endswith("/.venv/bin/python")


def test_bootstrap_does_what_make_does() -> None:
    bootstrap = load_bootstrap()
    assert make_install_args() == bootstrap.INSTALL_DEPS
    assert f"--LabApp.default_url={bootstrap.START_PAGE}" in MAKEFILE
    assert "--ServerApp.root_dir=" in MAKEFILE
    option, value = bootstrap.LAB_EXTENSIONS.split("=", 1)
    assert f"{option}='{value}'" in MAKEFILE, "make lab and the bootstrap enable one extension"
    check_python = ast.parse((REPO / "tools" / "check_python.py").read_text(encoding="utf-8"))
    supported = next(
        ast.literal_eval(node.value)
        for node in check_python.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "SUPPORTED"
    )
    assert supported == bootstrap.SUPPORTED
    assert [f"{a}.{b}" for a, b in supported] == [supported_pythons()[0], supported_pythons()[-1]]


def test_the_images_use_one_python_version() -> None:
    docker = re.search(
        r"^ARG PYTHON_VERSION=(\S+)$", (REPO / "Dockerfile").read_text("utf-8"), re.M
    )
    binder = (REPO / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    config = json.loads((REPO / ".devcontainer" / "devcontainer.json").read_text("utf-8"))
    devcontainer = re.search(r":(?:\d+-)?(3\.\d+)", config["image"])
    assert docker and devcontainer
    assert {docker[1], binder.removeprefix("python-"), devcontainer[1]} == {docker[1]}


def test_ci_runs_the_reach_tests_after_make_test() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "PRODREADY_REACH=1" in ci and ci.index("make test") < ci.index("PRODREADY_REACH=1")
    assert "tests/test_reach.py" in ci
