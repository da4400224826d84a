"""The benchmark's trainings: one `fspo_train.train` run per training, in worker processes.

FSPO (K shots, variable K), FSPO + RAT (the model writes the user description, then the
answer), non-personalised IPO (0 shots) and the oracle (0 shots, trained to answer after the
teacher-forced true description). Each runs `fspo_train.reviews_mini._train_job` in its own
process, `BenchConfig.workers` at a time; a folder already trained with the same settings is
reused (`is_done`, `mark_done`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fspo_train.data.records import PreferenceRecord
from fspo_train.eval.methods import (
    FSPO,
    FSPO_RAT,
    FSPO_RAT_REFERENCE,
    IPO,
    IPO_REFERENCE,
    ORACLE,
    ORACLE_REFERENCE,
    PREF_FT,
    REFERENCE,
    Method,
)
from fspo_train.reviews_mini.config import BenchConfig

__all__ = [
    "Trained",
    "is_done",
    "mark_done",
    "policy_adapters",
    "run_trainings",
    "train_config",
    "trainings_for",
]

logger = logging.getLogger(__name__)

# The trainings: name -> (shots?, rationale).
_TRAININGS = {  # the few-shot (long) trainings first, so that two workers stay busy
    "fspo": (True, "none"),
    "rat": (True, "user_description"),
    "ipo": (False, "none"),
    "oracle": (False, "user_description"),
}
# The adapters each training gives the evaluation (`fspo_train.eval.methods` names):
# training -> (names of its adapter, names of its stage-1 adapter).
_ADAPTERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fspo": ((FSPO,), (REFERENCE, PREF_FT)),
    "rat": ((FSPO_RAT,), (FSPO_RAT_REFERENCE,)),
    "ipo": ((IPO,), (IPO_REFERENCE,)),
    "oracle": ((ORACLE,), (ORACLE_REFERENCE,)),
}


@dataclass(frozen=True)
class Trained:
    """What one training left: the adapter, its stage 1, and its training metrics."""

    adapter_dir: Path
    stage1_dir: Path | None
    metrics: dict[str, float]


def trainings_for(methods: Sequence[Method]) -> list[str]:
    """The trainings whose adapters `methods` answer with, in the order they should start."""
    answering = {m.adapter for m in methods}
    return [t for t in _TRAININGS if answering & {*_ADAPTERS[t][0], *_ADAPTERS[t][1]}]


def policy_adapters(trained: dict[str, Trained]) -> dict[str, str | Path]:
    """Adapter name in the evaluation's `PolicySet` -> folder, for every trained adapter."""
    adapters: dict[str, str | Path] = {}
    for name, result in trained.items():
        final, stage1 = _ADAPTERS[name]
        adapters.update(dict.fromkeys(final, result.adapter_dir))
        if result.stage1_dir is not None:
            adapters.update(dict.fromkeys(stage1, result.stage1_dir))
    return adapters


def train_config(
    config: BenchConfig, base_dir: Path, out: Path, *, num_shots: int, rationale: str
) -> Any:
    """The `FSPOTrainConfig` of one training of the benchmark (the stage settings of `config`)."""
    import torch

    from fspo_train.trainer.config import FSPOTrainConfig

    s = config.stages
    passes = s.episode_passes
    if not num_shots:  # a 0-shot episode is one record, not 1 + K: as many steps, fewer passes
        rows_per_episode = 1 + (min(config.min_shots, config.num_shots) + config.num_shots) / 2
        passes = max(1, round(s.episode_passes / rows_per_episode))
    return FSPOTrainConfig(
        model_name_or_path=str(base_dir),
        output_dir=str(out),
        style="chat",
        num_shots=num_shots,
        min_shots=min(config.min_shots, num_shots) if num_shots else None,
        include_rejected=config.include_rejected,
        gradient_checkpointing=False,
        lora_target_modules=list(s.lora_target_modules),
        episode_passes=passes,
        rationale=rationale,  # type: ignore[arg-type]
        loss="ipo",
        beta=s.beta,
        sft_learning_rate=s.sft_learning_rate,
        learning_rate=s.learning_rate,
        sft_epochs=s.sft_epochs,
        epochs=s.epochs,
        per_device_train_batch_size=s.batch_size,
        warmup_steps=s.warmup_steps,
        optim="adamw_torch",
        lora_r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=0.0,
        seed=config.seed,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=10,
        save_steps=10**9,
        save_total_limit=1,
        resume=False,
        max_length=2048,
    )


_DONE = "_bench_done.json"


def _start_job(name: str, cfg: Any, records: list[Any], job_dir: Path, threads: int) -> Any:
    """Start `fspo_train.reviews_mini._train_job` in a subprocess; its output goes to `job_dir`."""
    import subprocess
    import sys

    import fspo_train

    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    with (job_dir / "records.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(r.model_dump_json() + "\n" for r in records)
    root = str(Path(fspo_train.__file__).resolve().parent.parent)
    paths = [root, os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[variable] = str(threads)
    log = (job_dir / "train.log").open("w", encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "fspo_train.reviews_mini._train_job",
        str(job_dir),
        str(threads),
    ]
    logger.info("Training %s in a subprocess (log: %s)", name, job_dir / "train.log")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)  # noqa: S603


def _finish_job(
    name: str, process: Any, job_dir: Path
) -> tuple[Path, Path | None, dict[str, float]]:
    import json

    code = process.wait()
    if code != 0:
        tail = (job_dir / "train.log").read_text(encoding="utf-8")[-3000:]
        msg = f"Training {name!r} failed (exit {code}); end of {job_dir / 'train.log'}:\n{tail}"
        raise RuntimeError(msg)
    data = json.loads((job_dir / "result.json").read_text(encoding="utf-8"))
    stage1 = Path(data["stage1_dir"]) if data["stage1_dir"] else None
    return Path(data["adapter_dir"]), stage1, data["metrics"]


def _fingerprint(settings: object) -> str:
    import hashlib
    import json

    data = json.dumps(settings, default=dataclasses.asdict, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


def is_done(folder: Path, settings: object) -> bool:
    """Whether `folder` holds a finished stage trained with exactly `settings`."""
    import json

    marker = folder / _DONE
    if not marker.is_file():
        return False
    return bool(
        json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") == _fingerprint(settings)
    )


def mark_done(folder: Path, settings: object) -> None:
    """Record that `folder` holds a finished stage trained with exactly `settings`."""
    import json

    marker = folder / _DONE
    marker.write_text(json.dumps({"fingerprint": _fingerprint(settings)}) + "\n", encoding="utf-8")


def run_trainings(
    config: BenchConfig,
    names: Sequence[str],
    base_dir: Path,
    base_key: dict[str, Any],
    records: list[PreferenceRecord],
    out: Path,
    on_done: Callable[[str], None],
) -> dict[str, Trained]:
    """Train `names` on `records` from the base LM in `base_dir` (reusing finished folders).

    `on_done(name)` is called as each training is ready; the results are in that order.
    """
    trained: dict[str, Trained] = {}
    jobs: dict[str, tuple[Any, dict[str, Any]]] = {}
    for name in names:
        with_shots, rationale = _TRAININGS[name]
        cfg = train_config(
            config,
            base_dir,
            out / name,
            num_shots=config.num_shots if with_shots else 0,
            rationale=rationale,
        )
        key = {"base": base_key, "train": cfg.to_dict()}
        if is_done(out / name, key):
            trained[name] = Trained(out / name, out / name / "stage1", {"reused": 1.0})
            on_done(name)
        else:
            jobs[name] = (cfg, key)
    workers = max(1, min(config.workers, len(jobs) or 1))
    threads = config.torch_threads or max(1, (os.cpu_count() or 1) // workers)
    pending = list(jobs)
    running: dict[str, Any] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                name = pending.pop(0)
                cfg = jobs[name][0]
                running[name] = _start_job(name, cfg, records, out / "jobs" / name, threads)
            finished = next((n for n, p in running.items() if p.poll() is not None), None)
            if finished is None:
                time.sleep(1.0)
                continue
            process = running.pop(finished)
            trained[finished] = Trained(*_finish_job(finished, process, out / "jobs" / finished))
            mark_done(out / finished, jobs[finished][1])
            on_done(finished)
    finally:
        for process in running.values():  # interrupted or failed: stop the other trainings
            process.terminate()
    return trained
