"""Re-execute lessons and solutions in place, storing fresh outputs (authoring only).

Usage: python tools/refresh_outputs.py [NOTEBOOK ...]   (default: all lessons and solutions)
Each notebook runs in a scratch folder, the way nbval runs it, with progress not recorded.
Review the diff afterwards: stored outputs are what nbval holds the course to.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from prodready._notebooks import KERNELSPEC, read_notebook, write_notebook

ROOT = Path(__file__).resolve().parents[1]


def refresh(path: Path) -> None:
    nb = read_notebook(path)
    nb.metadata = {"kernelspec": dict(KERNELSPEC)}
    with tempfile.TemporaryDirectory(prefix="prodready-refresh-") as scratch:
        # A solution whose answer includes files (solutions/NN_topic/): the files go beside
        # it, as grading puts a learner's folder beside the workbook.
        files = path.with_suffix("")
        if path.parent.name == "solutions" and files.is_dir():
            shutil.copytree(
                files, Path(scratch) / files.name, ignore=shutil.ignore_patterns("__pycache__")
            )
        client = NotebookClient(
            nb, timeout=900, kernel_name="python3", allow_errors=True,
            resources={"metadata": {"path": scratch}},
        )  # fmt: skip
        client.execute()
    nb.metadata = {"kernelspec": dict(KERNELSPEC)}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        tags = cell.metadata.get("tags", [])
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors and "raises-exception" not in tags:
            raise SystemExit(
                f"{path.name}: a cell raised without the raises-exception tag:\n"
                f"{cell.source[:300]}\n{errors[0].ename}: {errors[0].evalue}"
            )
    nbformat.validate(nb)
    write_notebook(nb, path)
    print(f"refreshed {path.relative_to(ROOT)}")


def main(args: list[str]) -> int:
    os.environ["PRODREADY_GRADING"] = "1"  # a refresh must not touch anyone's progress
    os.environ["PRODREADY_COURSE"] = str(ROOT)
    paths = [Path(a).resolve() for a in args] or sorted(
        [*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "solutions").glob("*.ipynb")]
    )
    for path in paths:
        refresh(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
