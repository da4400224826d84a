"""FSPO training: Pref-FT (SFT on the preferred response), then IPO or DPO, with TRL and PEFT.

Public API:

    train(config: FSPOTrainConfig, records: Sequence[PreferenceRecord] | None = None, *,
          callbacks=None) -> TrainResult(adapter_dir, stage1_dir, metrics, prompt_format, ...)

`records=None` loads `config.train_file` (with `config.dataset_layout`). What is written to
`config.output_dir`:

- the published artifact, ONE LoRA adapter over the ORIGINAL base model
  (`adapter_config.json`, `adapter_model.safetensors`; a full model with `full_finetune`),
  `fspo_format.json` (the `PromptFormat`), `fspo_train_config.yaml` (the resolved config),
  the tokenizer files, and `training_summary.json` (metrics and what data was skipped);
- `stage1/`: the Pref-FT adapter (the reference model of stage 2, for evaluation);
- `splits/`: held-out users/questions as JSONL when `holdout_*` is set;
- `checkpoints/stage1`, `checkpoints/stage2`: Trainer checkpoints, `checkpoints/data`: the
  tokenized episodes (Arrow), and `checkpoints/fspo_stage.json`, the stage marker. A killed
  run started again with the same config and data resumes (`resume=True`, the default): done
  stages are skipped, the running one continues from its last checkpoint. Publish the folder
  without `checkpoints/`.

Episodes are rendered only through `PromptFormat.render`/`completion` and tokenized as serving
tokenizes (`fspo_train.tokenization`). Stage-2 IPO is the paper's Eq. 6 on summed
log-probabilities (`fspo_train.losses.ipo_loss`), not TRL's length-normalised `ipo`.

Stage 1 is TRL's `SFTTrainer` on prompt/completion rows with the loss on the completion only;
the paper's chosen-only variant by default (`sft_targets="chosen_and_rejected"` is the official
code's variant, paper §6.6). TRL averages the SFT loss over the batch's completion tokens where
the official code sums per sequence and averages over the batch: the two differ by a per-batch
constant, which RMSprop (the paper's optimizer, our default) largely normalises away.

Stage 2 is `FSPOPreferenceTrainer` (TRL's `DPOTrainer`), started from the stage-1 adapter, whose
frozen copy (TRL's "ref" adapter) is the reference model; by default (`prefix_sharing=True`)
each pair's prompt runs once for both answers (`fspo_train.prefix_sharing`). The preference
trainer class is chosen in one place, `preference_trainer_class(config)`.

Example:
    ```python
    from fspo_train.config import FSPOTrainConfig
    from fspo_train.train import train

    result = train(
        FSPOTrainConfig(
            model_name_or_path="meta-llama/Llama-3.2-3B-Instruct",
            train_file="prefs.jsonl",
            output_dir="out/fspo",
        )
    )
    print(result.adapter_dir, result.metrics["stage2/train_loss"])
    ```
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fspo_train.config import FSPOTrainConfig
from fspo_train.episodes import build_episodes, split_records
from fspo_train.loaders import LoadResult, Problem, load_dataset_file, write_records
from fspo_train.records import PreferenceRecord
from fspo_train.training_data import (
    TrainingData,
    TrainingRows,
    build_training_datasets,
    build_training_rows,
)
from langchain_fspo.errors import FSPOError, PromptFormatError
from langchain_fspo.prompt_format import FORMAT_FILENAME, PromptFormat

__all__ = [
    "STAGE1_DIRNAME",
    "STAGE_MARKER",
    "SUMMARY_FILENAME",
    "TrainResult",
    "TrainingData",
    "TrainingRows",
    "build_preference_trainer",
    "build_prompt_format",
    "build_training_datasets",
    "build_training_rows",
    "chat_template_is_dated",
    "load_tokenizer",
    "preference_trainer_class",
    "train",
]

logger = logging.getLogger(__name__)

STAGE1_DIRNAME = "stage1"
STAGE_MARKER = "fspo_stage.json"
SUMMARY_FILENAME = "training_summary.json"
CHECKPOINTS_DIRNAME = "checkpoints"

# Settings that do not change what is trained: a run may be resumed with different values.
_RUNTIME_ONLY = {
    "output_dir",
    "resume",
    "logging_steps",
    "save_steps",
    "save_total_limit",
    "report_to",
    "dataloader_num_workers",
    "strict_data",
    "use_cpu",
    "prefix_sharing",  # exact: the same training with or without it
}


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced."""

    adapter_dir: Path
    """The published artifact: adapter (or full model) + `fspo_format.json` + config."""
    stage1_dir: Path | None
    """The Pref-FT adapter (the stage-2 reference), or None when stage 1 did not run."""
    metrics: dict[str, float]
    """`stage1/...`, `stage2/...` training metrics and data counts."""
    prompt_format: PromptFormat
    """The contract saved as `fspo_format.json`."""
    data_summary: dict[str, Any] = field(default_factory=dict)
    """What was loaded, built and skipped (also in `training_summary.json`)."""


def load_tokenizer(config: FSPOTrainConfig) -> Any:
    """The base model's tokenizer (pad token = EOS when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        config.model_name_or_path, revision=config.base_model_revision
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


_DATE_FORMATS = ("%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%B %d, %Y", "%b %d, %Y")


def chat_template_is_dated(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template writes today's date into the prompt.

    Llama 3.x templates do (`strftime_now`): a prompt rendered at training time then differs
    from the same prompt rendered at serving time, by the date's tokens.
    """
    from datetime import UTC, datetime

    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return False
    if "strftime_now" in template:
        return True
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False
        )
    except Exception:  # noqa: BLE001 - a template that cannot render is reported elsewhere
        return False
    now = datetime.now(tz=UTC)
    return any(now.strftime(f) in str(text) for f in _DATE_FORMATS)


def build_prompt_format(config: FSPOTrainConfig, tokenizer: Any) -> PromptFormat:
    """The `PromptFormat` a run trains with and saves (special tokens, template hash)."""
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(token, "special", False):
            special.add(str(token.content))
    template_sha = None
    if config.style == "chat":
        template = getattr(tokenizer, "chat_template", None)
        if not template:
            msg = (
                f"The tokenizer of {config.model_name_or_path!r} has no chat template, which "
                "`style: chat` needs. Use `style: paper` (raw markdown) or a tokenizer with one."
            )
            raise PromptFormatError(msg)
        if not isinstance(template, str):
            msg = "Tokenizers with several named chat templates are not supported; pick one."
            raise PromptFormatError(msg)
        template_sha = PromptFormat.template_sha256(template)
        if chat_template_is_dated(tokenizer):
            logger.warning(
                "The chat template of %s writes today's date into every prompt, so serving on "
                "another day renders a few different tokens than training did. Serve with the "
                "date fixed (e.g. `date_string` in the template kwargs) or use `style: paper`.",
                config.model_name_or_path,
            )
    return PromptFormat(
        style=config.style,
        num_shots=config.num_shots,
        include_rejected=config.include_rejected,
        rationale=config.rationale,
        system_prompt=config.system_prompt,
        base_model_id=config.model_name_or_path,
        base_model_revision=config.base_model_revision,
        chat_template_sha256=template_sha,
        max_prompt_tokens=config.max_prompt_tokens,
        special_tokens=tuple(sorted(t for t in special if len(t) > 1)),
    )


def preference_trainer_class(config: FSPOTrainConfig) -> type[Any]:
    """The stage-2 trainer class: the ONE place to plug in another `DPOTrainer` subclass.

    `FSPOPreferenceTrainer`, wrapped by `fspo_train.prefix_sharing.with_prefix_sharing` when
    `config.prefix_sharing` is on (the default; it falls back to the standard
    forward, with the reason logged, for models it cannot run exactly).

    It is constructed as `cls(model=..., args=DPOConfig, train_dataset=<pre-tokenized rows with
    prompt_ids/chosen_ids/rejected_ids>, processing_class=tokenizer, peft_config=...,
    callbacks=..., fspo_loss=config.loss)`.
    """
    from fspo_train._trainers import FSPOPreferenceTrainer

    if not config.prefix_sharing:
        return FSPOPreferenceTrainer
    from fspo_train.prefix_sharing import with_prefix_sharing

    shared: type[Any] = with_prefix_sharing(FSPOPreferenceTrainer)
    return shared


# ---------------------------------------------------------------------- helpers


def _fingerprint(config: FSPOTrainConfig, records: Sequence[PreferenceRecord]) -> str:
    digest = hashlib.sha256()
    settings = {k: v for k, v in config.to_dict().items() if k not in _RUNTIME_ONLY}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for record in records:
        digest.update(record.model_dump_json().encode())
    return digest.hexdigest()


def _is_main_process() -> bool:
    """True on the process that writes files (rank 0 under `accelerate launch`/`torchrun`)."""
    return int(os.environ.get("RANK", "0")) == 0


def _main_process_first() -> contextlib.AbstractContextManager[Any]:
    """Rank 0 first, then the others (which then reuse its cache), under multi-process runs."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return contextlib.nullcontext()
    from accelerate import PartialState

    context: contextlib.AbstractContextManager[Any] = PartialState().main_process_first()
    return context


def _read_marker(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    if not _is_main_process():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def _load_records(config: FSPOTrainConfig) -> LoadResult:
    if config.train_file is None:
        msg = "No training data: set `train_file` in the config, or pass `records=` to train()."
        raise ValueError(msg)
    return load_dataset_file(config.train_file, config.dataset_layout, strict=config.strict_data)


def _use_bf16(config: FSPOTrainConfig) -> bool:
    if config.bf16 is not None:
        return config.bf16
    if config.use_cpu:
        return False
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _common_args(config: FSPOTrainConfig, output_dir: Path) -> dict[str, Any]:
    bf16 = _use_bf16(config)
    return {
        "output_dir": str(output_dir),
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "warmup_steps": config.warmup_steps,
        "max_grad_norm": config.max_grad_norm,
        "optim": config.optim,
        "weight_decay": config.weight_decay,
        "seed": config.seed,
        "data_seed": config.seed,
        "use_cpu": config.use_cpu,
        "bf16": bf16,
        "fp16": False,
        "gradient_checkpointing": config.gradient_checkpointing,
        "logging_steps": config.logging_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "report_to": config.report_to,
        "dataloader_num_workers": config.dataloader_num_workers,
        "max_length": config.max_length,
        "model_init_kwargs": _model_kwargs(config, bf16=bf16),
    }


def _model_kwargs(config: FSPOTrainConfig, *, bf16: bool) -> dict[str, Any]:
    import torch

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if bf16 else torch.float32}
    if config.base_model_revision:
        kwargs["revision"] = config.base_model_revision
    return kwargs


def _lora_config(config: FSPOTrainConfig) -> Any:
    if config.full_finetune:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        task_type="CAUSAL_LM",
    )


def _warn_engine_limits(config: FSPOTrainConfig) -> None:
    """Warn, before training, when a serving engine would refuse or cut the adapter."""
    if config.full_finetune:
        return
    from langchain_fspo.engine_limits import describe_problems, engine_problems

    adapter = {"r": config.lora_r, "target_modules": list(config.lora_target_modules)}
    found = engine_problems(adapter)
    if found:
        logger.warning(
            "The adapter this run trains will not be served as trained by every engine:\n%s\n"
            "`fspo publish` refuses it unless --allow-engine-problems; the default "
            "lora_target_modules fit every engine.",
            describe_problems(found),
        )


def _last_checkpoint(directory: Path) -> str | None:
    if not directory.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    last: str | None = get_last_checkpoint(str(directory))
    return last


def _stage_metrics(prefix: str, trainer: Any, resumed_from: str | None) -> dict[str, float]:
    metrics: dict[str, float] = {f"{prefix}/global_step": float(trainer.state.global_step)}
    if resumed_from is not None:
        step = resumed_from.rsplit("-", 1)[-1]
        metrics[f"{prefix}/resumed_from_step"] = float(step) if step.isdigit() else -1.0
    for entry in trainer.state.log_history:
        for key, value in entry.items():
            if isinstance(value, int | float) and key not in ("epoch", "step"):
                metrics[f"{prefix}/{key}"] = float(value)
    return metrics


def _run_trainer(trainer: Any, checkpoints: Path, *, resume: bool) -> str | None:
    resume_from = _last_checkpoint(checkpoints) if resume else None
    if resume_from is not None:
        logger.info("Resuming from %s", resume_from)
    trainer.train(resume_from_checkpoint=resume_from)
    return resume_from


def _save_artifact(model: Any, directory: Path, fmt: PromptFormat, tokenizer: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(str(directory), selected_adapters=["default"])
    else:
        model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    fmt.save_pretrained(directory)


# ---------------------------------------------------------------------- stages


def _stage1(
    config: FSPOTrainConfig,
    data: TrainingData,
    tokenizer: Any,
    fmt: PromptFormat,
    out: Path,
    callbacks: list[Any],
) -> dict[str, float]:
    from trl import SFTConfig, SFTTrainer

    checkpoints = out / CHECKPOINTS_DIRNAME / "stage1"
    args = SFTConfig(
        **_common_args(config, checkpoints),
        learning_rate=config.sft_learning_rate,
        num_train_epochs=config.sft_epochs,
        completion_only_loss=True,
        packing=False,
    )
    trainer = SFTTrainer(
        model=config.model_name_or_path,
        args=args,
        train_dataset=data.sft,
        processing_class=tokenizer,
        peft_config=_lora_config(config),
        callbacks=callbacks,
    )
    resumed = _run_trainer(trainer, checkpoints, resume=config.resume)
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        _save_artifact(model, out / STAGE1_DIRNAME, fmt, tokenizer)
    trainer.accelerator.wait_for_everyone()
    return _stage_metrics("stage1", trainer, resumed)


def _stage2_model(config: FSPOTrainConfig, stage1: Path | None) -> tuple[Any, Any]:
    """(model, peft_config) for the preference stage, so that the reference is stage 1."""
    if stage1 is None:
        return config.model_name_or_path, _lora_config(config)
    if config.full_finetune:
        return str(stage1), None  # TRL loads the reference from the same folder
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        config.model_name_or_path, **_model_kwargs(config, bf16=_use_bf16(config))
    )
    return PeftModel.from_pretrained(base, str(stage1), is_trainable=True), None


def build_preference_trainer(
    config: FSPOTrainConfig,
    data: TrainingData | TrainingRows,
    tokenizer: Any,
    stage1_dir: Path | None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """The stage-2 trainer, set up as `train` does: policy and reference = the stage-1 model.

    With LoRA the policy is the stage-1 adapter (trainable) and TRL keeps a frozen copy as the
    "ref" adapter; with `full_finetune` both are loaded from `stage1_dir`; without stage 1
    (`stage1_dir=None`) a fresh LoRA is trained against the base model.
    """
    from datasets import Dataset
    from trl import DPOConfig

    checkpoints = Path(config.output_dir) / CHECKPOINTS_DIRNAME / "stage2"
    dataset = (
        Dataset.from_list(data.preference) if isinstance(data, TrainingRows) else data.preference
    )
    common = _common_args(config, checkpoints)
    model, peft_config = _stage2_model(config, stage1_dir)
    if not isinstance(model, str):
        common.pop("model_init_kwargs")
    args = DPOConfig(
        **common,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        beta=config.beta,
        loss_type=["ipo"] if config.loss == "ipo" else ["sigmoid"],
        precompute_ref_log_probs=config.precompute_ref_log_probs,
    )
    trainer_cls = preference_trainer_class(config)
    return trainer_cls(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks),
        fspo_loss=config.loss,
    )


def _stage2(
    config: FSPOTrainConfig,
    data: TrainingData,
    tokenizer: Any,
    fmt: PromptFormat,
    out: Path,
    stage1: Path | None,
    callbacks: list[Any],
) -> dict[str, float]:
    trainer = build_preference_trainer(config, data, tokenizer, stage1, callbacks)
    checkpoints = out / CHECKPOINTS_DIRNAME / "stage2"
    resumed = _run_trainer(trainer, checkpoints, resume=config.resume)
    if trainer.is_world_process_zero():
        _save_artifact(trainer.accelerator.unwrap_model(trainer.model), out, fmt, tokenizer)
    trainer.accelerator.wait_for_everyone()
    return _stage_metrics("stage2", trainer, resumed)


def _copy_stage1_artifact(stage1: Path, out: Path) -> None:
    for item in stage1.iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)


# ---------------------------------------------------------------------- entry point


def train(
    config: FSPOTrainConfig,
    records: Sequence[PreferenceRecord] | None = None,
    *,
    callbacks: Sequence[Any] | None = None,
) -> TrainResult:
    """Run FSPO training (Pref-FT, then IPO/DPO) and write the adapter to `config.output_dir`.

    Args:
        config: The run's settings.
        records: Training records; `None` loads `config.train_file`.
        callbacks: Extra `transformers.TrainerCallback`s, given to both stages' trainers.

    Returns:
        The artifact's folder, the stage-1 folder, the metrics and the prompt format.

    Raises:
        ValueError: no data, or no episode could be built (the message says why).
        FSPOError: the output folder holds a different run and `resume` is on.
    """
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _warn_engine_limits(config)
    summary: dict[str, Any] = {}
    problems: list[Problem] = []
    if records is None:
        loaded = _load_records(config)
        records = loaded.records
        problems = loaded.skipped
        summary["load"] = loaded.summary()
    records = list(records)
    summary["skipped_lines"] = [str(p) for p in problems]

    if config.holdout_users or config.holdout_question_fraction:
        split = split_records(
            records,
            test_users=config.holdout_users,
            test_question_fraction=config.holdout_question_fraction,
            seed=config.seed,
        )
        if _is_main_process():
            for name in ("train", "test_users", "test_questions"):
                write_records(out / "splits" / f"{name}.jsonl", getattr(split, name))
        summary["split"] = split.summary()
        logger.info("Split: %s", split.summary())
        records = split.train

    marker_path = out / CHECKPOINTS_DIRNAME / STAGE_MARKER
    fingerprint = _fingerprint(config, records)
    marker = _read_marker(marker_path)
    if marker and config.resume and marker.get("fingerprint") != fingerprint:
        msg = (
            f"{out} holds checkpoints of a run with other settings or data. Use another "
            "`output_dir`, or set `resume: false` to start over (its checkpoints are deleted)."
        )
        raise FSPOError(msg)
    if not config.resume and (out / CHECKPOINTS_DIRNAME).exists() and _is_main_process():
        logger.warning("resume is off: deleting the previous checkpoints in %s", out)
        shutil.rmtree(out / CHECKPOINTS_DIRNAME)
        marker = {}
    completed: list[str] = list(marker.get("completed", []))

    tokenizer = load_tokenizer(config)
    fmt = build_prompt_format(config, tokenizer)

    episodes = build_episodes(
        records,
        num_shots=config.num_shots,
        min_shots=config.min_shots,
        passes=config.episode_passes,
        seed=config.seed,
    )
    summary["episodes"] = episodes.summary()
    summary["skipped_users"] = [str(s) for s in episodes.skipped]
    data_key = hashlib.sha256(
        f"{fingerprint}|{fmt.to_json()}|{len(tokenizer)}|{config.sft_targets}".encode()
    ).hexdigest()[:32]
    with _main_process_first():
        data = build_training_datasets(
            episodes,
            fmt,
            tokenizer,
            max_length=config.max_length,
            sft_targets=config.sft_targets,
            cache_dir=out / CHECKPOINTS_DIRNAME / "data",
            fingerprint=data_key,
        )
    summary["skipped_episodes"] = data.skipped
    summary["shots_dropped_for_budget"] = data.shots_dropped_for_budget
    if len(data.preference) == 0:
        msg = (
            "No training episode could be built. "
            + episodes.summary()
            + (f" Tokenization skipped {len(data.skipped)} episodes." if data.skipped else "")
        )
        raise ValueError(msg)
    logger.info(
        "Training on %d episodes (%s)", len(data.preference), episodes.summary().rstrip(".")
    )

    metrics: dict[str, float] = {
        "data/records": float(len(records)),
        "data/skipped_lines": float(len(problems)),
        "data/episodes": float(len(data.preference)),
        "data/skipped_users": float(len(episodes.skipped)),
        "data/skipped_episodes": float(len(data.skipped)),
    }
    callback_list = list(callbacks or [])
    stage1_dir: Path | None = out / STAGE1_DIRNAME if config.run_sft else None
    if config.run_sft:
        if "sft" in completed and (out / STAGE1_DIRNAME / FORMAT_FILENAME).is_file():
            logger.info("Stage 1 (Pref-FT) already done in %s; skipping it.", stage1_dir)
        else:
            metrics.update(_stage1(config, data, tokenizer, fmt, out, callback_list))
            completed.append("sft")
            _write_json(marker_path, {"fingerprint": fingerprint, "completed": completed})
    if config.run_preference:
        if "preference" in completed and (out / FORMAT_FILENAME).is_file():
            logger.info("Stage 2 (%s) already done in %s; skipping it.", config.loss, out)
        else:
            metrics.update(_stage2(config, data, tokenizer, fmt, out, stage1_dir, callback_list))
            completed.append("preference")
            _write_json(marker_path, {"fingerprint": fingerprint, "completed": completed})
    elif stage1_dir is not None and _is_main_process():
        _copy_stage1_artifact(stage1_dir, out)

    if _is_main_process():
        config.save(out)
        fmt.save_pretrained(out)
    summary["metrics"] = metrics
    _write_json(out / SUMMARY_FILENAME, summary)
    logger.info("FSPO adapter written to %s", out)
    return TrainResult(
        adapter_dir=out,
        stage1_dir=stage1_dir,
        metrics=metrics,
        prompt_format=fmt,
        data_summary=summary,
    )
