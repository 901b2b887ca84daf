"""Checks for module 07: type hints and mypy.

Every check runs ``mypy --strict`` on the learner's answer cell (found through the
code objects the check receives: IPython keeps each cell's source in ``linecache``),
refuses the ways to silence the checker (``Any``, ``cast``, ``# type: ignore``,
``# mypy:`` comments, ``no_type_check``), and then tests the code's behaviour, so a
type-clean answer that still has the production bug fails too.

mypy runs in-process with ``-c``: no file is written for the cell, no config file is read
from the folder the notebook runs in, and its cache lives in a temporary folder of its own
for the life of the process (never ``.mypy_cache`` in the course: mypy writes one even with
``--no-incremental``). The first check in a kernel reads the standard library's stubs
(about a second); the cache makes the later ones several times faster. Errors are quoted
with line numbers relative to the cell.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import io
import json
import linecache
import os
import re
import shutil
import tempfile
import time
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mypy import api as mypy_api

from .._check import Fail, checker, expect

MYPY_FLAGS = (
    "--strict",
    "--disallow-any-explicit",
    "--config-file=",  # the folder's pyproject.toml must not change what is checked
    "--no-error-summary",
    "--hide-error-context",
    "--no-color-output",  # a kernel looks like a colour terminal to mypy
)
_MYPY_LINE = re.compile(r"^<string>:(\d+): (error|note): (.*)$")
_SHOWN_FINDINGS = 8

_ANY = (
    "`Any` switches the checker off for that value: mypy stays quiet and the bug ships. "
    "Say what the value really is (a TypedDict, a dataclass, a TypeVar, or `object` plus "
    "a check)"
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


@dataclass(frozen=True)
class Probe:
    """Code the check appends to the learner's cell: mypy must accept it."""

    code: str
    failure: str  # the teaching message when mypy rejects the probe


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
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        else:
            continue
        if name == "Any":
            found.append((node.lineno, _ANY))
        elif name == "cast":
            found.append((node.lineno, _CAST))
        elif name in ("no_type_check", "no_type_check_decorator"):
            found.append((node.lineno, _NO_TYPE_CHECK))
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
    """A mypy cache for this process, outside the course and removed at exit. A kernel
    killed before its exit handlers run leaves its folder behind, so the first check of
    each process sweeps folders nobody has used for an hour."""
    if not _cache:
        _CACHES.mkdir(exist_ok=True)
        for old in _CACHES.iterdir():
            with contextlib.suppress(OSError):
                if time.time() - old.stat().st_mtime > _STALE_SECONDS:
                    shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(dir=_CACHES))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _cache.append(folder)
    with contextlib.suppress(OSError):
        os.utime(_cache[0])  # in use: not stale
    return _cache[0]


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


def typecheck(things: tuple[object, ...], probes: tuple[Probe, ...] = ()) -> None:
    """Fail unless the answer cell is honestly ``mypy --strict`` clean (and the probes too)."""
    source = cell_source(*things)
    if found := silencers(source):
        raise Fail(
            "the checker was switched off instead of the bug being fixed:\n    "
            + "\n    ".join(found)
        )
    body = source.rstrip("\n") + "\n"
    spans: list[tuple[int, int, Probe]] = []
    for probe in probes:
        start = body.count("\n") + 2  # a blank line, then the probe
        body += "\n" + probe.code.strip("\n") + "\n"
        spans.append((start, body.count("\n"), probe))
    findings = run_mypy(body)
    first_probe = spans[0][0] if spans else body.count("\n") + 1
    mine = [f for f in findings if f.line < first_probe]
    if any(f.kind == "error" for f in mine):
        errors = [f for f in mine if f.kind == "error"]
        advice = (
            "\nUnannotated functions are not checked at all (mypy's default skips them): "
            "annotate every parameter and every return."
            if any(f.text.endswith("[no-untyped-def]") for f in errors)
            else "\nEach one is a bug, or a missing annotation that lets one through: fix "
            "the code, not the checker."
        )
        if any(f.text.endswith("[explicit-any]") for f in errors):
            advice = f"\n{_ANY}."
        problems = f"{len(errors)} problem{'s' if len(errors) > 1 else ''}"
        raise Fail(f"mypy --strict found {problems} in your cell:\n    {_quote(mine)}{advice}")
    for start, end, probe in spans:
        hits = [f for f in findings if start <= f.line <= end]
        if any(f.kind == "error" for f in hits):
            raise Fail(
                f"{probe.failure}\nmypy said, about the check's test code:\n    "
                f"{_quote(hits, numbered=False)}"
            )


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
    typecheck((greeting,))
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


@checker("typecheck.strict_service")
def strict_service(order_total: Callable[..., object]) -> str:
    typecheck((order_total,))
    cases: list[tuple[list[tuple[str, int]], int, int]] = [
        ([("tea", 2)], 0, 500),
        ([("cake", 3)], 15, 828),
        ([("sandwich", 1), ("tea", 1)], 10, 674),
        ([("sandwich", 3)], 0, 1497),
        ([], 50, 0),
    ]
    for lines, percent, expected in cases:
        shown = f"order_total({lines}, {percent})"
        got = call(shown, order_total, lines, percent)
        expect(
            type(got) is int,
            f"{shown} returned {got!r}, a {type(got).__name__}: money leaves this service as "
            "whole cents in an int (a payment API refuses 828.75 cents, and float sums drift). "
            "Annotate the return as int and let mypy find where the float comes from",
        )
        expect(
            got == expected,
            f"{shown} returned {got}, expected {expected}: the discounted total rounds "
            "down to a whole cent",
        )
    return "mypy --strict is clean and every total is whole cents (an int)"


# --- typecheck.protocol_fake ---------------------------------------------------------

_REAL_REPOSITORY = "get(self, user_id: int) -> User | None and add(self, user: User) -> None"


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
        ),
    )
    repo = call(f"{fake}()", FakeUserRepository)
    get = getattr(repo, "get")  # noqa: B009 (the learner's method, looked up by name)
    missing_user = (
        "the real repository returns None for a missing user, and a fake that behaves "
        "differently tests a service that never runs in production"
    )
    try:
        absent = get(8)
    except Exception as e:
        raise Fail(
            f"{fake}().get(8) on an empty fake raised {type(e).__name__}: {missing_user}"
        ) from None
    expect(absent is None, f"{fake}().get(8) returned {absent!r}: {missing_user}")
    user = call(
        'register(fake, 7, " Ada@Example.COM ")',
        register,
        repo,
        7,
        " Ada@Example.COM ",
    )
    expect(
        getattr(user, "email", None) == "ada@example.com",
        f"register(...) returned {user!r}: keep register() as given",
    )
    stored = call(f"{fake}.get(7) after register", get, 7)
    expect(
        stored == user,
        f"after register(fake, 7, ...), fake.get(7) returned {stored!r}: the fake must "
        "keep what add() was given, so tests can see what the service stored",
    )
    try:
        register(repo, 7, "someone@example.com")
    except ValueError:
        pass
    except Exception as e:
        raise Fail(
            f"registering id 7 twice raised {type(e).__name__}, expected the service's "
            "ValueError: the fake's get() must find the stored user"
        ) from None
    else:
        raise Fail("registering id 7 twice succeeded: the fake's get() must find it")
    return "the fake satisfies the Protocol as mypy sees it, and the service is testable"


# --- typecheck.generic_helper --------------------------------------------------------


@checker("typecheck.generic_helper")
def generic_helper(index_by: Callable[..., object]) -> str:
    name = index_by.__name__
    keeps_types = (
        f"{name} must keep the types it is given: mypy could not see that {name} of users "
        "by email is a dict[str, User] and that of words by len is a dict[int, str]. "
        "Use type variables for the item and the key"
    )
    typecheck(
        (index_by,),
        (
            Probe(
                "import collections.abc as _prodready_abc\n\n\n"
                "def _prodready_by_email(users: list[User]) -> _prodready_abc.Mapping[str, User]:\n"
                f"    return {name}(users, lambda user: user.email)",
                keeps_types,
            ),
            Probe(
                "def _prodready_by_len(words: list[str]) -> _prodready_abc.Mapping[int, str]:\n"
                f"    return {name}(words, len)",
                keeps_types,
            ),
        ),
    )
    words = call(f'{name}(["a", "bb", "ccc"], len)', index_by, ["a", "bb", "ccc"], len)
    expect(
        words == {1: "a", 2: "bb", 3: "ccc"},
        f'{name}(["a", "bb", "ccc"], len) returned {words!r}, expected '
        "{1: 'a', 2: 'bb', 3: 'ccc'}",
    )
    once = call(f"{name} over a generator", index_by, (w for w in ["x", "yy"]), len)
    expect(
        once == {1: "x", 2: "yy"},
        f"{name} over a generator returned {once!r}: items may come from a generator "
        "(a database cursor, a file), which can be read only once",
    )
    try:
        twice = index_by(["ab", "cd"], len)
    except ValueError:
        return "generic for mypy, and a duplicate key is an error, not a lost row"
    except Exception as e:
        raise Fail(
            f"{name} raised {type(e).__name__} for a duplicate key: raise ValueError"
        ) from None
    raise Fail(
        f'{name}(["ab", "cd"], len) returned {twice!r}: two items share the key 2 and one '
        "was silently dropped. In production that is an account missing from every lookup; "
        "raise ValueError naming the key"
    )


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


@checker("typecheck.strict_module")
def strict_module(
    load_request: Callable[[str], object],
    approve: Callable[[object], object],
    receipt_line: Callable[[object], object],
) -> str:
    typecheck((load_request, approve, receipt_line))
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
    ):
        raw = _request(order_id, "c-ada", cents)
        request = call(f"load_request({raw!r})", load_request, raw)
        line = call(f"receipt_line() for {raw}", receipt_line, request)
        expect(
            line == expected_line,
            f"receipt_line() for {raw} returned {line!r}, expected {expected_line!r}",
        )
    return "mypy --strict is clean and the four bugs it revealed are fixed"
