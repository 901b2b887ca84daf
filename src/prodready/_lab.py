"""A Jupyter server extension: the course's notebooks open without unsaved changes.

JupyterLab 4 copies the kernel's ``language_info`` into a notebook's metadata as soon as
the kernel starts (and fills in ``{"name": ""}`` even earlier, when the file has none),
and any metadata change marks the notebook as changed: the learner sees the
unsaved-changes dot on a page they have not touched, and is asked to save it on close.
The value names the exact Python (``3.11.7`` here, ``3.12.4`` there), so the course's
notebooks cannot ship it: their metadata is only the kernelspec. Instead, when the server
hands a notebook to JupyterLab without ``language_info``, this extension fills in exactly
what the course's kernel is about to report. Nothing is written to disk.

Enable it for a server with ``--ServerApp.jpserver_extensions='{"prodready._lab": True}'``,
or for an environment with ``jupyter server extension enable --sys-prefix prodready._lab``.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

KERNEL = "python3"  # the only kernel the course's notebooks name


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "prodready._lab"}]


@functools.cache
def kernel_language_info() -> dict[str, Any]:
    """What ipykernel in this interpreter reports as ``language_info``."""
    from ipykernel.ipkernel import IPythonKernel

    return copy.deepcopy(dict(IPythonKernel.language_info))


def fill_language_info(model: dict[str, Any], info: dict[str, Any]) -> None:
    """Give a contents-API notebook model the kernel's ``language_info`` if it has none."""
    content = model.get("content")
    if model.get("type") != "notebook" or not isinstance(content, dict):
        return
    metadata = content.get("metadata")
    if not isinstance(metadata, dict) or "language_info" in metadata:
        return
    kernelspec = metadata.get("kernelspec")
    if isinstance(kernelspec, dict) and kernelspec.get("name") == KERNEL:
        metadata["language_info"] = copy.deepcopy(info)


def kernel_runs_this_python(argv: list[str]) -> bool:
    """Whether a kernelspec's command starts this interpreter. jupyter_client runs
    ``python``, ``python3`` and ``python3.X`` as ``sys.executable`` (the native kernel)."""
    if not argv:
        return False
    major, minor = sys.version_info[:2]
    aliases = {"python", f"python{major}", f"python{major}.{minor}"}
    if argv[0] in aliases:
        return True
    return os.path.realpath(argv[0]) == os.path.realpath(sys.executable)


def _load_jupyter_server_extension(serverapp: Any) -> None:
    try:
        spec = serverapp.kernel_spec_manager.get_kernel_spec(KERNEL)
    except Exception:  # no such kernel here: JupyterLab will ask for one anyway
        serverapp.log.info("prodready._lab: no %s kernel, notebooks left as they are", KERNEL)
        return
    if not kernel_runs_this_python(list(spec.argv)):
        serverapp.log.info("prodready._lab: the %s kernel is another Python; left alone", KERNEL)
        return
    manager = serverapp.contents_manager
    manager.get = _filling(manager.get)
    serverapp.log.info("prodready._lab: notebooks open with this kernel's language_info")


def _filling(get: Callable[..., Any]) -> Callable[..., Any]:
    """``get`` of a contents manager (sync or async), filling in ``language_info``."""

    def fill(model: Any) -> Any:
        if isinstance(model, dict):
            fill_language_info(model, kernel_language_info())
        return model

    if inspect.iscoroutinefunction(get):

        @functools.wraps(get)
        async def get_async(*args: Any, **kwargs: Any) -> Any:
            return fill(await get(*args, **kwargs))

        return get_async

    @functools.wraps(get)
    def get_sync(*args: Any, **kwargs: Any) -> Any:
        return fill(get(*args, **kwargs))

    return get_sync
