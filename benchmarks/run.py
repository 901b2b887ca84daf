"""`make bench`: run every benchmarks/bench_*.py and print its figures.

Benchmarks quote medians and ratios over repeated runs; unit tests never time anything.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(selected: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if selected:
        scripts = [s for s in scripts if any(name in s.stem for name in selected)]
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        spec = importlib.util.spec_from_file_location(script.stem, script)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[script.stem] = module  # dataclasses look their module up while defined
        spec.loader.exec_module(module)
        started = time.perf_counter()
        module.main()
        print(f"({script.stem} took {time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
