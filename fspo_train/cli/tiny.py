"""`fspo tiny`: a tiny random base model and FSPO adapter, built offline in seconds.

    fspo tiny runs/tiny     # runs/tiny/base (the model) and runs/tiny/adapter (the adapter)

For trying the library on a laptop with no network and no GPU: `ChatFSPO.from_pretrained(
"runs/tiny/adapter")` serves it in-process, and `fspo train --model-name-or-path runs/tiny/base`
trains on it. The weights are random, so the answers are gibberish; every step around the model
is the real code. Needs the `[local]` extra (torch, transformers, peft).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

BASE_DIRNAME = "base"
ADAPTER_DIRNAME = "adapter"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `tiny` subcommand to the `fspo` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "tiny",
        help="Build a tiny random model and FSPO adapter, offline (to try things out).",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", type=Path, help="folder to write base/ and adapter/ into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument(
        "--style",
        choices=["chat", "paper"],
        default="chat",
        help="the adapter's prompt style (default: chat)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the model and adapter; print where they are."""
    from fspo_train.testing.tiny import build_tiny_adapter, build_tiny_base_model
    from langchain_fspo._quiet import quiet_loading
    from langchain_fspo.artifact import FORMAT_FILENAME
    from langchain_fspo.prompt_format import PromptFormat

    out: Path = args.out
    base, adapter = out / BASE_DIRNAME, out / ADAPTER_DIRNAME
    if (adapter / FORMAT_FILENAME).is_file():
        sys.stderr.write(f"fspo tiny: {adapter} already holds an adapter; choose another folder.\n")
        return 2
    with quiet_loading(), warnings.catch_warnings():
        # PEFT calls a transformers method that transformers 5 deprecated: not the user's to fix.
        warnings.simplefilter("ignore", FutureWarning)
        build_tiny_base_model(base, seed=args.seed)
        fmt = None
        if args.style == "paper":
            fmt = PromptFormat(style="paper", num_shots=4, base_model_id=str(base.resolve()))
        build_tiny_adapter(base, adapter, prompt_format=fmt, seed=args.seed)
    sys.stdout.write(
        f"Tiny base model: {base}\nTiny FSPO adapter: {adapter}\n"
        f'Try it: ChatFSPO.from_pretrained("{adapter}") (random weights: gibberish answers).\n'
    )
    return 0
