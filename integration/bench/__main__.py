"""python -m integration.bench [--size smoke|full] [--out results.json] [--only NAME]

Runs every benchmark in one go (or the one ``--only`` names), prints one
markdown table and writes the raw numbers (and the machine they came from)
as JSON. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

from integration.bench import SIZES, run_all, run_three_clouds_only, run_tls12_only
from integration.bench.report import markdown, row_dicts, rows, three_clouds_rows, tls12_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m integration.bench",
        description="Benchmark the agent against the tools users would pick instead.",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    parser.add_argument(
        "--only",
        choices=["handshake-tls12", "three-clouds"],
        help="run one benchmark instead of all of them",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    results: dict[str, Any]
    if args.only == "handshake-tls12":
        results = run_tls12_only(SIZES[args.size], progress=_progress)
        table = tls12_rows(results)
    elif args.only == "three-clouds":
        results = run_three_clouds_only(SIZES[args.size], progress=_progress)
        table = three_clouds_rows(results)
    else:
        results = run_all(SIZES[args.size], progress=_progress)
        table = rows(results)
    results["table"] = row_dicts(table)
    results["size"] = args.size
    results["wall_seconds"] = time.monotonic() - started
    results["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(table))
    print(
        f"\n{args.size} run, {results['wall_seconds']:.0f} s, "
        f"{results['machine']['nproc']} x {results['machine']['cpu_model']}, "
        f"commit {results['machine']['git_commit']}; raw numbers in {args.out}"
    )
    return 0


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
