"""The front door agrees with itself: pyproject, constraints, environment.yml, Makefile, CI."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import REPO
from prodready._doctor import pinned_versions

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def name_of(requirement: str) -> str:
    return re.split(r"[\[<>=;\s]", requirement)[0].lower().replace("_", "-")


def test_every_dependency_is_pinned_in_the_constraints_file() -> None:
    pins = pinned_versions(REPO / "constraints.txt")
    project = PYPROJECT["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
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
