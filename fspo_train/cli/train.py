"""`fspo train`: run FSPO training from a YAML config, with CLI flags overriding it.

    fspo train --config examples/run.yaml --num-shots 4 --use-cpu
    fspo train --model-name-or-path ./tiny --train-file prefs.jsonl --output-dir out --max-steps 2

Every `FSPOTrainConfig` field is a flag (`--num-shots` or `--num_shots`; booleans also as
`--no-...`; `none` sets an optional value to null). Unknown YAML keys are an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from fspo_train.trainer.config import FSPOTrainConfig, load_config
from langchain_fspo.errors import FSPOError

__all__ = ["add_config_arguments", "register", "run"]


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        return None if text.lower() in ("none", "null") else parse(text)

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per `FSPOTrainConfig` field (default: not given, so YAML wins)."""
    hints = typing.get_type_hints(FSPOTrainConfig)
    group = parser.add_argument_group("settings (override the YAML config)")
    for field in dataclasses.fields(FSPOTrainConfig):
        hint = hints[field.name]
        args = typing.get_args(hint)
        nullable = type(None) in args
        if typing.get_origin(hint) in (types.UnionType, typing.Union):
            hint = next(a for a in args if a is not type(None))
        flags = [f"--{field.name.replace('_', '-')}"]
        if "_" in field.name:
            flags.append(f"--{field.name}")
        kwargs: dict[str, Any] = {
            "dest": field.name,
            "default": argparse.SUPPRESS,
            "help": field.metadata.get("help", ""),
        }
        origin = typing.get_origin(hint)
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = list(typing.get_args(hint))
        elif origin is list:
            kwargs["nargs"] = "+"
        else:
            parse: Callable[[str], Any] = hint if hint in (int, float) else str
            kwargs["type"] = _optional(parse) if nullable else parse
            kwargs["metavar"] = getattr(hint, "__name__", "VALUE").upper()
        group.add_argument(*flags, **kwargs)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `train` subcommand to the `fspo` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="Train an FSPO adapter (Pref-FT, then IPO/DPO).",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file of settings (see examples/run.yaml).")
    parser.add_argument(
        "--print-config", action="store_true", help="Print the resolved config and exit."
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Resolve the config, train, and print where the adapter went."""
    from fspo_train.trainer.run import train

    overrides = {
        name: getattr(args, name) for name in FSPOTrainConfig.field_names() if hasattr(args, name)
    }
    try:
        config = load_config(args.config, overrides)
    except (ValueError, OSError) as e:
        sys.stderr.write(f"fspo train: error: {e}\n")
        return 2
    if args.print_config:
        sys.stdout.write(config.to_yaml())
        return 0
    try:
        result = train(config)
    except (FSPOError, ValueError, OSError) as e:
        sys.stderr.write(f"fspo train: error: {e}\n")
        return 1
    summary = result.data_summary
    lines = [
        f"FSPO adapter: {result.adapter_dir}",
        f"Stage-1 (Pref-FT) adapter: {result.stage1_dir}",
        str(summary.get("load", "")),
        str(summary.get("episodes", "")),
    ]
    keys = ("stage1/train_loss", "stage2/train_loss", "stage2/rewards/accuracies")
    lines.extend(f"{k}: {result.metrics[k]:.4g}" for k in keys if k in result.metrics)
    sys.stdout.write("\n".join(line for line in lines if line) + "\n")
    return 0
