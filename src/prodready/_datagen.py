"""Large, deterministic inputs: generated on demand, never committed.

Every data set is seeded and written line by line, so a run gives the same bytes on
every machine and Python (only ``random.random()``, integer arithmetic and exact float
products are used: no libm, no version-dependent sampling helpers). A smaller ``rows``
gives a prefix of the full file, which is how the committed samples under ``data/``
were made.

``ensure(name)`` generates once into the course's ``data/cache/`` (gitignored) and then
reuses the file. It writes under a temporary name and renames, next to a small record
of the size it wrote, so a crash or a concurrent run never leaves a half file in use.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DATASETS", "cache_dir", "ensure", "generate"]

VERSION = 1  # bump when any generator's output changes: cached files are then rebuilt
_CHUNK_LINES = 10_000  # lines formatted per write: memory stays flat, writes stay big


@dataclass(frozen=True)
class _Dataset:
    description: str
    filename: str
    rows: int
    lines: Callable[[random.Random, int], Iterator[str]]
    seed: int
    header: bool = False


# Access log. One request per line, space separated (what nginx writes with a custom
# log_format ending in $request_time: seconds, millisecond resolution):
#   2026-11-22T00:00:00.042Z 10.0.3.17 GET /api/orders 200 1532 0.087
# A client that hung up before the response gets "-" for the time (nginx's own habit).
_ENDPOINTS: tuple[tuple[str, str, int, int, int], ...] = (
    # method, path, weight (per 1000 requests), typical low and high latency in ms
    ("GET", "/api/products", 300, 8, 40),
    ("GET", "/api/orders", 200, 15, 90),
    ("POST", "/api/orders", 120, 40, 160),
    ("GET", "/api/cart", 150, 5, 25),
    ("GET", "/api/search", 100, 30, 250),
    ("POST", "/api/login", 60, 90, 180),
    ("GET", "/health", 50, 1, 4),
    ("GET", "/api/reports/daily", 20, 400, 1500),
)
_LOG_START = "2026-11-22"
_MS_PER_DAY = 86_400_000
_HANGUPS_PER_100K = 50  # lines whose latency is "-"


def _pick_endpoint(r: float) -> tuple[str, str, int, int]:
    point = int(r * 1000)
    for method, path, weight, low, high in _ENDPOINTS:
        if point < weight:
            return method, path, low, high
        point -= weight
    method, path, _, low, high = _ENDPOINTS[-1]
    return method, path, low, high


def _latency_ms(rng: random.Random, low: int, high: int) -> int:
    """Mostly within [low, high), with the long tail real services have."""
    tail = rng.random()
    r = rng.random()
    if tail < 0.90:
        return low + int(r * (high - low))
    if tail < 0.99:
        return high + int(r * 4 * high)
    return 5 * high + int(r * 15 * high)


def _access_log_lines(rng: random.Random, rows: int) -> Iterator[str]:
    step = _MS_PER_DAY // rows if rows else 1
    for i in range(rows):
        at = i * step + int(rng.random() * step)
        seconds, ms = divmod(at, 1000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        method, path, low, high = _pick_endpoint(rng.random())
        client = f"10.0.{int(rng.random() * 8)}.{1 + int(rng.random() * 250)}"
        roll = rng.random()
        status = 500 if roll < 0.004 else 404 if roll < 0.02 else 201 if method == "POST" else 200
        size = 120 + int(rng.random() * 4000)
        latency = _latency_ms(rng, low, high)
        seconds_taken = f"{latency // 1000}.{latency % 1000:03d}"  # nginx's $request_time
        shown = "-" if rng.random() * 100_000 < _HANGUPS_PER_100K else seconds_taken
        yield (
            f"{_LOG_START}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z {client} "
            f"{method} {path} {status} {size} {shown}\n"
        )


# Orders CSV: what an export or an import deals with. About 1 row in 400 is dirty
# (a typo in qty, a missing price, a malformed sku), as files from partners are.
_ORDERS_HEADER = "order_id,customer,sku,qty,unit_price,created_at\n"
_SKU_PREFIXES = ("ABC", "KLM", "PQR", "XYZ", "DEF", "MNO")


def _orders_lines(rng: random.Random, rows: int) -> Iterator[str]:
    yield _ORDERS_HEADER
    for i in range(rows):
        order_id = 100_000 + i
        customer = f"C{int(rng.random() * 50_000):05d}"
        sku = f"{_SKU_PREFIXES[int(rng.random() * 6)]}-{int(rng.random() * 10_000):04d}"
        qty = str(1 + int(rng.random() * 12))
        cents = 199 + int(rng.random() * 49_800)
        price = f"{cents // 100}.{cents % 100:02d}"
        day, minute = 1 + int(rng.random() * 30), int(rng.random() * 1440)
        created = f"2026-11-{day:02d}T{minute // 60:02d}:{minute % 60:02d}:00Z"
        dirt = rng.random() * 400
        if dirt < 1:
            damage = int(dirt * 4)  # which kind of damage, reusing the same draw
            if damage == 0:
                qty = ("three", "-2", "0", "")[int(rng.random() * 4)]
            elif damage == 1:
                price = ("", "n/a", "-5.00")[int(rng.random() * 3)]
            elif damage == 2:
                sku = sku.replace("-", "")
            else:
                customer = ""
        yield f"{order_id},{customer},{sku},{qty},{price},{created}\n"


DATASETS_SPEC: dict[str, _Dataset] = {
    "access_log": _Dataset(
        "1,000,000-line access log (~65 MB): method, path, status, seconds taken",
        "access_log.log",
        1_000_000,
        _access_log_lines,
        seed=20261122,
    ),
    "access_log_5m": _Dataset(
        "5,000,000-line access log (~300 MB): the same format, to show memory stays flat",
        "access_log_5m.log",
        5_000_000,
        _access_log_lines,
        seed=20261122,
    ),
    "orders": _Dataset(
        "1,000,000-row orders CSV (~55 MB), about 1 row in 400 invalid",
        "orders.csv",
        1_000_000,
        _orders_lines,
        seed=4242,
        header=True,
    ),
}

DATASETS: dict[str, str] = {name: spec.description for name, spec in DATASETS_SPEC.items()}


def _spec(name: str) -> _Dataset:
    try:
        return DATASETS_SPEC[name]
    except KeyError:
        known = ", ".join(DATASETS)
        raise KeyError(f"no data set {name!r}; the data sets are: {known}") from None


def generate(name: str, folder: Path, *, rows: int | None = None) -> Path:
    """Write data set ``name`` into ``folder`` and return its path.

    Same bytes on every run. ``rows`` writes only the first rows (for samples and tests).
    The file appears complete or not at all: it is written under a temporary name first.
    """
    spec = _spec(name)
    count = spec.rows if rows is None else rows
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.filename
    tmp = folder / f".{spec.filename}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            chunk: list[str] = []
            lines = spec.lines(random.Random(spec.seed), spec.rows)
            for line in itertools.islice(lines, count + 1 if spec.header else count):
                chunk.append(line)
                if len(chunk) >= _CHUNK_LINES:
                    out.write("".join(chunk))
                    chunk.clear()
            out.write("".join(chunk))
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def cache_dir() -> Path:
    """The course's ``data/cache/`` folder (gitignored), where large data sets live."""
    from ._course import find_course_root

    return find_course_root() / "data" / "cache"


def _record(path: Path) -> Path:
    return path.with_name(f"{path.name}.json")


def _is_complete(path: Path) -> bool:
    try:
        record = json.loads(_record(path).read_text(encoding="utf-8"))
        return bool(record["version"] == VERSION and record["bytes"] == path.stat().st_size)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure(name: str) -> Path:
    """The path of data set ``name`` in the cache, generating it first if it is missing,
    truncated or made by an older generator."""
    spec = _spec(name)
    folder = cache_dir()
    path = folder / spec.filename
    if _is_complete(path):
        return path
    generate(name, folder)
    record = {"version": VERSION, "bytes": path.stat().st_size, "rows": spec.rows}
    tmp = folder / f".{_record(path).name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
    tmp.replace(_record(path))
    return path
