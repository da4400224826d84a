"""`python -m fspo_train.reviews_mini`: run the Reviews-mini benchmark, write the reference result.

Writes `reviews_mini.json`, `reviews_mini.md` and `reviews_mini.png` into `--out` (default
`bench/results`); the trained models go to `--work`. `--full` is the GPU size (both responses).
`--both-responses` is the paper's setting (each shot shows the chosen and the rejected
response; default stem `reviews_mini_both`). `--seeds 0 1 2` runs each seed and writes their
means with 95% intervals across seeds (each seed's own table is kept in the JSON).
`--threads 1` pins torch to one thread in every process (a shared CPU).
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
    parser.add_argument("--seeds", type=int, nargs="+", help="Several seeds (overrides --seed).")
    parser.add_argument(
        "--both-responses",
        action="store_true",
        help="Shots show the chosen and the rejected response (the paper's setting).",
    )
    parser.add_argument("--threads", type=int, default=0, help="Torch threads (0: default).")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--work", type=Path, default=Path("runs/reviews-mini"))
    parser.add_argument("--stem", help="File name stem (reviews_mini, reviews_mini_both).")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)

    import dataclasses

    from fspo_train.reviews_mini import BenchConfig, run_benchmark
    from fspo_train.reviews_mini.report import write_results
    from fspo_train.reviews_mini.seeds import combine_seeds

    both = args.both_responses or args.full  # the GPU size is the paper's setting
    setting = "both" if both else "preferred"
    stem = args.stem or ("reviews_mini_both" if both else "reviews_mini")
    runs = []
    for seed in args.seeds or [args.seed]:
        size = BenchConfig.full if args.full else BenchConfig.cpu
        config = dataclasses.replace(size(seed, both_responses=both), torch_threads=args.threads)
        runs.append(run_benchmark(config, args.work / setting / f"seed{seed}"))
    results = combine_seeds(runs) if len(runs) > 1 else runs[0]
    results["meta"]["command"] = "python -m fspo_train.reviews_mini " + " ".join(
        argv or sys.argv[1:]
    )
    paths = write_results(results, args.out, stem)
    print(results["table_markdown"])  # noqa: T201 - a command-line entry point
    print("Wrote", *paths.values())  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
