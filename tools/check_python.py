"""Refuse, with a way out, a Python the course does not support (stdlib only)."""

import sys

SUPPORTED = ((3, 11), (3, 13))

if not SUPPORTED[0] <= sys.version_info[:2] <= SUPPORTED[1]:
    found = ".".join(map(str, sys.version_info[:3]))
    sys.exit(
        f"prodready needs Python 3.11, 3.12 or 3.13; `{sys.executable}` is {found}.\n"
        "Point make at a supported one, for example: make test PYTHON=python3.12"
    )
try:
    import ensurepip  # noqa: F401  (venv needs it to bootstrap pip)
    import venv  # noqa: F401
except ImportError:
    sys.exit(
        "This Python cannot create virtual environments (the venv module is missing).\n"
        "On Debian/Ubuntu: sudo apt install python3-venv; or use a pyenv/python.org Python."
    )
