"""The server extension that lets JupyterLab open the course's notebooks unchanged."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel
from jupyter_server.services.contents.filemanager import FileContentsManager
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from conftest import REPO
from prodready import _lab
from prodready._notebooks import KERNELSPEC, write_notebook


def notebook(tmp_path: Path, **metadata: Any) -> Path:
    nb = nbformat.v4.new_notebook(metadata=metadata)
    nb.cells = [nbformat.v4.new_code_cell("1 + 1")]
    path = tmp_path / "nb.ipynb"
    write_notebook(nb, path)
    return path


def served(manager: Any, name: str = "nb.ipynb") -> dict[str, Any]:
    server = SimpleNamespace(
        kernel_spec_manager=KernelSpecManager(),
        contents_manager=manager,
        log=logging.getLogger("test"),
    )
    _lab._load_jupyter_server_extension(server)
    model = manager.get(name)
    return asyncio.run(model) if asyncio.iscoroutine(model) else model  # type: ignore[no-any-return]


def test_the_kernel_reports_exactly_what_the_extension_fills_in() -> None:
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        reply = client.kernel_info(reply=True, timeout=60)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert reply["content"]["language_info"] == _lab.kernel_language_info()


def test_a_course_notebook_is_served_with_the_kernels_language_info(tmp_path: Path) -> None:
    notebook(tmp_path, kernelspec=dict(KERNELSPEC))
    for manager in (AsyncLargeFileManager, FileContentsManager):  # async, and the old sync one
        model = served(manager(root_dir=str(tmp_path)))
        metadata = model["content"]["metadata"]
        assert metadata["language_info"] == _lab.kernel_language_info()
        assert metadata["kernelspec"] == KERNELSPEC
    on_disk = nbformat.read(tmp_path / "nb.ipynb", as_version=4)
    assert on_disk.metadata == {"kernelspec": KERNELSPEC}, "nothing is written back"


def test_other_notebooks_and_files_are_served_as_they_are(tmp_path: Path) -> None:
    other = {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}}
    notebook(tmp_path, **other)
    assert served(AsyncLargeFileManager(root_dir=str(tmp_path)))["content"]["metadata"] == other
    mine = {"name": "python", "version": "3.0"}
    notebook(tmp_path, kernelspec=dict(KERNELSPEC), language_info=mine)
    metadata = served(AsyncLargeFileManager(root_dir=str(tmp_path)))["content"]["metadata"]
    assert metadata["language_info"] == mine, "a stored language_info is the notebook's own"
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    assert served(AsyncLargeFileManager(root_dir=str(tmp_path)), "notes.txt")["content"] == "hello"


def test_only_a_kernel_running_this_python_is_trusted_to_report_this_pythons_version() -> None:
    assert _lab.kernel_runs_this_python(["python", "-m", "ipykernel_launcher"])
    assert _lab.kernel_runs_this_python([sys.executable, "-m", "ipykernel_launcher"])
    assert not _lab.kernel_runs_this_python(["/opt/other/bin/python", "-m", "ipykernel"])
    assert not _lab.kernel_runs_this_python([])


def test_the_extension_is_found_by_its_module_name() -> None:
    assert _lab._jupyter_server_extension_points() == [{"module": "prodready._lab"}]
    assert (REPO / "src" / "prodready" / "_lab.py").is_file()
