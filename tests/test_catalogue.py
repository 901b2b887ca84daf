from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prodready._catalogue import CatalogueError, load_catalogue, parse_catalogue


def module(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "number": "01",
        "slug": "demo",
        "title": "Demo",
        "exercise": [{"id": "demo.one", "title": "One", "hints": ["nudge", "closer"]}],
    }
    return {**base, **overrides}


def test_the_shipped_catalogue_is_valid_and_ordered() -> None:
    catalogue = load_catalogue()
    numbers = [m.number for m in catalogue]
    assert numbers == sorted(numbers) and numbers[0] == "01"
    assert all(2 <= len(ex.hints) <= 3 for ex in catalogue.exercises)


def test_every_last_hint_shows_the_shape_and_leaves_the_key_part_blank() -> None:
    """A nudge to a near-answer, never the answer: the last hint leaves a ``____`` blank."""
    complete = [ex.id for ex in load_catalogue().exercises if "____" not in ex.hints[-1]]
    assert complete == [], f"the last hint gives the whole answer in {complete}"


def test_lookup_by_number_slug_name_and_exercise_id() -> None:
    catalogue = parse_catalogue({"module": [module()]})
    assert catalogue.module("1") is catalogue.module("01") is catalogue.module("demo")
    assert catalogue.module("01_demo").slug == "demo"
    assert catalogue.module_of("demo.one").number == "01"
    assert catalogue.select("demo.one")[1][0].id == "demo.one"
    assert [e.id for e in catalogue.select("01")[1]] == ["demo.one"]


def test_unknown_names_say_what_exists() -> None:
    catalogue = parse_catalogue({"module": [module()]})
    with pytest.raises(KeyError, match="01_demo"):
        catalogue.module("99")
    with pytest.raises(KeyError, match="prodready progress"):
        catalogue.exercise("demo.nope")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"module": [module(number="1")]}, "two digits"),
        ({"module": [module(slug="Demo")]}, "lower_snake_case"),
        ({"module": [module(exercise=[{"id": "other.one", "title": "x", "hints": ["a", "b"]}])]},
         "must look like 'demo.name'"),
        ({"module": [module(exercise=[{"id": "demo.one", "title": "x", "hints": ["a"]}])]},
         "2 or 3 non-empty hints"),
        ({"module": [module(exercise=[{"id": "demo.one", "title": "x", "hints": ["a", ""]}])]},
         "2 or 3 non-empty hints"),
        ({"module": [module(), module(slug="demo2", exercise=[
            {"id": "demo2.one", "title": "x", "hints": ["a", "b"]}])]}, "used twice"),
        ({"module": [module(number="02"), module(slug="demo2", exercise=[])]}, "learning order"),
        ({"module": [module(exercise=[{"id": "demo.one", "hints": ["a", "b"]}] * 2)]},
         "title is missing"),
        ({}, "no [[module]]"),
    ],
)  # fmt: skip
def test_invalid_catalogues_are_refused_with_every_problem_named(
    raw: dict[str, Any], problem: str
) -> None:
    with pytest.raises(CatalogueError) as error:
        parse_catalogue(raw)
    assert problem in str(error.value)


def test_an_unreadable_catalogue_file_is_a_catalogue_error(tmp_path: Path) -> None:
    bad = tmp_path / "catalogue.toml"
    bad.write_text("[[module]\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(bad)
