"""Rebuild exercises/ from solutions/: answer cells become their stubs, outputs go.

Safe to re-run. Run it after editing a solution: `make workbooks`.
"""

import shutil
import sys
from pathlib import Path

from prodready._notebooks import build_workbook, read_notebook, write_notebook

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    for solution in sorted((ROOT / "solutions").glob("*.ipynb")):
        target = ROOT / "exercises" / solution.name
        write_notebook(build_workbook(read_notebook(solution)), target)
        print(f"wrote {target.relative_to(ROOT)}")
    # A module whose answer includes files: exercises/<name>/ is the shipped starting code.
    for starting in sorted((ROOT / "solutions").glob("*.starting")):
        target = ROOT / "exercises" / starting.name.removesuffix(".starting")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(starting, target, ignore=shutil.ignore_patterns("__pycache__"))
        print(f"wrote {target.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
