"""Static review of an answer cell: does it reach for the grader instead of the exercise?

Runs in the grader, on the syntax tree (never the text, which string tricks defeat), and
flags constructs that an answer to a course exercise has no reason to use: the course's
private modules, dynamic imports and code, frames, the garbage collector's object lists,
the kernel's shell, tracing, ctypes, builtins, the reference's files. A flag withholds the
credit until an instructor has looked, and says why, with the line; it never fails an
answer quietly. The runtime seal (``_seal``) stops the same techniques in the kernel;
this review also catches the ones that a seal can only see after the fact.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Modules an answer never needs, each with the reason it stands out.
_MODULES = {
    "prodready": "imports the course's own package (the workbook's setup cell already does)",
    "importlib": "imports modules by computed name",
    "ctypes": "reaches native memory with ctypes",
    "_ctypes": "reaches native memory with ctypes",
    "builtins": "reaches into the interpreter's builtins",
    "IPython": "reaches into the notebook's kernel",
    "ipykernel": "reaches into the notebook's kernel",
    "jupyter_client": "reaches into the notebook's kernel",
    "nbformat": "reads notebooks",
    "nbval": "reaches into the grader",
    "nbclient": "reaches into the grader",
    "_posixsubprocess": "starts processes behind the standard library's back",
    "marshal": "builds code objects",
    "__main__": "reaches into the notebook's namespace by module",
}
# Attribute names whose use reaches frames, code objects or hidden references.
_ATTRIBUTES = {
    "__globals__": "reads a function's globals",
    "__builtins__": "reaches into the interpreter's builtins",
    "__code__": "reads or replaces a function's code",
    "__closure__": "reads a function's closure",
    "__subclasses__": "walks the class hierarchy to find objects",
    "__self__": "reaches an object through a bound method",
    "__loader__": "reaches into the import machinery",
    "__spec__": "reaches into the import machinery",
    "__getattribute__": "looks attributes up behind the language's back",
    "f_back": "walks the call stack",
    "f_globals": "reads a frame's globals",
    "f_locals": "reads or writes a frame's local variables",
    "f_code": "reads a frame's code",
    "tb_frame": "walks the call stack from a traceback",
    "gi_frame": "reads a generator's frame",
    "cr_frame": "reads a coroutine's frame",
    "ag_frame": "reads an async generator's frame",
    "_getframe": "walks the call stack",
    "_current_frames": "reads every thread's call stack",
    "settrace": "installs a tracer that sees (and can change) the checker's variables",
    "setprofile": "installs a profiler that sees the checker's calls",
    "addaudithook": "installs an audit hook",
    "get_objects": "lists every object in memory",
    "get_referrers": "finds objects through the garbage collector",
    "get_referents": "finds objects through the garbage collector",
    "currentframe": "walks the call stack",
    "getouterframes": "walks the call stack",
    "getinnerframes": "walks the call stack",
    "walk_stack": "walks the call stack",
    "walk_tb": "walks the call stack from a traceback",
    "input_transformers_post": "rewrites the notebook's cells before they run",
    "input_transformers_cleanup": "rewrites the notebook's cells before they run",
    "ast_transformers": "rewrites the notebook's cells before they run",
    "set_custom_exc": "changes how the notebook shows errors",
    "showtraceback": "changes how the notebook shows errors",
    "_showtraceback": "changes how the notebook shows errors",
    "display_pub": "changes what the notebook displays",
    "displayhook": "changes what the notebook displays",
    "excepthook": "changes how errors are reported",
    "monitoring": "installs a monitor that sees the checker's execution",
    "FunctionType": "builds functions from code objects",
    "CodeType": "builds code objects",
    "_REGISTRY": "reaches the course's checker registry",
}
_CALLS = {
    "__import__": "imports modules by computed name",
    "get_ipython": "reaches into the notebook's kernel",
    "globals": "reads or writes the notebook's namespace as a dictionary",
}
_DYNAMIC_CODE = {"eval", "exec", "compile"}
_REFLECTIVE = {"getattr", "setattr", "delattr", "vars"}
_FILE_HINTS = ("solutions", ".ipynb", "/proc/", "cells.jsonl", "graded")


@dataclass(frozen=True)
class Flag:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def scrutinize(source: str) -> list[Flag]:
    """Every construct in an answer that reaches for the grader, in source order."""
    tree = _parse(source)
    if tree is None:
        return []  # an answer that does not parse fails its check on its own
    review = _Review()
    review.visit(tree)
    unique = {(f.line, f.reason): f for f in review.flags}
    return sorted(unique.values(), key=lambda f: (f.line, f.reason))


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    try:  # IPython syntax: magics and `!shell` lines
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ImportError, ValueError):
        return None


class _Review(ast.NodeVisitor):
    def __init__(self) -> None:
        self.flags: list[Flag] = []
        self.modules: set[str] = set()  # names the answer bound to imported modules

    def flag(self, node: ast.AST, reason: str) -> None:
        self.flags.append(Flag(getattr(node, "lineno", 0), reason))

    def _imported(self, node: ast.AST, module: str) -> None:
        top = module.partition(".")[0]
        if top in _MODULES:
            self.flag(node, _MODULES[top])
        elif top in ("gc", "inspect", "sys", "traceback", "types") and module != top:
            pass

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._imported(node, alias.name)
            self.modules.add(alias.asname or alias.name.partition(".")[0])
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self._imported(node, module)
        for alias in node.names:
            if alias.name in _ATTRIBUTES:
                self.flag(node, _ATTRIBUTES[alias.name])
            if module == "sys" and alias.name == "modules":
                self.flag(node, "looks modules up in sys.modules")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _ATTRIBUTES:
            self.flag(node, _ATTRIBUTES[node.attr])
        if node.attr == "modules" and _names(node.value) == "sys":
            self.flag(node, "looks modules up in sys.modules")
        if node.attr == "__dict__" and _names(node.value) in self.modules:
            self.flag(node, "reads a module's namespace as a dictionary")
        if node.attr == "__class__" and isinstance(node.ctx, ast.Store):
            self.flag(node, "changes an object's class")
        if node.attr in ("stdout", "stderr", "audit") and isinstance(node.ctx, ast.Store):
            self.flag(node, f"replaces sys.{node.attr}")
        if isinstance(node.ctx, ast.Store) and _names(node.value) in self.modules:
            self.flag(node, f"patches the module {_names(node.value)}")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in ("__builtins__", "__import__"):
            self.flag(node, _ATTRIBUTES.get(node.id) or _CALLS[node.id])
        if node.id in ("check", "check_async") and isinstance(node.ctx, (ast.Store, ast.Del)):
            self.flag(node, "rebinds the course's check")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name in ("check", "check_async"):
            self.flag(node, "rebinds the course's check")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name in _CALLS:
            self.flag(node, _CALLS[name])
        if name in _DYNAMIC_CODE and not all(isinstance(a, ast.Constant) for a in node.args[:1]):
            self.flag(node, f"runs code built at run time ({name})")
        if name in _REFLECTIVE and node.args:
            target = _names(node.args[0])
            computed = len(node.args) > 1 and not isinstance(node.args[1], ast.Constant)
            if target in self.modules or target in ("sys", "builtins", "__builtins__"):
                self.flag(node, f"{name}() on a module looks names up behind the language's back")
            elif name == "vars" and not node.args:
                pass
            elif computed and target is None:
                self.flag(node, f"{name}() with a computed name on a computed object")
        if name == "open" or (isinstance(node.func, ast.Attribute) and node.func.attr in (
            "open", "read_text", "read_bytes",
        )):  # fmt: skip
            for text in _strings(node):
                if any(hint in text for hint in _FILE_HINTS):
                    self.flag(node, f"reads {text!r}, a file of the grader or the reference")
        func = node.func
        shell = isinstance(func, ast.Attribute) and func.attr in ("system", "popen")
        if shell and _names(getattr(func, "value", func)) in ("os", "get_ipython"):
            self.flag(node, "runs a shell command")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        # globals()[name], or vars(module)[name]; vars(record)[key] on one's own objects is
        # an everyday idiom (a logging filter's), and stays unflagged.
        call = node.value if isinstance(node.value, ast.Call) else None
        name = _names(call.func) if call is not None else None
        if name == "globals" or (
            name == "vars" and call is not None and call.args
            and _names(call.args[0]) in (*self.modules, "sys", "builtins", "__builtins__")
        ):  # fmt: skip
            self.flag(node, "reads or writes a namespace as a dictionary")
        self.generic_visit(node)


def _names(node: ast.AST) -> str | None:
    """The dotted name an expression spells (``sys``, ``os.path``), or None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _names(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
