"""Publish a trained FSPO adapter folder to the Hugging Face Hub.

The folder must hold what serving needs: the LoRA adapter (`adapter_config.json`,
`adapter_model.safetensors`) and the prompt contract (`fspo_format.json`). Publishing writes
the model card (`README.md`), creates the repo (and the branch, for a `revision`), and uploads
the folder in one commit, leaving out trainer checkpoints and optimizer state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

from fspo_train.publish.model_card import write_model_card
from langchain_fspo.artifact import (
    ADAPTER_CONFIG_FILENAME,
    ADAPTER_WEIGHTS_FILENAME,
    FORMAT_FILENAME,
    base_model_path,
    missing_files,
)
from langchain_fspo.engine_limits import EngineProblem, adapter_problems, describe_problems
from langchain_fspo.errors import AdapterNotFoundError, IncompatibleAdapterError, PromptFormatError
from langchain_fspo.prompt_format import PromptFormat

__all__ = [
    "IGNORE_PATTERNS",
    "REQUIRED_FILES",
    "PublishResult",
    "check_adapter_folder",
    "check_engine_limits",
    "publish_adapter",
]

logger = logging.getLogger(__name__)

REQUIRED_FILES: dict[str, str] = {
    ADAPTER_CONFIG_FILENAME: (
        "the LoRA config; written by `fspo train` or `PeftModel.save_pretrained(folder)`"
    ),
    ADAPTER_WEIGHTS_FILENAME: (
        "the LoRA weights in safetensors (TGI and vLLM need safetensors); written by "
        "`fspo train` or `PeftModel.save_pretrained(folder)`"
    ),
    FORMAT_FILENAME: (
        "the prompt contract; written by `fspo train`, or by "
        "`PromptFormat(...).save_pretrained(folder)` with the format the adapter was trained with"
    ),
}
"""Files a publishable folder must hold (`langchain_fspo.artifact.ADAPTER_FILES`) -> what
they are and how to produce them."""

IGNORE_PATTERNS: tuple[str, ...] = (
    "checkpoints/**",
    "splits/**",
    "*.jsonl",
    "**/*.jsonl",
    "checkpoint-*",
    "**/checkpoint-*/**",
    "checkpoint-*/**",
    "**/optimizer.pt",
    "**/scheduler.pt",
    "**/rng_state*.pth",
    "**/training_args.bin",
    "runs/**",
    "**/.ipynb_checkpoints/**",
)
"""Never uploaded: trainer state (checkpoints, optimizer, TensorBoard runs) and data files
(`splits/`, any `*.jsonl`: users' preferences and eval generations stay private)."""


@dataclass(frozen=True)
class PublishResult:
    """Where an adapter was published."""

    repo_id: str
    repo_url: str
    revision: str
    commit_oid: str
    commit_url: str
    private: bool


def check_adapter_folder(folder: str | Path) -> PromptFormat:
    """Raise `AdapterNotFoundError` unless `folder` can be published; return its format.

    The message lists every missing file and how to produce it.

    Example:
        >>> import tempfile
        >>> check_adapter_folder(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        langchain_fspo.errors.AdapterNotFoundError: ... is missing adapter_config.json, ...
    """
    folder = Path(folder)
    if not folder.is_dir():
        msg = f"{folder} is not a folder; give the output folder of `fspo train`."
        raise AdapterNotFoundError(msg)
    missing = missing_files(folder)
    if missing:
        lines = [f"  - {name}: {REQUIRED_FILES[name]}" for name in missing]
        hint = ""
        if ADAPTER_WEIGHTS_FILENAME in missing and (folder / "adapter_model.bin").is_file():
            hint = (
                "\nThe folder has adapter_model.bin (pickle): load it with "
                "`PeftModel.from_pretrained` and `save_pretrained(folder)` again to write "
                "safetensors."
            )
        msg = (
            f"{folder} is missing {', '.join(missing)}; refusing to publish an adapter that "
            "cannot be served:\n" + "\n".join(lines) + hint
        )
        raise AdapterNotFoundError(msg)
    try:
        fmt = PromptFormat.from_pretrained(folder)
    except PromptFormatError as e:
        msg = f"{folder / FORMAT_FILENAME} is not a valid prompt format; fix or rewrite it: {e}"
        raise AdapterNotFoundError(msg) from e
    if fmt.base_model_id is not None and base_model_path(fmt.base_model_id) is not None:
        logger.warning(
            "The base model of %s is the local folder %s, which only this machine has: the "
            "card names no Hub base model. To share the adapter, edit `base_model_name_or_path` "
            "in %s and `base_model_id` in %s to the base model's Hub id.",
            folder,
            fmt.base_model_id,
            ADAPTER_CONFIG_FILENAME,
            FORMAT_FILENAME,
        )
    return fmt


def check_engine_limits(folder: str | Path, *, allow: bool = False) -> list[EngineProblem]:
    """The engines that would refuse the adapter in `folder` or drop part of it, and why.

    Raises:
        IncompatibleAdapterError: There are such problems and `allow` is off; the message
            names each engine and reason.
    """
    problems = adapter_problems(folder)
    if problems and not allow:
        msg = (
            f"{folder}: not every serving engine would serve this adapter as trained:\n"
            f"{describe_problems(problems)}\nRetrain with the default lora_target_modules "
            "and no modules_to_save, or publish anyway with --allow-engine-problems."
        )
        raise IncompatibleAdapterError(msg)
    if problems:
        logger.warning(
            "Publishing %s with serving limits:\n%s", folder, describe_problems(problems)
        )
    return problems


def publish_adapter(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
    write_card: bool = True,
    license: str | None = None,  # noqa: A002 - the model card field's name
    datasets: list[str] | None = None,
    allow_engine_problems: bool = False,
) -> PublishResult:
    """Check `folder`, write its model card, and upload it to the Hub repo `repo_id`.

    Args:
        folder: A trained adapter folder (`adapter_config.json`, `adapter_model.safetensors`,
            `fspo_format.json`; `eval_results.json` is put in the card when present).
        repo_id: `org/name` on the Hub; created if missing (`private` applies only then).
        private: Create the repo private.
        revision: A branch to publish to; created from `main` when missing.
        token: A Hub token; defaults to the logged-in one (`HF_TOKEN`, `hf auth login`).
        commit_message: Defaults to "Upload FSPO adapter".
        endpoint: The Hub URL; defaults to `HF_ENDPOINT` / huggingface.co.
        write_card: Write `README.md` into `folder` before uploading.
        license: The card's `license` (e.g. the base model's, `llama3.2`).
        datasets: The card's `datasets` (Hub ids of the training data).
        allow_engine_problems: Publish an adapter that a serving engine would refuse or serve
            only in part (`langchain_fspo.engine_limits`; the card lists the problems).

    Raises:
        AdapterNotFoundError: The folder is incomplete (before any request is made).
        IncompatibleAdapterError: An engine would refuse the adapter or drop part of it, and
            `allow_engine_problems` is off (before any request is made).

    Example:
        ```python
        from fspo_train.publish.hub import publish_adapter

        publish_adapter("out/fspo-run", "my-org/fspo-roleplay", private=True)
        ```
    """
    folder = Path(folder)
    check_adapter_folder(folder)
    check_engine_limits(folder, allow=allow_engine_problems)
    if write_card:
        write_model_card(folder, repo_id, license=license, datasets=datasets)
    api = HfApi(endpoint=endpoint, token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    branch = revision or "main"
    if revision is not None and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        revision=revision,
        commit_message=commit_message or "Upload FSPO adapter",
        ignore_patterns=list(IGNORE_PATTERNS),
    )
    logger.info("Published %s to %s@%s (%s)", folder, repo_id, branch, commit.oid)
    return PublishResult(
        repo_id=repo_id,
        repo_url=str(repo_url),
        revision=branch,
        commit_oid=commit.oid,
        commit_url=commit.commit_url,
        private=private,
    )
