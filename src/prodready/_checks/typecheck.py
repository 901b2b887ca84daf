"""Checks for module 07: type hints and mypy.

Every check runs ``mypy --strict`` on the learner's answer cell (found through the
code objects the check receives: IPython keeps each cell's source in ``linecache``),
refuses the ways to switch the checker off (``cast``, ``# type: ignore``, ``# mypy:``
comments, ``no_type_check``, and ``Any`` in the signatures the task names, as mypy
sees them), and then tests the code's behaviour, so a type-clean answer that still has
the production bug fails too. ``Any`` is judged by what mypy infers, not by spelling:
an honest ``dict[str, Any]`` that is checked before use passes, and the implicit
``Any`` of an unvalidated ``json.loads`` fails on malformed input.

mypy runs in-process with ``-c``: no file is written for the cell, no config file is read
from the folder the notebook runs in, and its cache lives in a temporary folder of its own
for the life of the process (never ``.mypy_cache`` in the course: mypy writes one even with
``--no-incremental``; and never shared between processes: mypy does not support concurrent
runs on one cache, python/mypy#21136). The first check in a kernel reads the standard
library's stubs (about a second); the cache makes the later ones several times faster.
Errors are quoted with line numbers relative to the cell.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import functools
import io
import json
import linecache
import os
import re
import shutil
import sys
import tempfile
import time
import tokenize
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal, localcontext
from pathlib import Path

from mypy import api as mypy_api

from .._check import Fail, checker, expect

MYPY_FLAGS = (
    "--strict",
    "--config-file=",  # the folder's pyproject.toml must not change what is checked
    "--no-error-summary",
    "--hide-error-context",
    "--no-color-output",  # a kernel looks like a colour terminal to mypy
)
_MYPY_LINE = re.compile(r"^<string>:(\d+): (error|note): (.*)$")
_REVEALED = re.compile(r'^Revealed type is "(.*)"$')
_ANY_TYPE = re.compile(r"(?<![\w.])Any(?!\w)")
_SHOWN_FINDINGS = 8

_ANY = (
    "`Any` in a signature switches the checker off for every caller: mypy stays quiet "
    "and the bug ships. Say what the value really is (a TypedDict, a dataclass, a "
    "Pydantic model, a TypeVar, or `object` plus a check)"
)
_CAST = (
    "`cast()` is a promise mypy cannot verify and Python never checks: the None or the "
    "float it hides still reaches production. Narrow with a real check instead"
)
_IGNORE = (
    "`# type: ignore` hides the error mypy found, and the bug it points at still ships. "
    "Fix the code so `mypy --strict` has nothing to report"
)
_INLINE_CONFIG = (
    "a `# mypy:` comment changes mypy's settings for the cell; the check runs "
    "`mypy --strict` the way CI does. Remove it and fix what it hid"
)
_NO_TYPE_CHECK = (
    "`no_type_check` tells mypy to skip the function, so nothing in it is checked. "
    "Annotate it instead"
)
_BANNED_NAMES = {
    "cast": _CAST,
    "no_type_check": _NO_TYPE_CHECK,
    "no_type_check_decorator": _NO_TYPE_CHECK,
}


@dataclass(frozen=True)
class Probe:
    """Code the check appends to the learner's cell. mypy must accept it, or, for a
    probe that ``rejects``, must report an error in it (a drifted fake must not fit)."""

    code: str
    failure: str  # the teaching message when mypy does the opposite
    rejects: bool = False
    argument_failure: str = ""  # instead, when mypy refused the kind of collection passed


@dataclass(frozen=True)
class Finding:
    line: int
    kind: str  # "error" or "note"
    text: str


def cell_source(*things: object) -> str:
    """The whole answer cell that defined ``things`` (functions or classes)."""
    files = [f for f in (_defining_file(t) for t in things) if f]
    if not files:
        raise Fail(
            "the check cannot find the code of your answer cell: run the answer cell, "
            "then the check cell again"
        )
    if len(set(files)) > 1:
        raise Fail(
            "the names this check needs were defined in different cells: keep the "
            "exercise's code together in its answer cell (mypy checks that cell on its own)"
        )
    source = "".join(linecache.getlines(files[0]))
    expect(
        bool(source.strip()),
        "the source of your answer cell is not available: run the answer cell again",
    )
    return source


def _defining_file(thing: object) -> str | None:
    candidates: list[object] = [thing]
    if isinstance(thing, type):
        candidates = list(vars(thing).values())
    for candidate in candidates:
        if isinstance(candidate, staticmethod | classmethod):
            candidate = candidate.__func__
        if isinstance(candidate, property):
            candidate = candidate.fget
        if isinstance(thing, type) and not getattr(candidate, "__qualname__", "").startswith(
            f"{thing.__qualname__}."
        ):
            continue  # inherited or generated (Protocol's __init__, a dataclass's __eq__)
        code = getattr(candidate, "__code__", None)
        filename = getattr(code, "co_filename", None)
        if isinstance(filename, str) and linecache.getlines(filename):
            return filename
    return None


def silencers(source: str) -> list[str]:
    """Every way the cell switches mypy off, as ``line N: why that is not a fix``."""
    found: list[tuple[int, str]] = []
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError) as e:
        raise Fail(f"your answer cell is not valid Python: {e}") from None
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        comment = token.string.lstrip("#").strip()
        if re.search(r"\btype:\s*ignore", comment):
            found.append((token.start[0], _IGNORE))
        elif comment.startswith("mypy:"):
            found.append((token.start[0], _INLINE_CONFIG))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]  # `import cast as c` too
        else:
            continue
        found.extend((node.lineno, _BANNED_NAMES[n]) for n in names if n in _BANNED_NAMES)
    lines_by_reason: dict[str, list[int]] = {}
    for line, why in sorted(set(found)):
        lines_by_reason.setdefault(why, []).append(line)
    return [
        f"line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}: {why}"
        for why, lines in lines_by_reason.items()
    ]


_CACHES = Path(tempfile.gettempdir()) / "prodready-mypy-cache"
_STALE_SECONDS = 3600.0  # a cache unused this long belongs to a kernel that is gone
_cache: list[Path] = []  # this process's mypy cache folder, made on first use


def mypy_cache_dir() -> Path:
    """A mypy cache for this process, outside the course and removed at exit. It starts as
    a copy of a shared seed: the standard library's and pydantic's types, read once per
    machine (seconds of CPU), so a fresh kernel's first check is warm too. The seed is
    only ever copied, never written by two runs (mypy's cache is not safe to share,
    python/mypy#21136). A kernel killed before its exit handlers run leaves its folder
    behind, so the first check of each process sweeps folders unused for an hour."""
    if not _cache:
        _CACHES.mkdir(exist_ok=True)
        for old in _CACHES.iterdir():
            with contextlib.suppress(OSError):
                stale = time.time() - old.stat().st_mtime > _STALE_SECONDS
                if stale and not old.name.startswith("seed-"):
                    shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(dir=_CACHES))
        seed = _seed()
        if seed is not None:
            shutil.rmtree(folder)
            shutil.copytree(seed, folder)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _cache.append(folder)
    with contextlib.suppress(OSError):
        os.utime(_cache[0])  # in use: not stale
    return _cache[0]


# What every check's code imports; the seed holds these modules' types.
_SEED_SOURCE = (
    "import collections.abc, dataclasses, decimal, enum, json, sqlite3, typing\nimport pydantic\n"
)


def _seed() -> Path | None:
    """The shared warm cache for this mypy, Python and set of flags; built on first use."""
    import hashlib

    import mypy.version

    key = hashlib.sha256(
        repr((mypy.version.__version__, sys.version, MYPY_FLAGS, _SEED_SOURCE)).encode()
    ).hexdigest()[:16]
    seed = _CACHES / f"seed-{key}"
    if seed.is_dir():
        return seed
    building = Path(tempfile.mkdtemp(dir=_CACHES, prefix=".building-"))
    try:
        mypy_api.run([*MYPY_FLAGS, f"--cache-dir={building}", "-c", _SEED_SOURCE])
        building.rename(seed)  # atomic: another process may have won the race, that is fine
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return seed if seed.is_dir() else None


def run_mypy(source: str) -> list[Finding]:
    """``mypy --strict`` on one module's source; line numbers are the source's."""
    stdout, stderr, status = mypy_api.run(
        [*MYPY_FLAGS, f"--cache-dir={mypy_cache_dir()}", "-c", source]
    )
    if status == 2:
        raise Fail(f"mypy could not check your cell: {(stderr or stdout).strip()[:300]}")
    findings = []
    for raw in stdout.splitlines():
        if match := _MYPY_LINE.match(raw):
            findings.append(Finding(int(match[1]), match[2], match[3]))
    return findings


def _quote(findings: Iterable[Finding], *, numbered: bool = True) -> str:
    lines = [
        f"{f'line {f.line}: ' if numbered else ''}{'note: ' if f.kind == 'note' else ''}{f.text}"
        for f in findings
    ]
    more = f"\n    … {len(lines) - _SHOWN_FINDINGS} more" if len(lines) > _SHOWN_FINDINGS else ""
    return "\n    ".join(lines[:_SHOWN_FINDINGS]) + more


def typecheck(
    things: tuple[object, ...],
    probes: tuple[Probe, ...] = (),
    *,
    signatures: tuple[str, ...] = (),
) -> None:
    """Fail unless the answer cell is honestly ``mypy --strict`` clean: no silencer, no
    error, no ``Any`` in the ``signatures`` (names the task gives, as mypy infers them),
    and every probe accepted (or, for a probe that ``rejects``, refused)."""
    source = cell_source(*things)
    if found := silencers(source):
        raise Fail(
            "the checker was switched off instead of the bug being fixed:\n    "
            + "\n    ".join(found)
        )
    body = source.rstrip("\n") + "\n"
    reveal_lines: dict[int, str] = {}
    if signatures:
        body += "\n"
        for name in signatures:
            body += f"reveal_type({name})\n"
            reveal_lines[body.count("\n")] = name
    spans: list[tuple[int, int, Probe]] = []
    for probe in probes:
        start = body.count("\n") + 2  # a blank line, then the probe
        body += "\n" + probe.code.strip("\n") + "\n"
        spans.append((start, body.count("\n"), probe))
    findings = run_mypy(body)
    first_added = body.count("\n") + 1
    if reveal_lines or spans:
        first_added = min([*reveal_lines, *(start for start, _, _ in spans)])
    mine = [f for f in findings if f.line < first_added]
    if any(f.kind == "error" for f in mine):
        errors = [f for f in mine if f.kind == "error"]
        advice = (
            "\nUnannotated functions are not checked at all (mypy's default skips them): "
            "annotate every parameter and every return."
            if any(f.text.endswith("[no-untyped-def]") for f in errors)
            else "\nEach one is a bug, or a missing annotation that lets one through: fix "
            "the code, not the checker."
        )
        problems = f"{len(errors)} problem{'s' if len(errors) > 1 else ''}"
        raise Fail(f"mypy --strict found {problems} in your cell:\n    {_quote(mine)}{advice}")
    unknown = {f.line for f in findings if f.kind == "error"}  # a missing name reveals Any
    for f in findings:
        revealed = _REVEALED.match(f.text)
        if f.line in reveal_lines.keys() - unknown and revealed and _ANY_TYPE.search(revealed[1]):
            raise Fail(f"mypy sees `{reveal_lines[f.line]}` as `{revealed[1]}`. {_ANY}.")
    for start, end, probe in spans:
        hits = [f for f in findings if start <= f.line <= end]
        refused = any(f.kind == "error" for f in hits)
        if refused and not probe.rejects:
            narrow_container = any(  # the kind of collection refused, not the items' type
                f.text.startswith("Argument 1 to") and 'expected "Iterable[' not in f.text
                for f in hits
            )
            failure = (probe.argument_failure if narrow_container else "") or probe.failure
            raise Fail(
                f"{failure}\nmypy said, about the check's test code:\n    "
                f"{_quote(hits, numbered=False)}"
            )
        if probe.rejects and not refused:
            raise Fail(probe.failure)


def call(what: str, fn: Callable[..., object], *args: object) -> object:
    """Run the learner's code; an exception becomes a message naming the call."""
    try:
        return fn(*args)
    except Exception as e:
        detail = f": {e}" if str(e) else ""
        raise Fail(f"{what} raised {type(e).__name__}{detail}") from None


# --- typecheck.narrow_optional -------------------------------------------------------


@checker("typecheck.narrow_optional")
def narrow_optional(greeting: Callable[[int], str]) -> str:
    typecheck((greeting,), signatures=(greeting.__name__,))
    try:
        missing = greeting(99)
    except Exception as e:
        raise Fail(
            f"greeting(99), a user id that does not exist, raised {type(e).__name__}: a "
            "missing user is an everyday request (a stale link, a deleted account). Handle "
            "None with a check that returns, not an assert or a crash"
        ) from None
    expect(
        missing == "Hello, guest",
        f"greeting(99) returned {missing!r} for a missing user, expected 'Hello, guest'",
    )
    for user_id, expected in ((1, "Hello, Ada"), (2, "Hello, grace.hopper")):
        got = call(f"greeting({user_id})", greeting, user_id)
        expect(
            got == expected,
            f"greeting({user_id}) returned {got!r}, expected {expected!r}: a user without "
            "a nickname is greeted by the part of the email before the @",
        )
    return "mypy --strict is clean and both None cases are handled, not asserted away"


# --- typecheck.strict_service --------------------------------------------------------

_PRICES_CENTS = {"tea": 250, "cake": 325, "sandwich": 499}  # the task's price list
_PERCENTS = range(101)


def _baskets() -> list[list[tuple[str, int]]]:
    """Orders whose totals end in every possible number of cents, mixed baskets, and
    three big business orders (totals of millions of euros)."""
    baskets = [[("sandwich", n)] for n in range(100)]  # 499 * n ends in every cent
    baskets += [
        [("tea", tea), ("cake", cake), ("sandwich", sandwich)]
        for tea in (1, 2, 3)
        for cake in (1, 2, 3)
        for sandwich in (1, 7)
    ]
    baskets += [[("sandwich", 1_000_003)], [("tea", 4_000_001), ("cake", 1)], [("cake", 987_653)]]
    return baskets


@functools.cache
def _expected_totals() -> tuple[tuple[list[tuple[str, int]], tuple[int, ...]], ...]:
    """Each basket with its discounted totals for 0-100 % off, by the task's rule: exact
    decimal arithmetic, rounded down to a whole cent. Computed once per process."""
    with localcontext(Context(prec=50)):  # the check's own context, whatever the cell set
        return tuple(
            (lines, tuple(_discounted_cents(lines, percent) for percent in _PERCENTS))
            for lines in _baskets()
        )


def _discounted_cents(lines: list[tuple[str, int]], percent_off: int) -> int:
    total = Decimal(sum(_PRICES_CENTS[sku] * qty for sku, qty in lines))
    return int((total * (100 - percent_off) / 100).to_integral_value(rounding=ROUND_FLOOR))


def _not_int_cents(shown: str, got: object) -> str:
    return (
        f"{shown} returned {got!r}, a {type(got).__name__}: this service's contract is "
        "whole cents in an int (a payment API refuses 828.75 cents, and float sums "
        "drift). Annotate the return as int and let mypy find where the other type comes "
        "from"
    )


@checker("typecheck.strict_service")
def strict_service(order_total: Callable[..., object]) -> str:
    typecheck((order_total,), signatures=(order_total.__name__,))
    got = call("order_total([('cake', 3)])", order_total, [("cake", 3)])
    expect(type(got) is int, _not_int_cents("order_total([('cake', 3)])", got))
    expect(
        got == 975,
        f"order_total([('cake', 3)]) returned {got!r}, expected 975: without a discount "
        "the total is the sum of the lines, in whole cents",
    )
    table = _expected_totals()
    wrong: list[tuple[list[tuple[str, int]], int, int, object]] = []
    for lines, expected in table:
        try:
            results = [order_total(list(lines), percent) for percent in _PERCENTS]
        except Exception as e:
            raise Fail(
                f"order_total({lines}, percent_off) raised {type(e).__name__}: {e}"
            ) from None
        for percent, got, want in zip(_PERCENTS, results, expected, strict=True):
            expect(type(got) is int, _not_int_cents(f"order_total({lines}, {percent})", got))
            if got != want:
                wrong.append((lines, percent, want, got))
    if wrong:
        lines, percent, want, got = wrong[0]
        total = sum(_PRICES_CENTS[sku] * qty for sku, qty in lines)
        lost = all(isinstance(g, int) and g < w for _, _, w, g in wrong)
        why = (
            "a cent is lost: float arithmetic (a division with `/`, a factor like 0.8) "
            "cannot hold most fractions exactly, so 2 becomes 1.9999999999999996 and "
            "truncating it drops a cent. Keep the arithmetic in integers (or Decimal)"
            if lost
            else "the discounted total must round *down* to a whole cent (in the "
            "customer's favour); rounding to the nearest cent, or up, overcharges"
        )
        raise Fail(
            f"order_total({lines}, {percent}) (a total of {total} cents, {percent}% off) "
            f"returned {got}, expected {want}; {len(wrong)} of the "
            f"{len(table) * len(_PERCENTS)} (total, percent) pairs the check tried came "
            f"out wrong. {why}"
        )
    return "mypy --strict is clean and every total is whole cents (an int), rounded down"


# --- typecheck.protocol_fake ---------------------------------------------------------

_REAL_REPOSITORY = "get(self, user_id: int) -> User | None and add(self, user: User) -> None"
_DRIFTED_REPOSITORIES = (
    (
        "def add(self, email: str) -> None: ...",
        "def get(self, user_id: int) -> User | None: ...",
        "an add() that takes an email str instead of a User",
    ),
    (
        "def add(self, user: User) -> None: ...",
        "def get(self, user_id: str) -> User | None: ...",
        "a get() that takes a str id instead of an int",
    ),
    (
        "def add(self, user: User) -> None: ...",
        "def get(self, user_id: int) -> str | None: ...",
        "a get() that returns a str instead of a User",
    ),
)


def _drift_probes(protocol: str) -> tuple[Probe, ...]:
    return tuple(
        Probe(
            f"class _ProdreadyDrifted{n}:\n    {add}\n    {get}\n\n\n"
            f"def _prodready_drifted{n}(repo: _ProdreadyDrifted{n}) -> {protocol}:\n"
            "    return repo",
            f"mypy accepted a repository with {what} as a {protocol}: the Protocol is too "
            "loose to catch a fake that drifts from the real repository, which is the "
            f"whole point of it. Write the real signatures ({_REAL_REPOSITORY})",
            rejects=True,
        )
        for n, (add, get, what) in enumerate(_DRIFTED_REPOSITORIES)
    )


@checker("typecheck.protocol_fake")
def protocol_fake(
    UserRepository: type, FakeUserRepository: type, register: Callable[..., object]
) -> str:
    protocol, fake = UserRepository.__name__, FakeUserRepository.__name__
    typecheck(
        (UserRepository, FakeUserRepository, register),
        (
            Probe(
                f"def _prodready_fake_fits(repo: {fake}) -> {protocol}:\n    return repo",
                f"{fake} does not satisfy {protocol}: a fake that drifts from the real "
                "signatures lets tests pass while production breaks. Give it the same "
                "methods, parameters and return types",
            ),
            Probe(
                "class _ProdreadyRealRepository:\n"
                "    def get(self, user_id: int) -> User | None:\n        return None\n"
                "    def add(self, user: User) -> None:\n        return None\n\n"
                f"def _prodready_real_fits(repo: _ProdreadyRealRepository) -> {protocol}:\n"
                "    return repo",
                f"the production repository ({_REAL_REPOSITORY}) does not satisfy your "
                f"{protocol}: the Protocol must describe what the real one does, or the "
                "service cannot be given it",
            ),
            *_drift_probes(protocol),
        ),
        signatures=(
            f"{protocol}.get",
            f"{protocol}.add",
            f"{fake}.get",
            f"{fake}.add",
            register.__name__,
        ),
    )
    contract_test(fake, FakeUserRepository, register)
    return "the fake satisfies the Protocol as mypy sees it, and behaves like the real one"


def contract_test(fake: str, make: Callable[[], object], register: Callable[..., object]) -> None:
    """What the real repository does, tried on the fake: mypy cannot see behaviour."""
    missing_user = (
        "the real repository returns None for a missing user, and a fake that behaves "
        "differently tests a service that never runs in production"
    )
    first = call(f"{fake}()", make)
    second = call(f"a second {fake}()", make)
    get = getattr(first, "get")  # noqa: B009 (the learner's method, looked up by name)
    try:
        absent = get(8)
    except Exception as e:
        raise Fail(
            f"{fake}().get(8) on an empty fake raised {type(e).__name__}: {missing_user}"
        ) from None
    expect(absent is None, f"{fake}().get(8) returned {absent!r}: {missing_user}")
    ada = call('register(fake, 7, " Ada@Example.COM ")', register, first, 7, " Ada@Example.COM ")
    expect(
        getattr(ada, "email", None) == "ada@example.com",
        f"register(...) returned {ada!r}: keep register() as given",
    )
    stored = call(f"{fake}.get(7) after register", get, 7)
    expect(
        stored == ada,
        f"after register(fake, 7, ...), fake.get(7) returned {stored!r}: the fake must "
        "keep what add() was given, by the user's id, so tests can see what the service "
        "stored",
    )
    second_get = getattr(second, "get")  # noqa: B009
    leaked = call(f"get(7) on a second {fake}()", second_get, 7)
    expect(
        leaked is None,
        f"a second {fake}() already held user 7, registered through the first one "
        f"(get(7) returned {leaked!r}): the fake's users are shared by every instance "
        "(kept on the class, in a module global or in a default argument), so one test's "
        "data leaks into the next and the suite passes or fails by the order the tests "
        "run in. Give each instance its own storage",
    )
    nobody = call(f"{fake}.get(8) after registering user 7", get, 8)
    expect(
        nobody is None,
        f"with only user 7 added, fake.get(8) returned {nobody!r}: like the real "
        "repository, the fake finds each user by id and returns None for an id nobody has",
    )
    grace = call('register(fake, 8, "grace@example.org")', register, first, 8, "grace@example.org")
    for user_id, expected in ((7, ada), (8, grace), (9, None)):
        found = call(f"{fake}.get({user_id})", get, user_id)
        expect(
            found == expected,
            f"with users 7 and 8 added, fake.get({user_id}) returned {found!r}, expected "
            f"{expected!r}: like the real repository, the fake finds each user by id and "
            "returns None for an id nobody has",
        )
    try:
        register(first, 7, "someone@example.com")
    except ValueError:
        pass
    except Exception as e:
        raise Fail(
            f"registering id 7 twice raised {type(e).__name__}, expected the service's "
            "ValueError: the fake's get() must find the stored user"
        ) from None
    else:
        raise Fail("registering id 7 twice succeeded: the fake's get() must find it")


# --- typecheck.generic_helper --------------------------------------------------------


_GENERIC_SETUP = """
import collections.abc as _prodready_abc
import dataclasses as _prodready_dataclasses


@_prodready_dataclasses.dataclass(frozen=True)
class _ProdreadyUser:
    id: int
    email: str
"""


def _generic_probes(name: str) -> tuple[Probe, ...]:
    keeps_types = (
        f"{name} must keep the types it is given: mypy could not see that {name} of users "
        "by email is a dict[str, User] and that of words by len is a dict[int, str]. "
        "Use type variables for the item and the key"
    )
    any_iterable = (
        f"{name} must accept any iterable, as the task says: mypy refused a call with a "
        "{}. Rows come from generators, cursors, sets and tuples as often as from "
        "lists; annotate `items` with the most general type the loop needs"
    )
    calls = (
        ("users: list[_ProdreadyUser]", "str, _ProdreadyUser", "users, lambda u: u.email", "list"),
        ("words: list[str]", "int, str", "words, len", "list"),
        ("words: tuple[str, ...]", "int, str", "words, len", "tuple"),
        ("words: list[str]", "int, str", "(word for word in words), len", "generator"),
        ("words: set[str]", "int, str", "words, len", "set"),
        ("counts: dict[str, int]", "int, str", "counts, len", "dict (its keys)"),
        ("", "str, int", "range(3), str", "range"),
    )
    probes = [Probe(_GENERIC_SETUP, keeps_types)]
    for n, (param, result, args, kind) in enumerate(calls):
        probes.append(
            Probe(
                f"def _prodready_call{n}({param}) -> _prodready_abc.Mapping[{result}]:\n"
                f"    return {name}({args})",
                keeps_types,
                argument_failure=any_iterable.format(kind),
            )
        )
    probes.append(
        Probe(
            f"def _prodready_wrong_key(users: list[_ProdreadyUser]) -> None:\n"
            f"    {name}(users, len)",
            f"mypy accepted {name}(users, len), whose key function cannot take a user "
            "(len(user) raises TypeError at runtime): the signature must tie the key "
            "function's parameter to the items' type",
            rejects=True,
        )
    )
    return tuple(probes)


def _table(kept: object) -> str:
    if not isinstance(kept, Sized):
        return repr(kept)[:80]
    return f"a table of {len(kept)} row{'' if len(kept) == 1 else 's'}"


@checker("typecheck.generic_helper")
def generic_helper(index_by: Callable[..., object]) -> str:
    name = index_by.__name__
    typecheck((index_by,), _generic_probes(name), signatures=(name,))
    words = call(f'{name}(["a", "bb", "ccc"], len)', index_by, ["a", "bb", "ccc"], len)
    expect(
        words == {1: "a", 2: "bb", 3: "ccc"},
        f'{name}(["a", "bb", "ccc"], len) returned {words!r}, expected '
        "{1: 'a', 2: 'bb', 3: 'ccc'}",
    )
    rows = [f"row{i}" for i in range(5000)]
    inputs: tuple[tuple[str, Iterable[object], Callable[..., object], dict[object, object]], ...]
    inputs = (
        ("a generator", (w for w in ["x", "yy"]), len, {1: "x", 2: "yy"}),
        ("a tuple", ("x", "yy"), len, {1: "x", 2: "yy"}),
        ("a set", {"x", "yy"}, len, {1: "x", 2: "yy"}),
        ("a dict (its keys)", {"x": 0, "yy": 0}, len, {1: "x", 2: "yy"}),
        ("a range", range(3), str, {"0": 0, "1": 1, "2": 2}),
        ("5,000 rows", rows, str.upper, {row.upper(): row for row in rows}),
    )
    for kind, items, key, expected in inputs:
        got = call(f"{name} over {kind}", index_by, items, key)
        expect(
            got == expected,
            f"{name} over {kind} returned {str(got)[:120]}: items may come from any "
            "iterable, and a generator (a database cursor, a file) can be read only once",
        )
    duplicates = [f"row{i}" for i in range(3000)] + ["ROW17"]
    clashes: tuple[tuple[list[str], Callable[[str], object], str], ...] = (
        (["ab", "cd"], len, '["ab", "cd"], len'),
        (duplicates, str.lower, "3,001 rows, the last one's key equal to row 17's, str.lower"),
    )
    for clashing, clash_key, shown in clashes:
        key_value = clash_key(clashing[-1])
        try:
            kept = index_by(clashing, clash_key)
        except ValueError as e:
            expect(
                repr(key_value) in str(e) or str(key_value) in str(e),
                f"{name}({shown}) raised ValueError({str(e)!r}), which does not name the "
                f"duplicate key {key_value!r}: whoever reads the log needs to know which "
                "key collided",
            )
            continue
        except Exception as e:
            raise Fail(
                f"{name}({shown}) raised {type(e).__name__} for a duplicate key: raise "
                "ValueError naming the key"
            ) from None
        raise Fail(
            f"{name}({shown}) returned {_table(kept)} without an error: two items share "
            f"the key {key_value!r} and one was silently dropped. In production that is an "
            "account missing from every lookup; raise ValueError naming the key"
        )
    return "generic for mypy over any iterable, and a duplicate key is an error, not a lost row"


# --- typecheck.strict_module ---------------------------------------------------------


def _request(order_id: int, customer: str, cents: int, reason: str | None = None) -> str:
    body: dict[str, object] = {
        "order_id": order_id,
        "customer_id": customer,
        "amount_cents": cents,
    }
    if reason is not None:
        body["reason"] = reason
    return json.dumps(body)


_VALID = {"order_id": 1042, "customer_id": "c-ada", "amount_cents": 1250}
_MALFORMED: tuple[tuple[str, str], ...] = (
    (json.dumps({**_VALID, "amount_cents": "1250"}), 'amount_cents as the string "1250"'),
    (json.dumps({**_VALID, "amount_cents": 12.5}), "amount_cents 12.5 (a fraction of a cent)"),
    (json.dumps({**_VALID, "amount_cents": None}), "amount_cents null"),
    (json.dumps({**_VALID, "order_id": "1042"}), 'order_id as the string "1042"'),
    (json.dumps({**_VALID, "customer_id": 42}), "customer_id 42, a number"),
    *(
        (json.dumps({k: v for k, v in _VALID.items() if k != missing}), f"no {missing}")
        for missing in _VALID
    ),
    ('[1042, "c-ada", 1250]', "a JSON list instead of an object"),
    ('{"order_id": 1042, "customer_id": "c-ada", ', "a body that is not JSON (cut off)"),
)


@checker("typecheck.strict_module")
def strict_module(
    load_request: Callable[[str], object],
    approve: Callable[[object], object],
    receipt_line: Callable[[object], object],
) -> str:
    typecheck(
        (load_request, approve, receipt_line),
        signatures=(load_request.__name__, approve.__name__, receipt_line.__name__),
    )
    decisions = [
        ("c-ada", 50_000, True, "a gold customer's refund up to 50,000 cents"),
        ("c-ada", 50_001, False, "a gold customer's refund over 50,000 cents"),
        ("c-bob", 20_000, True, "a silver customer's refund up to 20,000 cents"),
        ("c-bob", 20_001, False, "a silver customer's refund over 20,000 cents"),
        ("c-cy", 5_000, True, "a basic customer's refund up to 5,000 cents"),
        ("c-cy", 5_001, False, "a basic customer's refund over 5,000 cents"),
        ("c-nobody", 100, False, "a refund for a customer id that does not exist"),
    ]
    for customer, cents, expected, what in decisions:
        raw = _request(1042, customer, cents, reason="damaged")
        request = call(f"load_request({raw!r})", load_request, raw)
        got = call(f"approve() for {what}", approve, request)
        expect(
            got is expected,
            f"approve() returned {got!r} for {what}, expected {expected}",
        )
    for order_id, cents, expected_line in (
        (1042, 1250, "Refund #1042: 12.50 EUR"),
        (7, 5, "Refund #7: 0.05 EUR"),
        (88, 123_456_789, "Refund #88: 1234567.89 EUR"),
    ):
        raw = _request(order_id, "c-ada", cents)
        request = call(f"load_request({raw!r})", load_request, raw)
        line = call(f"receipt_line() for {raw}", receipt_line, request)
        expect(
            line == expected_line,
            f"receipt_line() for {raw} returned {line!r}, expected {expected_line!r}",
        )
    for raw, what in _MALFORMED:
        try:
            loaded = load_request(raw)
        except (ValueError, TypeError, LookupError):
            # Refused at the door. (ValueError, pydantic's ValidationError among them, is
            # what an API layer most often maps to a 422; the task asks for no particular one.)
            continue
        except Exception as e:
            raise Fail(
                f"load_request() raised {type(e).__name__} for {what} ({raw}): a body that "
                "does not fit should be refused with a validation error (a ValueError such "
                "as pydantic's ValidationError, or a TypeError or KeyError naming the field), "
                "not a crash from somewhere inside"
            ) from None
        raise Fail(
            f"load_request() accepted {what} ({raw}) and returned {str(loaded)[:100]}: a "
            "refund service must refuse a body that does not match its schema, not guess. "
            "An annotation on what json.loads returns (Any) is a promise mypy cannot "
            "check, and the bad value travels on until approve() or the payment API trips "
            'over it; a lax validator turns "1250" and true into numbers. Validate the '
            "body strictly where it enters (a strict Pydantic model, a TypeAdapter, or "
            "explicit checks) and raise ValueError"
        )
    return "mypy --strict is clean, bad JSON is refused at the door, and the four bugs are fixed"
