"""`fspo publish`: push a trained adapter folder, its prompt contract and model card to the Hub.

Example:
    fspo publish out/fspo-run --repo-id my-org/fspo-roleplay --private
    fspo publish out/fspo-run --repo-id my-org/fspo-roleplay --revision v2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `publish` subcommand to an `argparse` subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "publish",
        help="Upload an adapter folder (+ fspo_format.json + model card) to the Hugging Face Hub.",
        description=(
            "Check that FOLDER holds adapter_config.json, adapter_model.safetensors and "
            "fspo_format.json, write its model card (README.md, with eval_results.json when "
            "present), create the Hub repo and upload the folder."
        ),
    )
    parser.add_argument("folder", type=Path, help="the training output folder")
    parser.add_argument("--repo-id", required=True, help="Hub repo id, org/name")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", default=None, help="branch to publish to (created)")
    parser.add_argument("--token", default=None, help="Hub token (default: logged-in token)")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--license", default=None, help="model card license, e.g. llama3.2")
    parser.add_argument(
        "--dataset", action="append", default=None, help="Hub id of a training dataset (repeat)"
    )
    parser.add_argument(
        "--allow-engine-problems",
        action="store_true",
        help="publish an adapter that vLLM would refuse or TGI serve in part (see the card)",
    )
    parser.add_argument(
        "--card-only",
        action="store_true",
        help="check the folder and write README.md, but upload nothing",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run `fspo publish` with parsed arguments; returns the exit code."""
    from huggingface_hub.errors import HfHubHTTPError

    from fspo_train.publish.hub import check_adapter_folder, check_engine_limits, publish_adapter
    from fspo_train.publish.model_card import write_model_card
    from langchain_fspo.errors import AdapterNotFoundError, IncompatibleAdapterError

    try:
        if args.card_only:
            check_adapter_folder(args.folder)
            check_engine_limits(args.folder, allow=True)  # a card states the limits; no upload
            path = write_model_card(
                args.folder, args.repo_id, license=args.license, datasets=args.dataset
            )
            sys.stdout.write(f"Wrote {path}; nothing uploaded (--card-only).\n")
            return 0
        result = publish_adapter(
            args.folder,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            token=args.token,
            commit_message=args.commit_message,
            license=args.license,
            datasets=args.dataset,
            allow_engine_problems=args.allow_engine_problems,
        )
    except (AdapterNotFoundError, IncompatibleAdapterError) as e:
        sys.stderr.write(f"fspo publish: {e}\n")
        return 2
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        hint = ""
        if status in {401, 403}:
            hint = " Log in (`hf auth login`), set HF_TOKEN, or pass --token with write access."
        sys.stderr.write(f"fspo publish: the Hub refused the upload ({status}): {e}.{hint}\n")
        return 1
    visibility = "private" if result.private else "public"
    sys.stdout.write(
        f"Published {args.folder} to {result.repo_url} ({visibility}), "
        f"revision {result.revision}\nCommit: {result.commit_url}\n"
    )
    return 0
