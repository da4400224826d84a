"""The two TRL stages of a run: Pref-FT (`SFTTrainer`), then IPO/DPO (`FSPOPreferenceTrainer`).

Stage 1 is TRL's `SFTTrainer` on prompt/completion rows with the loss on the completion only;
the paper's chosen-only variant by default (`sft_targets="chosen_and_rejected"` is the official
code's variant, paper §6.6). TRL averages the SFT loss over the batch's completion tokens where
the official code sums per sequence and averages over the batch: the two differ by a per-batch
constant, which RMSprop (the paper's optimizer, our default) largely normalises away.

Stage 2 is `FSPOPreferenceTrainer` (TRL's `DPOTrainer`), started from the stage-1 adapter, whose
frozen copy (TRL's "ref" adapter) is the reference model; by default (`prefix_sharing=True`)
each pair's prompt runs once for both answers (`fspo_train.trainer.prefix_sharing`). The
preference trainer class is chosen in one place, `preference_trainer_class(config)`.

Both stages share the runtime settings of the config (`_common_args`) and resume from their
last checkpoint under `checkpoints/stage<N>`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fspo_train.data.training_data import TrainingData, TrainingRows
from fspo_train.trainer.config import FSPOTrainConfig
from langchain_fspo._quiet import quiet_loading
from langchain_fspo.prompt_format import PromptFormat

__all__ = [
    "CHECKPOINTS_DIRNAME",
    "STAGE1_DIRNAME",
    "StageOutcome",
    "build_preference_trainer",
    "copy_stage1_artifact",
    "preference_trainer_class",
    "run_stage1",
    "run_stage2",
]

logger = logging.getLogger(__name__)

STAGE1_DIRNAME = "stage1"
CHECKPOINTS_DIRNAME = "checkpoints"


@dataclass(frozen=True)
class StageOutcome:
    """What a stage returns: its final metrics and the Trainer's log, one entry per log step."""

    metrics: dict[str, float]
    """`stage<N>/...`: global step, last logged values, `weights_checksum` (equal on all ranks)."""
    log_history: list[dict[str, Any]] = field(default_factory=list)
    """`trainer.state.log_history` (kept across a resume): the loss curve."""


def preference_trainer_class(config: FSPOTrainConfig) -> type[Any]:
    """The stage-2 trainer class: the ONE place to plug in another `DPOTrainer` subclass.

    `FSPOPreferenceTrainer`, wrapped by `fspo_train.trainer.prefix_sharing.with_prefix_sharing` when
    `config.prefix_sharing` is on (the default; it falls back to the standard
    forward, with the reason logged, for models it cannot run exactly).

    It is constructed as `cls(model=..., args=DPOConfig, train_dataset=<pre-tokenized rows with
    prompt_ids/chosen_ids/rejected_ids>, processing_class=tokenizer, peft_config=...,
    callbacks=..., fspo_loss=config.loss)`.
    """
    from fspo_train.trainer.preference_trainer import FSPOPreferenceTrainer

    if not config.prefix_sharing:
        return FSPOPreferenceTrainer
    from fspo_train.trainer.prefix_sharing import with_prefix_sharing

    shared: type[Any] = with_prefix_sharing(FSPOPreferenceTrainer)
    return shared


def _use_bf16(config: FSPOTrainConfig) -> bool:
    if config.bf16 is not None:
        return config.bf16
    if config.use_cpu:
        return False
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _checkpointing_arg() -> str:
    """`activation_checkpointing`, transformers' name since it deprecated `gradient_checkpointing`.

    Setting the new name also keeps TRL's default of the old one (True) from warning.
    """
    from transformers import TrainingArguments

    fields = getattr(TrainingArguments, "__dataclass_fields__", {})
    return (
        "activation_checkpointing"
        if "activation_checkpointing" in fields
        else "gradient_checkpointing"
    )


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
        _checkpointing_arg(): config.gradient_checkpointing,
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


def _last_checkpoint(directory: Path) -> str | None:
    """The newest checkpoint every rank finished; newer half-written ones are deleted."""
    from fspo_train.trainer.distributed import (
        drop_incomplete_checkpoints,
        last_complete_checkpoint,
    )

    last = last_complete_checkpoint(directory)
    drop_incomplete_checkpoints(directory, keep=last)
    return None if last is None else str(last)


def _stage_metrics(prefix: str, trainer: Any, resumed_from: str | None) -> dict[str, float]:
    from fspo_train.trainer.distributed import check_ranks_agree

    metrics: dict[str, float] = {f"{prefix}/global_step": float(trainer.state.global_step)}
    checksum = check_ranks_agree(trainer)
    if checksum is not None:
        metrics[f"{prefix}/weights_checksum"] = checksum
    if resumed_from is not None:
        step = resumed_from.rsplit("-", 1)[-1]
        metrics[f"{prefix}/resumed_from_step"] = float(step) if step.isdigit() else -1.0
    for entry in trainer.state.log_history:
        for key, value in entry.items():
            if isinstance(value, int | float) and key not in ("epoch", "step"):
                metrics[f"{prefix}/{key}"] = float(value)
    return metrics


def _label_progress(trainer: Any, label: str) -> None:
    """Replace the trainer's progress bar by one that says which stage it counts."""
    from transformers.trainer_callback import ProgressCallback

    class StageProgress(ProgressCallback):
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            super().on_train_begin(*args, **kwargs)
            bar: Any = getattr(self, "training_bar", None)  # None on other ranks
            if bar is not None:
                bar.set_description(label)

    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(StageProgress())


def _run_trainer(trainer: Any, checkpoints: Path, *, resume: bool, label: str) -> str | None:
    from fspo_train.trainer.distributed import CheckpointCompleteCallback

    _label_progress(trainer, label)
    trainer.add_callback(CheckpointCompleteCallback())
    resume_from = _last_checkpoint(checkpoints) if resume else None
    if resume_from is not None:
        logger.info("Resuming from %s", resume_from)
    trainer.train(resume_from_checkpoint=resume_from)
    return resume_from


def _save_artifact(
    model: Any, directory: Path, fmt: PromptFormat, tokenizer: Any, state_dict: Any = None
) -> None:
    from fspo_train.publish.model_card import write_model_card

    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(str(directory), selected_adapters=["default"], state_dict=state_dict)
    else:
        model.save_pretrained(str(directory), state_dict=state_dict)
    tokenizer.save_pretrained(str(directory))
    fmt.save_pretrained(directory)
    # Our card, not PEFT's template (which TRL tags `dpo` whatever the loss); `fspo publish`
    # writes it again with the repo id.
    write_model_card(directory, str(directory.resolve()))


def _publish(trainer: Any, directory: Path, fmt: PromptFormat, tokenizer: Any) -> None:
    """Write the trained model: every rank gathers its shards (FSDP, ZeRO-3), rank 0 writes."""
    state_dict = trainer.accelerator.get_state_dict(trainer.model)
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        _save_artifact(model, directory, fmt, tokenizer, state_dict)
    trainer.accelerator.wait_for_everyone()


def run_stage1(
    config: FSPOTrainConfig,
    data: TrainingData,
    tokenizer: Any,
    fmt: PromptFormat,
    out: Path,
    callbacks: list[Any],
) -> StageOutcome:
    """Stage 1, Pref-FT: train, save the adapter to `out/stage1`, return its metrics."""
    from trl import SFTConfig, SFTTrainer

    checkpoints = out / CHECKPOINTS_DIRNAME / "stage1"
    args = SFTConfig(
        **_common_args(config, checkpoints),
        learning_rate=config.sft_learning_rate,
        num_train_epochs=config.sft_epochs,
        completion_only_loss=True,
        packing=False,
    )
    with quiet_loading():
        trainer = SFTTrainer(
            model=config.model_name_or_path,
            args=args,
            train_dataset=data.sft,
            processing_class=tokenizer,
            peft_config=_lora_config(config),
            callbacks=callbacks,
        )
    resumed = _run_trainer(trainer, checkpoints, resume=config.resume, label="Stage 1 (Pref-FT)")
    _publish(trainer, out / STAGE1_DIRNAME, fmt, tokenizer)
    return StageOutcome(_stage_metrics("stage1", trainer, resumed), trainer.state.log_history)


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
    with quiet_loading():
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
    with quiet_loading():  # TRL loads the model itself when given its name
        return trainer_cls(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=list(callbacks),
            fspo_loss=config.loss,
        )


def run_stage2(
    config: FSPOTrainConfig,
    data: TrainingData,
    tokenizer: Any,
    fmt: PromptFormat,
    out: Path,
    stage1: Path | None,
    callbacks: list[Any],
) -> StageOutcome:
    """Stage 2, IPO/DPO: train, save the artifact to `out`, return its metrics."""
    trainer = build_preference_trainer(config, data, tokenizer, stage1, callbacks)
    checkpoints = out / CHECKPOINTS_DIRNAME / "stage2"
    label = f"Stage 2 ({config.loss.upper()})"
    resumed = _run_trainer(trainer, checkpoints, resume=config.resume, label=label)
    _publish(trainer, out, fmt, tokenizer)
    return StageOutcome(_stage_metrics("stage2", trainer, resumed), trainer.state.log_history)


def copy_stage1_artifact(stage1: Path, out: Path) -> None:
    """Publish the stage-1 adapter as the run's artifact (a run without stage 2)."""
    for item in stage1.iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
