"""The grader's seal on a graded kernel: verdicts that the learner's code cannot forge.

Grading runs the learner's answer cells and the course's checks in one kernel, so the
learner's code runs in the same process as the checks (the way nbgrader and otter do).
The seal is the first cell of every graded notebook, before any learner code, and it
puts an audit hook (PEP 578: once added, it cannot be removed) at the root of trust:

- **Verdicts travel out of band.** A graded check cell does not call ``check``; it raises
  the audit event ``prodready.check``. The hook runs the checker it captured before any
  learner code ran and appends the verdict to an evidence file, signed (HMAC) with a key
  that only the hook holds (read from a file the seal deletes at once). The grader
  credits an exercise only for a signed pass, so printing the verdict line (by patching
  ``print``, ``sys.stdout``, IPython's display or exception machinery, or rewriting the
  cell) earns nothing.
- **Integrity.** Before and after each check, and after each answer cell, the hook
  compares the grader's machinery (the course's package, builtins, the interpreter's
  streams, IPython's shell and hooks) with the state it recorded before the learner's
  first cell. A registry entry swapped, a function's code replaced, ``print`` patched:
  the exercise whose code did it is marked as tampered, with what changed.
- **Refusals.** To learner code only, the hook refuses the reflection that could reach
  it or the reference: frames (``sys._getframe``, ``tb_frame``, generator and coroutine
  frames), the garbage collector's object lists, tracing and monitoring, ctypes, new
  processes, new audit hooks, writing into installed packages, and reading the
  solutions or the grader's files. Each refusal is recorded against its exercise.
- **A canary.** After a check passes, it is run again on the shipped starting code of
  its exercise; a checker that passes that has been tampered with.

Learner code is any code that is neither in the course's own cells nor installed. The
hook is made of closures over objects captured here, before learner code runs, and calls
only functions implemented in C at run time, so rebinding a module attribute (this
module's included) does not change what it does. Its limits are in the README (threat
model): native code it cannot see, or a kernel with more privileges than the learner.
"""

from __future__ import annotations

import ast
from typing import Any

CHECK_EVENT = "prodready.check"
VERDICT_EVENT = "prodready.verdict"


class GradingTampered(Exception):
    """The grader's machinery was changed by code in the kernel: the check did not run."""


# --- evidence: one line per record, repr((fields...)) TAB hmac, written in C -----------


def read_evidence(path: Any, key: bytes) -> tuple[list[dict[str, Any]], int]:
    """The authentic records of an evidence file, and how many lines were not."""
    import _hashlib
    import hmac

    records: list[dict[str, Any]] = []
    forged = 0
    try:
        lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    except OSError:
        return [], 0
    for line in lines:
        body, _, mac = line.rpartition("\t")
        expected = _hashlib.hmac_digest(key, body.encode("utf-8", "replace"), "sha256").hex()
        try:
            if not hmac.compare_digest(expected, mac):
                raise ValueError("forged")
            nonce, seq, kind, exercise, ok, detail, at = ast.literal_eval(body)
        except (ValueError, SyntaxError, TypeError):
            forged += 1
            continue
        records.append(
            {
                "nonce": nonce,
                "seq": seq,
                "kind": kind,
                "exercise": exercise,
                "ok": ok,
                "detail": detail,
                "at": at,  # which check cell of the exercise: "1", "2"... ("" outside one)
            }
        )
    return records, forged


def digest(source: str) -> str:
    import hashlib

    return hashlib.sha256(source.strip().encode("utf-8", "replace")).hexdigest()


# --- inside the graded kernel ---------------------------------------------------------

_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_code"})
_ASKED_FOR_FRAMES = frozenset({"sys._getframe", "sys._current_frames", "sys._current_exceptions"})
_REFUSED_NEAR_LEARNER_CODE = frozenset({
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "gc.freeze",
    "sys.settrace", "sys.setprofile", "sys._settraceallthreads", "sys._setprofileallthreads",
    "sys.monitoring.register_callback", "sys.monitoring.use_tool_id", "sys.addaudithook",
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn",
    "os.startfile", "cpython.run_command", "cpython.run_file", "code.__new__",
    "function.__new__", "marshal.dumps",
})  # fmt: skip
_REFUSED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "_xxsubinterpreters",
    "_posixsubprocess", "_interpreters", "_testsinglephase",
})  # fmt: skip
_PATH_ARGUMENTS = {  # event -> positions of the arguments that are paths
    "open": (0,), "os.link": (0, 1), "os.rename": (0, 1), "os.symlink": (0, 1),
    "os.truncate": (0,), "os.remove": (0,), "os.rmdir": (0,), "os.listdir": (0,),
    "os.scandir": (0,), "shutil.copyfile": (0, 1), "shutil.rmtree": (0,), "os.chmod": (0,),
    "os.utime": (0,), "os.mkdir": (0,),
}  # fmt: skip
# What a verdict depends on besides the checked code: the course's package, builtins and
# the interpreter's streams, the kernel's display and error machinery. Honest answers have
# no reason to change any of it. (A library patched to fool a check, such as httpx
# answering 201 to everything, is what the canary catches.)
_WATCHED_MODULES = ("prodready", "builtins", "io", "_io", "IPython", "ipykernel", "contextlib")
_WATCHED_CLASSES = {"warnings": ("catch_warnings",)}
_WATCHED_ATTRIBUTES = {
    "sys": ("stdout", "stderr", "__stdout__", "__stderr__", "displayhook",
            "audit", "modules", "meta_path", "path_hooks", "addaudithook"),
    "threading": ("_trace_hook", "_profile_hook", "settrace", "setprofile"),
}  # fmt: skip
_SEALED: list[bool] = []


def seal(config_path: str) -> None:
    """Seal this kernel for grading. Reads, then deletes, the grader's config file."""
    import _hashlib
    import asyncio
    import io
    import itertools
    import json
    import operator
    import os
    import sys
    import tempfile
    import threading
    import time
    import types

    from . import _check
    from ._check import find_checker
    from ._display import show_failures_without_traceback
    from ._guard import limit_output

    if _SEALED:
        raise RuntimeError("this kernel is already sealed")
    _SEALED.append(True)
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    os.unlink(config_path)  # from here on the key exists only in the closures below

    limit_output()
    show_failures_without_traceback()  # before the snapshot: it changes IPython's shell

    # Everything the hook calls at run time, captured now, implemented in C.
    hmac_digest, sha256, os_write, os_stat, getcwd = (
        _hashlib.hmac_digest, _hashlib.openssl_sha256, os.write, os.stat, os.getcwd
    )  # fmt: skip
    get_ident, getframe, monotonic = threading.get_ident, sys._getframe, time.monotonic
    is_, all_, map_, len_, type_, repr_, str_, callable_ = (
        operator.is_, all, map, len, type, repr, str, callable
    )  # fmt: skip
    FunctionType, MethodType, ModuleType = types.FunctionType, types.MethodType, types.ModuleType
    CoroutineType, repeat = types.CoroutineType, itertools.repeat
    class_dict = vars(type)["__dict__"].__get__  # a class's namespace, whatever its metaclass
    O_WRITES = os.O_WRONLY | os.O_RDWR
    compiled_suffixes = (".pyc", ".pyo", ".pyz", ".egg", ".whl", ".zip")
    behavioural_types = (ModuleType, classmethod, staticmethod, property)
    lock = threading.Lock()
    run_captured, outcome_async = _check._run_captured, _check._outcome_async
    conclude, captured, StringIO = _check._conclude, _check._captured, io.StringIO
    compile_, exec_, eval_ = compile, exec, eval
    FileIO, bytes_ = io.FileIO, bytes
    registry = _check._REGISTRY
    modules = sys.modules
    shell = _shell(modules)
    shell_dict = vars(shell) if shell is not None else {}
    user_ns = shell_dict.get("user_ns", {})
    EventManager = type(shell_dict.get("events"))
    this_file = _seal_code_filename()
    inspect_files = (sys.modules["inspect"].__file__,) if "inspect" in sys.modules else ()
    missing = object()

    # Module constants and builtins, too: a name looked up at run time could be rebound.
    frame_attributes, asked_for_frames = _FRAME_ATTRIBUTES, _ASKED_FOR_FRAMES
    refused_near_learner_code, refused_imports = _REFUSED_NEAR_LEARNER_CODE, _REFUSED_IMPORTS
    path_arguments, check_event, Tampered = _PATH_ARGUMENTS, CHECK_EVENT, GradingTampered
    watched_module_names, watched_classes = _WATCHED_MODULES, _WATCHED_CLASSES
    watched_attributes = _WATCHED_ATTRIBUTES
    zip_, list_, enumerate_, any_, dict_, tuple_, vars_, bool_, round_, set_ = (
        zip, list, enumerate, any, dict, tuple, vars, bool, round, set
    )  # fmt: skip
    PermissionError_, RuntimeError_, OSError_, ValueError_, Exception_ = (
        PermissionError, RuntimeError, OSError, ValueError, Exception
    )  # fmt: skip

    key = bytes.fromhex(config["key"])
    nonce = str_(config["nonce"])
    exercises: dict[str, dict[str, Any]] = config["exercises"]
    course_cells: dict[str, str] = dict_(config["course_cells"])  # digest -> role
    answer_cells: dict[str, str] = dict_(config["answer_cells"])  # digest -> exercise
    checkers: dict[str, Any] = {}
    is_async: dict[str, bool] = {}

    def capture_checkers() -> None:
        """The checkers, as registered before any learner code runs: the package's, or
        ones a course cell defines (the tooling's own fixture course does that)."""
        for exercise in exercises:
            if exercise not in checkers:
                try:
                    fn = find_checker(exercise)
                except KeyError:
                    continue
                checkers[exercise] = fn
                is_async[exercise] = asyncio.iscoroutinefunction(fn)

    capture_checkers()
    evidence, os_open, os_close = config["evidence"], os.open, os.close
    evidence_flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    # where ipykernel writes each cell's code (ipykernel.compiler.get_tmp_directory)
    cell_dir = os.path.join(tempfile.gettempdir(), f"ipykernel_{os.getpid()}", "")
    isabs, join, dirname, chdir = os.path.isabs, os.path.join, os.path.dirname, os.chdir
    canary_dir = config.get("canary_dir") or ""
    trusted = tuple_(_trusted_roots())

    def inode(path: str) -> tuple[int, int] | None:
        try:
            st = os_stat(path)
        except (OSError_, ValueError_):
            return None
        return st.st_dev, st.st_ino

    protected = {i for i in map(inode, [*config["protected"], config["evidence"]]) if i}
    refused_paths = (*config["protected"], config["evidence"])

    def protected_paths_of_this_kernel() -> tuple[str, ...]:
        return refused_paths

    # For processes a check starts to run learner code (a service under test): see _child.
    sys.modules[__name__].protected_paths = protected_paths_of_this_kernel  # type: ignore[attr-defined]
    state: dict[str, Any] = {
        "seq": 0, "learner_ran": False, "current": ("course", None), "at": "",
    }  # fmt: skip
    cells: dict[str, tuple[str, str | None, str]] = {}  # IPython's file name -> kind
    passed: list[str] = []
    busy: set[int] = set_()

    def note(kind: str, exercise: str | None, ok: bool, detail: str = "", at: str = "") -> None:
        me = get_ident()
        if me not in busy:
            busy.add(me)
            try:
                return note(kind, exercise, ok, detail, at)
            finally:
                busy.discard(me)
        with lock:
            state["seq"] += 1
            body = repr_((nonce, state["seq"], kind, exercise, ok, detail[:500], at))
            mac = hmac_digest(key, body.encode("utf-8", "replace"), "sha256").hex()
            # Opened for each record, so no descriptor stays open for learner code to find.
            try:
                fd = os_open(evidence, evidence_flags, 0o600)
            except OSError_:
                return
            try:
                os_write(fd, (body + "\t" + mac + "\n").encode("utf-8", "replace"))
            finally:
                os_close(fd)

    def culprit() -> str | None:
        current = state["current"]
        return current[1] if current[0] in ("learner", "check") else None

    def tampered(exercise: str | None, detail: str, *, certain: bool = True) -> None:
        """Record tampering. Certain: the exercise's own answer cell did it. Otherwise
        the exercise was affected, by its own code or another answer's (the grader then
        checks it alone to tell)."""
        at = state["at"] if state["current"][0] == "check" else ""
        note("tampered" if certain else "suspect", exercise, False, detail, at)

    def refuse(what: str) -> None:
        certain = state["current"][0] == "learner"
        tampered(culprit(), f"its code tried {what}, which grading refuses", certain=certain)
        raise PermissionError_(f"prodready grading does not allow {what} in an answer")

    # -- which code is the learner's -------------------------------------------------

    def code_is_learners(code: Any) -> bool:
        filename = code.co_filename
        if type_(filename) is not str:
            return True
        known = cells.get(filename)
        if known is not None:
            return known[0] == "learner"
        if filename.startswith("<frozen "):
            return False
        return not filename.startswith(trusted)

    def learner_on_stack() -> bool:
        frame: Any = getframe(1)
        while frame is not None:
            if code_is_learners(frame.f_code):
                return True
            frame = frame.f_back
        return False

    def asked_by_learner() -> bool:
        """Is the code that asked for this learner code? Looks past the hook and past
        `inspect`, whose frame helpers hand frames straight to their caller."""
        frame: Any = getframe(1)
        while frame is not None and frame.f_code.co_filename is this_file:
            frame = frame.f_back
        while frame is not None and frame.f_code.co_filename in inspect_files:
            frame = frame.f_back
        return frame is not None and code_is_learners(frame.f_code)

    def code_of(value: object) -> Any:
        """The code object behind a callable, looked up without running any of its code."""
        kind = type_(value)
        if kind is MethodType:
            value = value.__func__  # type: ignore[attr-defined]
            kind = type_(value)
        if kind is FunctionType:
            return value.__code__  # type: ignore[attr-defined]
        call: Any = class_dict(kind).get("__call__") if kind is not type else None
        return call.__code__ if type_(call) is FunctionType else None

    def learner_callable(value: object) -> bool:
        """For IPython's hooks: libraries add callbacks too (matplotlib's inline backend
        does); a callable of learner code there changes the grader's machinery."""
        code = code_of(value)
        return code_is_learners(code) if code is not None else not callable_(value)

    def text_keys(mapping: Any) -> bool:
        """Only exact strings as keys: looking up any other key could run its code."""
        return all_(map_(is_, map_(type_, mapping), repeat(str)))

    # -- the recorded state ----------------------------------------------------------

    def behavioural(value: object) -> bool:
        return callable_(value) or type_(value) in behavioural_types

    spaces: dict[str, list[Any]] = {}  # label -> [mapping, keys, values, size, additions, counts]
    watched_modules: dict[str, Any] = {}

    def watch(
        label: str, mapping: Any, additions: bool, keys: Any = None, counts: Any = None
    ) -> None:
        fixed = keys if keys is not None else tuple_(mapping)
        spaces[label] = [
            mapping, fixed, tuple_(mapping.get(k, missing) for k in fixed), len_(mapping),
            additions and keys is None, counts or behavioural, keys is not None,
        ]  # fmt: skip

    def extend() -> None:
        if not text_keys(modules):
            return  # a planted key: changes() reports it
        for name, module in list_(modules.items()):
            if name in watched_modules or type_(module) is not ModuleType:
                continue
            top = name.partition(".")[0]
            if name in watched_attributes:
                watched_modules[name] = module
                watch(name, vars_(module), False, watched_attributes[name], lambda v: True)
                continue
            only = watched_classes.get(name)
            if top not in watched_module_names and only is None:
                continue
            watched_modules[name] = module
            if only is None:
                watch(name, vars_(module), False)
            for key_, value in list_(vars_(module).items()):
                owner = class_dict(value).get("__module__") if type_(value) is type else None
                if type_(owner) is str and owner == name and type_(key_) is str:
                    if only is not None and key_ not in only:
                        continue
                    label = name + "." + key_
                    if label not in spaces:
                        watch(label, vars_(value), True)
        if "registry" not in spaces:
            watch("the checker registry", registry, False)
            spaces["registry"] = spaces.pop("the checker registry")
            if shell is not None:
                watch("IPython's shell", shell_dict, True)
                watch("IPython's hooks", shell_hooks(), True, None, learner_callable)

    def shell_hooks() -> dict[str, object]:
        """The shell's lists of callables that see or rewrite every cell and output."""
        hooks: dict[str, object] = {}
        found_traits: Any = shell_dict.get("_trait_values")
        traits: dict[str, Any] = found_traits if type_(found_traits) is dict_ else {}
        for attr in ("input_transformers_post", "input_transformers_cleanup", "ast_transformers"):
            value: Any = shell_dict.get(attr, traits.get(attr))
            if type_(value) is list_:
                for n, fn in enumerate_(value):
                    hooks[attr + "[" + str_(n) + "]"] = fn
            else:
                hooks[attr] = value
        for attr in ("display_trap", "display_formatter"):
            hooks[attr] = traits.get(attr)
        events = shell_dict.get("events")
        callbacks: Any = vars_(events).get("callbacks") if type_(events) is EventManager else None
        if type_(callbacks) is dict_:
            for event, registered in list_(callbacks.items()):
                if type_(registered) is list_:
                    for n, fn in enumerate_(registered):
                        hooks["events[" + repr_(event) + "][" + str_(n) + "]"] = fn
                else:
                    hooks["events[" + repr_(event) + "]"] = registered
        else:
            hooks["events"] = events
        return hooks

    def changes() -> list[str]:
        """What differs from the recorded state: each rebinding of code, named."""
        found: list[str] = []
        for exercise, fn in list_(checkers.items()):
            if registry.get(exercise) is not fn:
                found.append("the checker registry's " + exercise + " was replaced")
        if not text_keys(modules):
            return [*found, "a key that is not a module name was planted in sys.modules"]
        if "IPython's hooks" in spaces:
            spaces["IPython's hooks"][0] = shell_hooks()
        for name, module in watched_modules.items():
            if modules.get(name, module) is not module:
                found.append("sys.modules[" + repr_(name) + "] was replaced")
        for label, space in spaces.items():
            mapping, keys, values, size, additions, counts, _ = space
            if not text_keys(mapping):
                found.append("a key that is not a name was planted in " + label)
                continue
            get = mapping.get
            same = all_(map_(is_, [get(k, missing) for k in keys], values))
            if same and (not additions or len_(mapping) == size):
                continue
            moved = []
            for k, old in zip_(keys, values):
                new = get(k, missing)
                if new is old or (type_(old) is MethodType and old == new):
                    continue
                if (old is not missing and counts(old)) or (new is not missing and counts(new)):
                    moved.append(
                        label
                        + "."
                        + str_(k)
                        + (" was deleted" if new is missing else " was replaced")
                    )
            if additions:
                for k, new in list_(mapping.items()):
                    if k not in keys and counts(new):  # keys are exact strings (text_keys)
                        moved.append(label + "." + str_(k) + " was added")
            if moved:
                found += moved
            else:  # only data moved (a cache, a counter): that is the new normal
                watch(label, mapping, additions, keys if space[6] else None, counts)
                spaces[label][4] = additions
        return found

    def described(found: list[str]) -> str:
        shown = "; ".join(found[:3])
        return shown + (" (and " + str_(len_(found) - 3) + " more)" if len_(found) > 3 else "")

    reported: set[str] = set_()

    def guarded(fn: Any, *args: Any) -> Any:
        """Run the hook's own introspection; the events it raises are not inspected."""
        me = get_ident()
        busy.add(me)
        try:
            return fn(*args)
        finally:
            busy.discard(me)

    # -- cells -----------------------------------------------------------------------

    def on_compile(args: tuple[Any, ...]) -> None:
        if len_(args) < 2 or type_(args[1]) is not str:
            return
        source, filename = args[0], args[1]
        if learner_on_stack():  # whatever file name learner code compiles under, it stays theirs
            if not installed_source(source, filename):
                cells[filename] = ("learner", state["current"][1], "")
            return
        if not filename.startswith(cell_dir) or type_(source) not in (str, bytes):
            return  # only IPython's name for a notebook cell makes a cell
        text = source.decode("utf-8", "replace") if type_(source) is bytes else source
        digest_ = sha256(text.strip().encode("utf-8", "replace")).hexdigest()
        known = cells.get(filename)
        if known is not None and known[2] != digest_:  # another text under a cell's name
            cells[filename] = ("learner", state["current"][1], "")
            return
        role = course_cells.get(digest_)
        at = ""
        if role is None:
            kind: tuple[str, str | None] = ("learner", answer_cells.get(digest_))
        elif role.startswith("check:"):
            exercise_, _, at = role.partition(":")[2].partition("@")
            kind = ("check", exercise_)
        else:
            kind = ("course", None)
        if known is None:
            between_cells(kind)
        cells[filename] = (kind[0], kind[1], digest_)
        state["current"], state["at"] = kind, at

    def installed_source(source: object, filename: str) -> bool:
        """An import, from learner code, of an installed module that has no bytecode cache
        yet (uv installs none) compiles the module's own file: that code stays installed
        code. Anything else compiled under an installed file's name is the learner's."""
        if not filename.startswith(trusted) or type_(source) not in (str, bytes_):
            return False
        try:
            with FileIO(filename, "rb") as f:
                on_disk = f.readall()
        except OSError_:
            return False
        text = source if type_(source) is bytes_ else str_.encode(source, "utf-8")  # type: ignore[arg-type]
        return on_disk == text

    def between_cells(starting: tuple[str, str | None]) -> None:
        """Catch a change as soon as the answer cell that made it is over, so it is pinned
        on the right exercise; until the first answer cell, extend the recorded state."""
        if not state["learner_ran"]:
            capture_checkers()
            extend()
        elif state["current"][0] == "learner":
            new = [change for change in changes() if change not in reported]
            if new:
                reported.update(new)
                tampered(
                    state["current"][1],
                    "its code changed the grader's machinery: " + described(new),
                )
        if starting[0] == "learner":
            state["learner_ran"] = True

    # -- paths -----------------------------------------------------------------------

    def is_protected(path: str) -> bool:
        """This path or a folder above it is protected, by inode: neither a symbolic link
        nor `..` hides it. A process's memory and environment never open."""
        if path.startswith("/proc/") and path.endswith(("/mem", "/environ", "/maps")):
            return True  # Linux: a process's memory, its environment, its memory map
        while path:
            if inode(path) in protected:
                return True
            parent = dirname(path)
            if parent == path:
                return False
            path = parent
        return False

    def on_path(event: str, args: tuple[Any, ...]) -> None:
        for index in path_arguments[event]:
            path: Any = args[index] if index < len_(args) else None
            if type_(path) not in (str, bytes):
                continue  # a descriptor; an object's conversion is audited on its own
            text: str = path.decode("utf-8", "replace") if type_(path) is bytes else path
            mode: Any = args[1] if len_(args) > 1 else None
            flags = args[2] if len_(args) > 2 else 0
            writing = event not in ("open", "os.listdir", "os.scandir") or (
                any_(c in mode for c in "wax+") if type_(mode) is str
                else type_(flags) is int and bool_(flags & O_WRITES)
            )  # fmt: skip
            absolute = text if isabs(text) else join(getcwd(), text)
            outside = not absolute.startswith(trusted)
            # bytecode can claim any file name; the import system falls back to source
            if absolute.endswith(compiled_suffixes) and outside and guarded(learner_on_stack):
                refuse("loading compiled code from outside the installed packages")
            if absolute.startswith(trusted):
                if writing and guarded(learner_on_stack):  # installed code stays as installed
                    refuse("writing into the installed packages (" + text + ")")
                continue
            if guarded(is_protected, absolute):
                refuse("touching the grader's or the reference's files (" + text + ")")

    # -- checks ----------------------------------------------------------------------

    def verify(exercise: str, when: str) -> None:
        changed = described(guarded(changes))
        if changed:
            tampered(
                exercise,
                "the grader's machinery was changed " + when + " its check: " + changed,
                certain=False,
            )
            raise Tampered(
                exercise + " was not graded: code in this notebook changed the grader's "
                "machinery (" + changed + ")"
            )

    def on_check(args: tuple[Any, ...]) -> None:
        if len_(args) != 6:
            refuse("raising the grader's check event itself")
        given_nonce, exercise, at, box, call_args, call_kwargs = args
        if given_nonce != nonce or state["current"] != ("check", exercise) or at != state["at"]:
            refuse("raising the grader's check event itself")
        verify(exercise, "before")
        fn = checkers.get(exercise)
        if fn is None:
            raise RuntimeError_("the course registers no checker for " + exercise)
        if is_async[exercise]:
            box.append(run_async(exercise, fn, call_args, call_kwargs))
            return
        summary, failure, printed = run_captured(lambda: fn(*call_args, **call_kwargs))
        if failure is None:
            canary_sync(exercise)
        finish(exercise, summary, failure, printed)

    async def run_async(exercise: str, fn: Any, call_args: Any, call_kwargs: Any) -> None:
        buffer = StringIO()
        with captured(buffer):
            summary, failure = await outcome_async(fn(*call_args, **call_kwargs))
        if failure is None:
            await canary_async(exercise)
        finish(exercise, summary, failure, buffer.getvalue())

    def finish(exercise: str, summary: str | None, failure: str | None, printed: str) -> None:
        verify(exercise, "during")
        guarded(extend)  # modules a check imported for the first time
        note("verdict", exercise, failure is None, "", state["at"])
        if failure is None:
            passed.append(exercise)
        conclude(exercise, summary, failure, printed)

    def starting_code_call(exercise: str) -> Any:
        """The check's call, with the exercise's shipped starting code in a copy of the
        notebook's namespace in place of the learner's answer; for a module whose answer
        includes files, in a folder where they are the shipped ones."""
        spec = exercises[exercise]
        namespace = dict_(user_ns)
        here = getcwd()
        if canary_dir:
            chdir(canary_dir)
        try:
            for stub in spec["stubs"]:
                exec_(compile_(stub, "<starting code of " + exercise + ">", "exec"), namespace)
            return checkers[exercise](*[eval_(e, namespace) for e in spec["args"]])
        finally:
            chdir(here)

    def canary_sync(exercise: str) -> None:
        """A passed check, again on the shipped starting code: it must fail that."""
        started, accepted = monotonic(), False
        try:
            with captured(StringIO()):
                starting_code_call(exercise)
                accepted = True
        except Exception_:  # the starting code was refused, as it must be
            accepted = False
        took = str_(round_(monotonic() - started, 2)) + " s"
        note("canary", exercise, not accepted, took, state["at"])

    async def canary_async(exercise: str) -> None:
        started, accepted = monotonic(), False
        try:
            with captured(StringIO()):
                outcome = starting_code_call(exercise)
                if type_(outcome) is CoroutineType:
                    await outcome
                accepted = True
        except Exception_:
            accepted = False
        took = str_(round_(monotonic() - started, 2)) + " s"
        note("canary", exercise, not accepted, took, state["at"])

    # -- the hook --------------------------------------------------------------------

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if get_ident() in busy:  # the hook's own introspection
            return
        if event == "compile":
            guarded(on_compile, args)
        elif event == check_event:
            on_check(args)
        elif event in path_arguments:
            on_path(event, args)
        elif event == "object.__getattr__":
            if len_(args) > 1 and args[1] in frame_attributes and guarded(asked_by_learner):
                refuse("reading ." + str_(args[1]))
        elif event == "object.__setattr__":
            if len_(args) > 1 and args[1] in ("__code__", "__defaults__", "__kwdefaults__"):
                target_code = code_of(args[0])
                theirs = target_code is not None and code_is_learners(target_code)
                if not theirs and guarded(learner_on_stack):
                    refuse("replacing " + str_(args[1]) + " of a function that is not theirs")
        elif event in asked_for_frames:
            if guarded(asked_by_learner):
                refuse(event)
        elif event in refused_near_learner_code or event.startswith("ctypes."):
            if guarded(learner_on_stack):
                if event == "sys.addaudithook":  # a RuntimeError quietly drops the new hook
                    tampered(culprit(), "its code tried to add an audit hook")
                    raise RuntimeError_("prodready grading does not allow audit hooks")
                refuse(event)
        elif event == "import" and args and args[0] in refused_imports:
            self_check = guarded(learner_on_stack)
            if self_check:
                refuse("import " + str_(args[0]))

    extend()
    sys.addaudithook(audit)
    note("sealed", None, True, "python " + sys.version.split()[0])


def protected_paths() -> tuple[str, ...]:
    """The files a sealed kernel refuses to learner code (none outside grading). A check
    that starts a process to run learner code passes these on (``_child``)."""
    return ()


def _shell(modules: Any) -> Any:
    ipython = modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _seal_code_filename() -> str:
    """The file name this module's code runs under (the very string object, for `is`)."""
    return _seal_code_filename.__code__.co_filename


def _trusted_roots() -> list[str]:
    """Where installed code lives: any other code running in the kernel is learner code."""
    import contextlib
    import os
    import site
    import sys
    import sysconfig
    from pathlib import Path

    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).parent)]
    candidates += [str(p) for p in sysconfig.get_paths().values()]
    with contextlib.suppress(AttributeError):
        candidates += [*site.getsitepackages(), site.getusersitepackages()]
    roots: list[str] = []
    for candidate in candidates:
        real = os.path.join(os.path.realpath(candidate), "")
        if real not in roots and os.path.dirname(real.rstrip(os.sep)) != real.rstrip(os.sep):
            roots.append(real)
    return roots


# --- what the grader composes ---------------------------------------------------------


def check_cell(nonce: str, source: str, at: str = "1") -> tuple[str, str, list[str]] | None:
    """Rewrite a course check cell (``check("id", a, b)`` or ``await check_async(...)``)
    into one that raises the check event. Returns (exercise, new source, the argument
    expressions), or None if the cell is not a plain check call."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None
    call = tree.body[0].value
    if isinstance(call, ast.Await):
        call = call.value
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        return None
    if call.func.id not in ("check", "check_async") or not call.args:
        return None
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    if any(kw.arg is None for kw in call.keywords) or any(
        isinstance(a, ast.Starred) for a in call.args
    ):
        return None
    exercise = first.value
    awaited = isinstance(tree.body[0].value, ast.Await)
    args = [ast.unparse(a) for a in call.args[1:]]
    packed_args = "(" + "".join(f"{a}, " for a in args) + ")"
    packed_kwargs = (
        "{" + ", ".join(f"{kw.arg!r}: {ast.unparse(kw.value)}" for kw in call.keywords) + "}"
    )
    # Awaiting only where the check is async: ipykernel cannot interrupt a cell that awaits,
    # so a learner's endless loop would cost the whole kernel instead of one exercise.
    new = (
        "import sys as _prodready_sys\n"
        "_prodready_box = []\n"
        f"_prodready_sys.audit({CHECK_EVENT!r}, {nonce!r}, {exercise!r}, {at!r}, _prodready_box, "
        f"{packed_args}, {packed_kwargs})\n"
    )
    if awaited:
        new += "while _prodready_box:\n    await _prodready_box.pop(0)\n"
    return exercise, new, args


def seal_cell(config_path: str) -> str:
    return f"from prodready._seal import seal as _prodready_seal\n_prodready_seal({config_path!r})"
