"""FSPO training: Pref-FT (SFT on the preferred response), then IPO or DPO, with TRL and PEFT.

Public API:

    train(config: FSPOTrainConfig, records: Sequence[PreferenceRecord] | None = None, *,
          callbacks=None) -> TrainResult(adapter_dir, stage1_dir, metrics, prompt_format, ...)

`records=None` loads `config.train_file` (with `config.dataset_layout`). What is written to
`config.output_dir`:

- the published artifact, ONE LoRA adapter over the ORIGINAL base model
  (`adapter_config.json`, `adapter_model.safetensors`; a full model with `full_finetune`),
  `fspo_format.json` (the `PromptFormat`), `fspo_train_config.yaml` (the resolved config),
  the tokenizer files, and `training_summary.json` (metrics, each stage's logged loss curve
  under `log_history`, and what data was skipped);
- `stage1/`: the Pref-FT adapter (the reference model of stage 2, for evaluation);
- `splits/`: held-out users/questions as JSONL when `holdout_*` is set;
- `checkpoints/stage1`, `checkpoints/stage2`: Trainer checkpoints, `checkpoints/data`: the
  tokenized episodes (Arrow), and `checkpoints/fspo_stage.json`, the stage marker. A killed
  run started again with the same config and data resumes (`resume=True`, the default): done
  stages are skipped, the running one continues from its last checkpoint. Publish the folder
  without `checkpoints/`.

Episodes are rendered only through `PromptFormat.render`/`completion` and tokenized as serving
tokenizes (`fspo_train.data.tokenization`). Stage-2 IPO is the paper's Eq. 6 on summed
log-probabilities (`fspo_train.trainer.losses.ipo_loss`), not TRL's length-normalised `ipo`.

The stages themselves (TRL's `SFTTrainer`, then `FSPOPreferenceTrainer`, with prefix sharing
by default) are set up in `fspo_train.trainer.stages`.

Example:
    ```python
    from fspo_train import FSPOTrainConfig, train

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

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fspo_train.data.episodes import build_episodes, split_records
from fspo_train.data.loaders import LoadResult, Problem, load_dataset_file, write_records
from fspo_train.data.records import PreferenceRecord
from fspo_train.data.training_data import build_training_datasets
from fspo_train.trainer.config import FSPOTrainConfig
from fspo_train.trainer.stages import (
    CHECKPOINTS_DIRNAME,
    STAGE1_DIRNAME,
    copy_stage1_artifact,
    run_stage1,
    run_stage2,
)
from fspo_train.trainer.tokenizer import build_prompt_format, load_tokenizer
from langchain_fspo.artifact import FORMAT_FILENAME, base_model_path
from langchain_fspo.engine_limits import describe_problems, engine_problems
from langchain_fspo.errors import FSPOError, InvalidExampleError
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["STAGE_MARKER", "SUMMARY_FILENAME", "TrainResult", "train"]

logger = logging.getLogger(__name__)

STAGE_MARKER = "fspo_stage.json"
SUMMARY_FILENAME = "training_summary.json"

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


# ---------------------------------------------------------------------- helpers


def _fingerprint(config: FSPOTrainConfig, records: Sequence[PreferenceRecord]) -> str:
    digest = hashlib.sha256()
    settings = {k: v for k, v in config.to_dict().items() if k not in _RUNTIME_ONLY}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for record in records:
        digest.update(record.model_dump_json().encode())
    return digest.hexdigest()


def _read_marker(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def _with_absolute_base_model(config: FSPOTrainConfig) -> FSPOTrainConfig:
    """The config with a local base model as an absolute path (a Hub id stays as it is).

    PEFT writes the name the model was loaded from into `adapter_config.json`, and the format
    records it too: a relative path there would be read from wherever the adapter is loaded.
    """
    local = base_model_path(config.model_name_or_path)
    if local is None:
        return config
    if not local.is_dir():
        msg = (
            f"`model_name_or_path` {config.model_name_or_path!r} is neither a folder (read from "
            f"{Path.cwd()}) nor a Hub model id; give the base model's folder or its Hub id."
        )
        raise ValueError(msg)
    return config.replace(model_name_or_path=str(local.resolve()))


def _load_records(config: FSPOTrainConfig) -> LoadResult:
    if config.train_file is None:
        msg = "No training data: set `train_file` in the config, or pass `records=` to train()."
        raise ValueError(msg)
    try:
        return load_dataset_file(
            config.train_file, config.dataset_layout, strict=config.strict_data
        )
    except InvalidExampleError as e:
        problem = (getattr(e, "__notes__", None) or [str(e)])[-1]
        msg = (
            f"{problem}. Fix the line, or skip bad lines: leave out `--strict-data` "
            "(`strict_data: false` in the YAML)."
        )
        raise InvalidExampleError(msg) from e


def _warn_engine_limits(config: FSPOTrainConfig) -> None:
    """Warn, before training, when a serving engine would refuse or cut the adapter."""
    if config.full_finetune:
        return
    adapter = {"r": config.lora_r, "target_modules": list(config.lora_target_modules)}
    found = engine_problems(adapter)
    if found:
        logger.warning(
            "The adapter this run trains will not be served as trained by every engine:\n%s\n"
            "`fspo publish` refuses it unless --allow-engine-problems; the default "
            "lora_target_modules fit every engine.",
            describe_problems(found),
        )


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
    from accelerate.state import PartialState

    config = _with_absolute_base_model(config)
    state = PartialState(cpu=config.use_cpu)  # rank 0 writes the files; the others wait
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:
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
        if state.is_main_process:
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
            "--output-dir, or start over with --no-resume (`resume: false` in the YAML; the "
            "checkpoints are deleted)."
        )
        raise FSPOError(msg)
    if not config.resume and (out / CHECKPOINTS_DIRNAME).exists():
        state.wait_for_everyone()  # every rank has read the marker
        if state.is_main_process:
            logger.warning("resume is off: deleting the previous checkpoints in %s", out)
            shutil.rmtree(out / CHECKPOINTS_DIRNAME)
        state.wait_for_everyone()
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
    with state.main_process_first():  # the others reuse rank 0's cache
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
    log_history: dict[str, list[dict[str, Any]]] = {}
    stage1_dir: Path | None = out / STAGE1_DIRNAME if config.run_sft else None
    if config.run_sft:
        if "sft" in completed and (out / STAGE1_DIRNAME / FORMAT_FILENAME).is_file():
            logger.info("Stage 1 (Pref-FT) already done in %s; skipping it.", stage1_dir)
        else:
            stage = run_stage1(config, data, tokenizer, fmt, out, callback_list)
            metrics.update(stage.metrics)
            log_history["stage1"] = stage.log_history
            completed.append("sft")
            if state.is_main_process:
                _write_json(marker_path, {"fingerprint": fingerprint, "completed": completed})
    if config.run_preference:
        if "preference" in completed and (out / FORMAT_FILENAME).is_file():
            logger.info("Stage 2 (%s) already done in %s; skipping it.", config.loss, out)
        else:
            stage = run_stage2(config, data, tokenizer, fmt, out, stage1_dir, callback_list)
            metrics.update(stage.metrics)
            log_history["stage2"] = stage.log_history
            completed.append("preference")
            if state.is_main_process:
                _write_json(marker_path, {"fingerprint": fingerprint, "completed": completed})
    elif stage1_dir is not None and state.is_main_process:
        copy_stage1_artifact(stage1_dir, out)

    summary["metrics"] = metrics
    summary["log_history"] = log_history
    if state.is_main_process:
        config.save(out)
        fmt.save_pretrained(out)
        _write_json(out / SUMMARY_FILENAME, summary)
        logger.info("FSPO adapter written to %s", out)
    state.wait_for_everyone()  # every rank returns once the files are there
    return TrainResult(
        adapter_dir=out,
        stage1_dir=stage1_dir,
        metrics=metrics,
        prompt_format=fmt,
        data_summary=summary,
    )
