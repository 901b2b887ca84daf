"""``python -m prodready._checks.capstone report [FOLDER]``: the whole readiness report."""

from __future__ import annotations

import argparse
import sys

from ._report import default_folder, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prodready._checks.capstone",
        description="Run the production-readiness report of the capstone's service.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "report", help="run the service under load and judge every requirement"
    )
    run.add_argument("folder", nargs="?", help="the service's folder (default: 10_capstone)")
    run.add_argument("--no-tests", action="store_true", help="skip the service's own tests")
    args = parser.parse_args(argv)
    folder = args.folder or str(default_folder())
    print(f"Running the report on {folder}: three runs of the service and its tests (15 to 30 s)")
    text, all_met = report(folder, tests=not args.no_tests)
    print(text)
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
