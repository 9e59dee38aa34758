"""`make bench` (full run) and `make bench-quick` (a short one)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bench import report
from bench.run import run
from bench.workload import FULL, QUICK


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description="lottrace benchmark")
    parser.add_argument("--quick", action="store_true", help="a short run (under 3 minutes)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON")
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="where benchmarks.md goes (default: docs/, or bench/results/ with --quick)",
    )
    arguments = parser.parse_args()
    size = QUICK if arguments.quick else FULL
    results = asyncio.run(run(size))
    out = arguments.out or Path("bench/results") / (
        "quick.json" if arguments.quick else "latest.json"
    )
    command = "make bench-quick" if arguments.quick else "make bench"
    docs = arguments.docs or Path("bench/results" if arguments.quick else "docs")
    report.write(results, json_path=out, docs=docs, command=command)
    print(report.table(results))
    print(f"\nresults: {out}   report: {docs / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
