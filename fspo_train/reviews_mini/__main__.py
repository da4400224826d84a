"""`python -m fspo_train.reviews_mini`: run the Reviews-mini benchmark, write the reference result.

Writes `reviews_mini.json`, `reviews_mini.md` and `reviews_mini.png` into `--out` (default
`bench/results`); the trained models go to `--work`. `--full` is the GPU size.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m fspo_train.reviews_mini", description=__doc__)
    parser.add_argument("--full", action="store_true", help="GPU size: bigger model, more data.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--work", type=Path, default=Path("runs/reviews-mini"))
    parser.add_argument("--stem", default="reviews_mini", help="File name stem of the results.")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)

    from fspo_train.reviews_mini import BenchConfig, run_benchmark
    from fspo_train.reviews_mini.report import write_results

    config = BenchConfig.full(args.seed) if args.full else BenchConfig.cpu(args.seed)
    results = run_benchmark(config, args.work / f"seed{args.seed}")
    results["meta"]["command"] = "python -m fspo_train.reviews_mini " + " ".join(
        argv or sys.argv[1:]
    )
    paths = write_results(results, args.out, args.stem)
    print(results["table_markdown"])  # noqa: T201 - a command-line entry point
    print("Wrote", *paths.values())  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
