"""The `fspo` command line: one subcommand per module.

Each module in `SUBCOMMAND_MODULES` exposes `register(subparsers)`, which adds its parser and
sets `func=<callable(argparse.Namespace) -> int>` as a default. A listed module that is not
installed (e.g. a part not merged yet) is left out of the menu; any other import error is
raised.

    fspo train --config run.yaml --num-shots 4
    python -m fspo_train train --help
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["SUBCOMMAND_MODULES", "build_parser", "main"]

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "fspo_train.cli.train",  # fspo train
    "fspo_train.cli.eval",  # fspo eval (evaluation)
    "fspo_train.cli.publish",  # fspo publish
    "fspo_train.cli.synth",  # fspo synth (synthetic data)
)
"""Modules that add subcommands, in menu order."""


def _load(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    """The `fspo` parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="fspo", description="FSPO: few-shot preference optimization tools."
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Logging level (default: INFO).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        module = _load(name)
        if module is not None:
            module.register(subparsers)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `fspo` with `argv` (default: `sys.argv[1:]`) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
