"""Re-pin constraints.txt to exactly what the course environment has installed.

Run `make lock` after changing dependencies in pyproject.toml, then re-run the notebooks
(`make refresh-outputs`) and review both diffs: a new version may change stored outputs.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# Exact versions for every package the course installs (a pip constraints file).
# Stored notebook outputs quote these libraries' messages: change a pin, re-run
# the notebooks (make refresh-outputs), and review the diff.
# Regenerate: make lock
"""


def main() -> int:
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    pins = sorted(
        (line for line in frozen.splitlines() if "==" in line and not line.startswith("-e")),
        key=str.lower,
    )
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(pins) + "\n", encoding="utf-8")
    print(f"pinned {len(pins)} packages in constraints.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
