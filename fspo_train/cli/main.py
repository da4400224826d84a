"""The `fspo` command line: one subcommand per module.

Each module in `COMMANDS` exposes `register(subparsers)`, which adds its parser and sets
`func=<callable(argparse.Namespace) -> int>` as a default. A command whose packages are not
installed (the base install has no `[train]` extra) still shows in `fspo --help`, and running
it names the extra to install. Failures end in a line naming the problem and the fix
(`fspo_train.cli.errors`); `--debug` shows the traceback instead.

    fspo train --config run.yaml --num-shots 4
    python -m fspo_train train --help
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fspo_train.cli.errors import describe, missing_extra

__all__ = ["COMMANDS", "SUBCOMMAND_MODULES", "Command", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, module, one-line help and the extra its packages come with."""

    name: str
    module: str
    help: str
    extra: str


COMMANDS: tuple[Command, ...] = (
    Command("train", "fspo_train.cli.train", "Train an FSPO adapter.", "train"),
    Command("eval", "fspo_train.cli.eval", "Evaluate an adapter against baselines.", "train"),
    Command("publish", "fspo_train.cli.publish", "Upload an adapter to the Hub.", "train"),
    Command("synth", "fspo_train.cli.synth", "Generate synthetic preference data.", "train"),
    Command("tiny", "fspo_train.cli.tiny", "Build a tiny random model and adapter.", "local"),
)
"""The subcommands, in menu order."""

SUBCOMMAND_MODULES: tuple[str, ...] = tuple(c.module for c in COMMANDS)
"""Modules that add subcommands, in menu order."""


def _our_module(name: str | None) -> bool:
    return name is not None and name.split(".")[0] in {"fspo_train", "langchain_fspo"}


def _register_missing(subparsers: Any, command: Command, error: ModuleNotFoundError) -> None:
    """A stand-in for a command whose packages are missing: it names the extra."""
    parser = subparsers.add_parser(
        command.name,
        help=f"{command.help} (needs `[{command.extra}]`)",
        add_help=False,
        allow_abbrev=False,
    )
    parser.add_argument("args", nargs=argparse.REMAINDER)
    message = missing_extra(command.name, command.extra, error)

    def run(_: argparse.Namespace) -> int:
        sys.stderr.write(message + "\n")
        return 2

    parser.set_defaults(func=run, missing=True)


def build_parser() -> argparse.ArgumentParser:
    """The `fspo` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="fspo",
        description="FSPO: few-shot preference optimization tools.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Logging level (default: INFO).",
    )
    parser.add_argument(
        "--debug", action="store_true", help="Show the traceback when a command fails."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        try:
            importlib.import_module(command.module).register(subparsers)
        except ModuleNotFoundError as e:
            if _our_module(e.name) or command.name in subparsers.choices:
                raise
            _register_missing(subparsers, command, e)
    for sub in subparsers.choices.values():
        sub.allow_abbrev = False
        if not any("--debug" in a.option_strings for a in sub._actions):  # noqa: SLF001
            sub.add_argument(
                "--debug",
                action="store_true",
                default=argparse.SUPPRESS,
                help="Show the traceback when the command fails.",
            )
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its subparsers here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            found: argparse.ArgumentParser | None = action.choices.get(name)
            return found
    return None


def _close_flag(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    flags = [o for a in parser._actions for o in a.option_strings]  # noqa: SLF001
    for arg in unknown:
        if arg.startswith("--"):
            close = difflib.get_close_matches(arg.split("=", 1)[0], flags, n=1)
            if close:
                return f" (did you mean {close[0]}?)"
    return ""


def _launched_rank() -> int:
    """This process's rank under `accelerate launch`/`torchrun` (`RANK`), 0 otherwise."""
    rank = os.environ.get("RANK", "0")
    return int(rank) if rank.isdigit() else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run `fspo` with `argv` (default: `sys.argv[1:]`) and return the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(list(argv) if argv is not None else None)
    sub = _subparser(parser, args.command) if args.command else None
    if unknown and not getattr(args, "missing", False):
        # The subcommand's usage, not the top level's, for a flag it does not know.
        target = sub or parser
        target.error(f"unrecognized arguments: {' '.join(unknown)}{_close_flag(target, unknown)}")
    level = getattr(logging, args.log_level)
    if _launched_rank() > 0:
        level = max(level, logging.WARNING)  # one copy of the INFO log, rank 0's
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    command = next(c for c in COMMANDS if c.name == args.command)
    try:
        return int(func(args))
    except KeyboardInterrupt:
        sys.stderr.write(f"fspo {command.name}: interrupted.\n")
        return 130
    except Exception as e:
        if args.debug:
            raise
        sys.stderr.write(describe(f"fspo {command.name}", command.extra, e) + "\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
