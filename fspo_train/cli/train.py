"""`fspo train`: run FSPO training from a YAML config, with CLI flags overriding it.

    fspo train --config examples/run.yaml --num-shots 4 --use-cpu
    fspo train --model-name-or-path ./tiny --train-file prefs.jsonl --output-dir out --max-steps 2
    fspo train --example-config > run.yaml     # the example config, to edit
    accelerate launch --config_file examples/accelerate/ddp.yaml -m fspo_train train --config r.yaml

Every `FSPOTrainConfig` field is a flag, made by TRL's `TrlParser` (`--num-shots` or
`--num_shots`; booleans as `--flag`, `--flag false`, and `--no-flag` for those on by default;
`none` sets an optional number to null). Unknown YAML keys are an error.

Under `accelerate launch` (several processes) rank 0 writes the files and prints the summary;
the other ranks log warnings and errors only (docs/training.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fspo_train.cli.errors import remove_if_left_empty
from fspo_train.trainer.config import (
    FSPOTrainConfig,
    config_parser,
    example_config,
    load_config,
)
from langchain_fspo.errors import FSPOError

__all__ = ["register", "run"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `train` subcommand to the `fspo` parser."""
    settings = config_parser(add_help=False)
    # Only the flags given reach `run`, which lays them over the YAML (`load_config`).
    unset = dict.fromkeys(FSPOTrainConfig.field_names(), argparse.SUPPRESS)
    settings.set_defaults_with_config(**unset)
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        parents=[settings],
        help="Train an FSPO adapter (Pref-FT, then IPO/DPO).",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file of settings (see examples/run.yaml).")
    parser.add_argument(
        "--print-config", action="store_true", help="Print the resolved config and exit."
    )
    parser.add_argument(
        "--example-config",
        action="store_true",
        help="Print the example config (examples/run.yaml) and exit: "
        "`fspo train --example-config > run.yaml`.",
    )
    parser.set_defaults(func=run)
    return parser


def _is_main_process() -> bool:
    from accelerate.state import PartialState

    return bool(PartialState().is_main_process)


def run(args: argparse.Namespace) -> int:
    """Resolve the config, train, and print where the adapter went."""
    from fspo_train.trainer.run import train

    if args.example_config:
        sys.stdout.write(example_config())
        return 0
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
    output_dir = Path(config.output_dir)
    existed = output_dir.exists()
    try:
        result = train(config)
    except (FSPOError, ValueError, OSError) as e:
        remove_if_left_empty(output_dir, existed=existed)
        sys.stderr.write(f"fspo train: error: {e}\n")
        return 1
    except BaseException:
        remove_if_left_empty(output_dir, existed=existed)
        raise
    if not _is_main_process():
        return 0  # under `accelerate launch`, rank 0 reports for all
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
