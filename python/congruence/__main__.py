"""Command line: ``congruence compare`` (the main job), ``congruence info`` and ``congruence bench``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence


def _bench(argv: Sequence[str]) -> int:
    # The benchmark suite lives in the source tree (benchmarks/), next to its results.
    root = os.environ.get("CONGRUENCE_SOURCE", os.getcwd())
    if not os.path.isdir(os.path.join(root, "benchmarks")):
        print("congruence bench: run it from a source checkout (the folder holding benchmarks/), "
              "or set CONGRUENCE_SOURCE to that folder", file=sys.stderr)
        return 2
    sys.path.insert(0, root)
    from benchmarks.__main__ import main as bench_main

    return int(bench_main(list(argv)) or 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="congruence", description="Compare neural networks at scale.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("compare", help="compare two networks layer by layer (no arguments: the digits demo; "
                   "see congruence compare --help)", add_help=False)
    sub.add_parser("info", help="show version, build, BLAS, threads and CUDA status")
    sub.add_parser("bench", help="run the benchmark suite (arguments are passed on; try --quick)", add_help=False)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    if argv[:1] == ["compare"]:
        from .cli_compare import main as compare_main

        return int(compare_main(argv[1:]) or 0)
    args = parser.parse_args(argv)
    if args.command == "info":
        from . import info

        print(json.dumps(info(), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
