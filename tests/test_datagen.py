"""The data generator: same bytes every run, prefixes for samples, files that appear whole."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest

from prodready import _datagen
from prodready._checks.streaming import ACCESS_LOG_P95, reference_p95

DATA = Path(__file__).resolve().parents[1] / "data"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(_datagen.DATASETS))
def test_two_runs_write_the_same_bytes(name: str, tmp_path: Path) -> None:
    first = _datagen.generate(name, tmp_path / "a", rows=3000)
    second = _datagen.generate(name, tmp_path / "b", rows=3000)
    assert first.read_bytes() == second.read_bytes()
    assert first.stat().st_size > 3000 * 40


@pytest.mark.parametrize("name", sorted(_datagen.DATASETS))
def test_a_smaller_run_is_a_prefix_of_a_bigger_one(name: str, tmp_path: Path) -> None:
    small = _datagen.generate(name, tmp_path / "small", rows=500).read_bytes()
    large = _datagen.generate(name, tmp_path / "large", rows=2000).read_bytes()
    assert large.startswith(small) and len(large) > len(small)


@pytest.mark.parametrize(
    ("sample", "name", "rows"),
    [
        ("streaming_orders_sample.csv", "orders", 2000),
        ("streaming_access_sample.log", "access_log", 6000),
    ],
)
def test_committed_samples_are_what_the_generator_writes(
    sample: str, name: str, rows: int, tmp_path: Path
) -> None:
    generated = _datagen.generate(name, tmp_path, rows=rows)
    assert digest(generated) == digest(DATA / sample)


def test_the_orders_csv_has_a_header_and_some_dirty_rows(tmp_path: Path) -> None:
    lines = _datagen.generate("orders", tmp_path, rows=2000).read_text().splitlines()
    assert lines[0] == "order_id,customer,sku,qty,unit_price,created_at"
    assert len(lines) == 2001
    assert any(",three," in line or ",," in line for line in lines)


def test_generate_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    path = _datagen.generate("access_log", tmp_path, rows=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_crash_while_writing_leaves_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _datagen.generate("access_log", tmp_path, rows=100).read_bytes()
    spec = _datagen.DATASETS_SPEC["access_log"]

    def lines_then_crash(rng: random.Random, rows: int) -> Iterator[str]:
        yield from islice(spec.lines(rng, rows), 50)
        raise OSError("disk full")

    broken = _datagen._Dataset(
        spec.description, spec.filename, spec.rows, lines_then_crash, spec.seed
    )
    monkeypatch.setitem(_datagen.DATASETS_SPEC, "access_log", broken)
    with pytest.raises(OSError, match="disk full"):
        _datagen.generate("access_log", tmp_path, rows=100)
    assert (tmp_path / spec.filename).read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.filename]


@pytest.fixture
def small_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ensure() pointed at an empty cache, with data sets shrunk to 200 rows."""
    monkeypatch.setattr(_datagen, "cache_dir", lambda: tmp_path / "cache")
    for name, spec in list(_datagen.DATASETS_SPEC.items()):
        small = _datagen._Dataset(spec.description, spec.filename, 200, spec.lines, spec.seed,
                                  spec.header)  # fmt: skip
        monkeypatch.setitem(_datagen.DATASETS_SPEC, name, small)
    return tmp_path / "cache"


def test_ensure_generates_once_then_reuses(small_cache: Path) -> None:
    path = _datagen.ensure("orders")
    assert path.parent == small_cache and path.exists()
    stamp = path.stat().st_mtime_ns
    assert _datagen.ensure("orders") == path
    assert path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("damage", ["truncate", "delete", "delete-record"])
def test_ensure_regenerates_a_damaged_file(small_cache: Path, damage: str) -> None:
    path = _datagen.ensure("access_log")
    whole = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(whole[: len(whole) // 2])
    elif damage == "delete":
        path.unlink()
    else:
        path.with_name(f"{path.name}.json").unlink()
    assert _datagen.ensure("access_log").read_bytes() == whole


def test_ensure_rebuilds_files_of_an_older_generator(
    small_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _datagen.ensure("orders")
    path.write_text("stale\n")
    record = path.with_name(f"{path.name}.json")
    record.write_text(f'{{"version": 0, "bytes": {path.stat().st_size}}}')
    assert _datagen.ensure("orders").read_text().startswith("order_id,")


def test_an_unknown_data_set_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="access_log"):
        _datagen.generate("nope", tmp_path)


def test_every_data_set_is_described() -> None:
    assert set(_datagen.DATASETS) == set(_datagen.DATASETS_SPEC)
    assert all(_datagen.DATASETS.values())


def test_the_streaming_check_knows_the_true_p95_of_the_full_log(tmp_path: Path) -> None:
    """The mini-task's expected answer is a constant: recompute it from the generator."""
    log = _datagen.generate("access_log", tmp_path)
    assert reference_p95(log) == ACCESS_LOG_P95
