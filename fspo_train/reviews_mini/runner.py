"""Run a synthetic-domain FSPO benchmark end to end: data, base LM, five trainings, the table.

Stages (a progress bar walks through them):

1. **Data**: the domain's shared response pairs, labelled by its exact judge for every user
   (`fspo_train.reviews_mini.data`); training records come from the *trained* users on *train*
   questions only; shots for evaluation come from every user's train-question records; the
   held-out pairs (accuracy) and queries (win rate) use *test* questions.
2. **Base LM** from scratch (`fspo_train.reviews_mini.base_lm`).
3. **Trainings** with `fspo_train.trainer.run.train` (Pref-FT then IPO, LoRA):
   FSPO (K shots, variable K), non-personalised IPO (0 shots), FSPO + RAT (the model writes
   the user description, then the answer) and the oracle (0 shots, trained to answer after
   the teacher-forced true description).
4. **Evaluation** (`fspo_train.reviews_mini.evaluation`): the table, and FSPO's accuracy against the
   number of shots.

Example:
    ```python
    from fspo_train.reviews_mini.runner import BenchConfig, run_benchmark

    results = run_benchmark(BenchConfig.cpu(seed=0), "runs/reviews-mini")
    print(results["table_markdown"])
    ```
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
)
from fspo_train.reviews_mini.base_lm import BaseLMConfig, train_base_lm
from fspo_train.reviews_mini.data import build_records
from fspo_train.reviews_mini.domain import Domain
from fspo_train.reviews_mini.evaluation import (
    BENCHMARK_METHODS,
    EvalSettings,
    evaluate_methods,
    shots_curve,
)
from fspo_train.reviews_mini.report import markdown_table
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["BenchConfig", "StageConfig", "run_benchmark"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageConfig:
    """Hyperparameters of the Pref-FT + IPO trainings (tiny-model values, not the paper's).

    The paper's LRs (1e-7 / 1e-6) and beta (0.005) are for a 3B instruct model trained on
    130K pairs; a from-scratch tiny model needs far larger LoRA LRs and many more episodes
    per pair (the data is free, so episodes are recut `episode_passes` times). What was
    measured on Reviews-mini (CPU size, see `bench/results/reviews_mini_notes.md`): IPO at
    1e-3 with full fine-tuning collapses every user to verbose reviews, 6e-4 (LoRA) separates
    the users on both axes once IPO runs long enough (~640 steps after ~480 Pref-FT steps),
    1.5e-3 or 2e-3 (LoRA) lowers the held-out accuracy. beta = 0.1 makes the IPO target
    margin 1/(2 beta) = 5 nats, summed over a 5-40 token review.
    """

    sft_learning_rate: float = 2e-3
    learning_rate: float = 6e-4
    beta: float = 0.1
    batch_size: int = 16
    sft_epochs: float = 0.75
    """Pref-FT sees three quarters of the episodes (the IPO stage is where the users separate)."""
    epochs: float = 1.0
    """IPO sees every episode (~640 steps at CPU size): with half of them, reviews for the
    interpolated users followed the shots' length but not their sentiment."""
    episode_passes: int = 24
    """Reshuffled passes over each trained user's records when cutting episodes."""
    warmup_steps: int = 50
    lora_r: int = 32
    lora_alpha: int = 32
    lora_target_modules: tuple[str, ...] = (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    )  # fmt: skip
    """Every linear layer: the tiny model must learn to read the shots, not only to restyle."""


@dataclass(frozen=True)
class BenchConfig:
    """Everything one benchmark run depends on (saved in the result)."""

    seed: int = 0
    num_questions: int = 240
    """Question pool (20% held out)."""
    pairs_per_question: int = 2
    num_shots: int = 4
    """K: the most shots in training and in the table's few-shot prompts."""
    min_shots: int = 1
    """Variable K in training: each episode draws K in [min_shots, num_shots]."""
    include_rejected: bool = False
    """Show the dispreferred response of each shot (the paper's released setting). Off at CPU
    size: the 0.2M-parameter model learns to read length but not sentiment from shots that
    show both responses within the budget (see `bench/results/reviews_mini_notes.md`)."""
    base: BaseLMConfig = field(default_factory=BaseLMConfig)
    stages: StageConfig = field(default_factory=StageConfig)
    eval: EvalSettings = field(default_factory=EvalSettings)
    shots_curve: tuple[int, ...] = (0, 1, 2, 4, 8)
    methods: tuple[str, ...] = tuple(BENCHMARK_METHODS)
    workers: int = 2
    """Trainings run in parallel processes (tiny models use one core poorly; 1 = inline)."""

    @classmethod
    def cpu(cls, seed: int = 0) -> BenchConfig:
        """The `make demo` size: minutes on 2 CPU cores."""
        return cls(
            seed=seed,
            base=BaseLMConfig(seed=seed),
            eval=EvalSettings(seed=seed),
        )

    @classmethod
    def full(cls, seed: int = 0) -> BenchConfig:
        """A GPU size: a wider, deeper model, more data, 8 shots."""
        return cls(
            seed=seed,
            num_questions=400,
            pairs_per_question=4,
            num_shots=8,
            base=BaseLMConfig(
                hidden_size=256, num_layers=4, num_heads=8, steps=1500, batch_size=32, seed=seed
            ),
            include_rejected=True,
            stages=StageConfig(batch_size=32, episode_passes=48),
            eval=EvalSettings(
                num_shots=8, questions_per_user=48, pairs_per_user=96, max_new_tokens=80, seed=seed
            ),
        )

    @classmethod
    def tiny(cls, seed: int = 0) -> BenchConfig:
        """A reduced run for tests (about four and a half minutes per seed on 2 CPU cores)."""
        return cls(
            seed=seed,
            base=BaseLMConfig(steps=1000, seed=seed),
            stages=StageConfig(episode_passes=12),
            eval=EvalSettings(questions_per_user=6, pairs_per_user=32, seed=seed),
            shots_curve=(0, 4),
            methods=("base", "few_shot", "ipo", "fspo"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the result file."""
        return dataclasses.asdict(self)


def _train_config(
    config: BenchConfig, base_dir: Path, out: Path, *, num_shots: int, rationale: str
) -> Any:
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


# The trainings each method needs: name -> (shots?, rationale).
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
    env["OMP_NUM_THREADS"] = str(threads)
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


def _is_done(folder: Path, settings: object) -> bool:
    """Whether `folder` holds a finished stage trained with exactly `settings`."""
    import json

    marker = folder / _DONE
    if not marker.is_file():
        return False
    return bool(
        json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") == _fingerprint(settings)
    )


def _mark_done(folder: Path, settings: object) -> None:
    import json

    marker = folder / _DONE
    marker.write_text(json.dumps({"fingerprint": _fingerprint(settings)}) + "\n", encoding="utf-8")


def _environment() -> dict[str, Any]:
    import peft
    import torch
    import transformers
    import trl

    cpu = platform.processor() or platform.machine()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({cpu})"
    return {
        "device": device,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
        "platform": platform.platform(),
    }


def run_benchmark(
    config: BenchConfig,
    out_dir: str | Path,
    *,
    domain: Domain | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the whole benchmark into `out_dir` and return the results (also the table).

    Args:
        config: Sizes, hyperparameters, methods.
        out_dir: Work folder: the base LM, the adapters (`fspo/` is the FSPO adapter with
            its `fspo_format.json`), the records.
        domain: The domain (default: `ReviewsMini(seed=config.seed)`).
        progress: Called with a line as each stage starts (besides the progress bar).

    Returns:
        The result: `meta`, `config`, `methods` (win rate and accuracy per user group),
        `shots_curve`, `samples`, `table_markdown`, `adapters`.
    """
    from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

    from fspo_train.eval.scoring import PolicySet
    from fspo_train.reviews_mini.reviews import ReviewsMini

    started = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    domain = domain or ReviewsMini(seed=config.seed, num_questions=config.num_questions)
    wanted = [m for name, m in BENCHMARK_METHODS.items() if name in config.methods]
    answering = {m.adapter for m in wanted}
    trainings = [t for t in _TRAININGS if answering & {*_ADAPTERS[t][0], *_ADAPTERS[t][1]}]
    bar = tqdm(total=3 + len(trainings) + 2, desc=f"{domain.name} benchmark", unit="stage")
    timings: dict[str, float] = {}

    def stage(name: str) -> None:
        bar.set_postfix_str(name)
        if progress is not None:
            progress(name)
        logger.info("Benchmark stage: %s", name)

    def done(name: str, since: float) -> None:
        timings[name] = round(time.monotonic() - since, 1)
        bar.update(1)

    t = time.monotonic()
    stage("labelling preference pairs")
    trained_users = domain.users("trained")
    train_records = build_records(
        domain,
        trained_users,
        split="train",
        pairs_per_question=config.pairs_per_question,
        seed=config.seed,
    )
    shot_records = build_records(
        domain,
        domain.users(),
        split="train",
        pairs_per_question=config.pairs_per_question,
        seed=config.seed,
    )
    test_records = build_records(
        domain, domain.users(), split="test", pairs_per_question=2, seed=config.seed + 7
    )
    done("data", t)

    t = time.monotonic()
    stage("training the base LM from scratch")
    lm_format = PromptFormat(
        style="chat", num_shots=config.num_shots, include_rejected=config.include_rejected
    )
    base_dir = out / "base"
    data_key = [domain.name, config.seed, config.num_questions, config.pairs_per_question]
    base_key = {"data": data_key, "base": config.base, "format": lm_format.to_json()}
    if not _is_done(base_dir, base_key):
        train_base_lm(domain, train_records, base_dir, config.base, lm_format)
        _mark_done(base_dir, base_key)
    done("base_lm", t)

    results_dirs: dict[str, Path] = {}
    stage1_dirs: dict[str, Path] = {}
    metrics: dict[str, dict[str, float]] = {}
    stage(f"training {', '.join(trainings)} (Pref-FT, then IPO), {config.workers} at a time")
    t = time.monotonic()
    jobs: dict[str, tuple[Any, dict[str, Any]]] = {}
    for name in trainings:
        with_shots, rationale = _TRAININGS[name]
        cfg = _train_config(
            config,
            base_dir,
            out / name,
            num_shots=config.num_shots if with_shots else 0,
            rationale=rationale,
        )
        key = {"base": base_key, "train": cfg.to_dict()}
        if _is_done(out / name, key):
            results_dirs[name], stage1_dirs[name] = out / name, out / name / "stage1"
            metrics[name] = {"reused": 1.0}
            done(f"train_{name}", t)
        else:
            jobs[name] = (cfg, key)
    workers = max(1, min(config.workers, len(jobs) or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    pending = list(jobs)
    running: dict[str, Any] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                name = pending.pop(0)
                cfg = jobs[name][0]
                running[name] = _start_job(name, cfg, train_records, out / "jobs" / name, threads)
            finished = next((n for n, p in running.items() if p.poll() is not None), None)
            if finished is None:
                time.sleep(1.0)
                continue
            process = running.pop(finished)
            adapter_dir, stage1_dir, stage_metrics = _finish_job(
                finished, process, out / "jobs" / finished
            )
            results_dirs[finished] = adapter_dir
            if stage1_dir is not None:
                stage1_dirs[finished] = stage1_dir
            metrics[finished] = stage_metrics
            _mark_done(out / finished, jobs[finished][1])
            done(f"train_{finished}", t)
    finally:
        for process in running.values():  # interrupted or failed: stop the other trainings
            process.terminate()

    t = time.monotonic()
    stage("evaluating on held-out questions")
    adapters: dict[str, str | Path] = {}
    for name, path in results_dirs.items():
        final, stage1 = _ADAPTERS[name]
        adapters.update(dict.fromkeys(final, path))
        adapters.update(dict.fromkeys(stage1, stage1_dirs[name]))
    policies = PolicySet(base_dir, adapters)
    fspo_format = (
        PromptFormat.from_pretrained(results_dirs["fspo"]) if "fspo" in results_dirs else None
    )
    base_format = (fspo_format or lm_format).model_copy(update={"num_shots": config.num_shots})
    formats: dict[str | None, PromptFormat] = {None: base_format}
    for name, folder in adapters.items():
        formats[name] = PromptFormat.from_pretrained(folder)
    evaluated = evaluate_methods(
        domain,
        policies,
        formats,
        wanted,
        shot_records=shot_records,
        test_records=test_records,
        settings=config.eval,
        progress=bar.set_postfix_str,
    )
    done("evaluate", t)

    t = time.monotonic()
    stage("accuracy against the number of shots")
    curve: dict[str, dict[str, float]] = {}
    fspo_method = BENCHMARK_METHODS[FSPO]
    if "fspo" in results_dirs:
        curve = shots_curve(
            policies,
            formats,
            fspo_method,
            shot_records=shot_records,
            test_records=test_records,
            settings=config.eval,
            shots=config.shots_curve,
            groups={u.id: u.group for u in domain.users()},
        )
    done("shots_curve", t)
    bar.close()

    results: dict[str, Any] = {
        "title": f"{domain.name}: FSPO and baselines on held-out questions",
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "seed": config.seed,
            "wall_time_s": round(time.monotonic() - started, 1),
            **_environment(),
            "judge": "exact utility of the domain (both orders, ties half)",
            "records": {
                "train (trained users)": len(train_records),
                "shots pool (all users)": len(shot_records),
                "held-out pairs": len(test_records),
            },
        },
        "config": config.to_dict(),
        "stage_seconds": timings,
        "training_metrics": metrics,
        "methods": evaluated["methods"],
        "shots_curve": curve,
        "samples": evaluated["samples"],
        "adapters": {k: str(v) for k, v in results_dirs.items()},
    }
    results["table_markdown"] = markdown_table(results)
    return results
