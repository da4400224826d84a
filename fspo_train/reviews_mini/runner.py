"""Run a synthetic-domain FSPO benchmark end to end: data, base LM, five trainings, the table.

Stages (a progress bar walks through them):

1. **Data**: the domain's shared response pairs, labelled by its exact judge for every user
   (`fspo_train.reviews_mini.data`); training records come from the *trained* users on *train*
   questions only; shots for evaluation come from every user's train-question records; the
   held-out pairs (accuracy) and queries (win rate) use *test* questions.
2. **Base LM** from scratch (`fspo_train.reviews_mini.base_lm`).
3. **Trainings** (`fspo_train.reviews_mini.trainings`; Pref-FT then IPO, LoRA):
   FSPO (K shots, variable K), non-personalised IPO (0 shots), FSPO + RAT (the model writes
   the user description, then the answer) and the oracle (0 shots, trained to answer after
   the teacher-forced true description).
4. **Evaluation** (`fspo_train.reviews_mini.evaluation`, over the core of `fspo_train.eval`):
   the table, and FSPO's accuracy against the number of shots.

Example:
    ```python
    from fspo_train.reviews_mini import BenchConfig, run_benchmark

    results = run_benchmark(BenchConfig.cpu(seed=0), "runs/reviews-mini")
    print(results["table_markdown"])
    ```
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fspo_train.data.records import PreferenceRecord
from fspo_train.eval.methods import FSPO
from fspo_train.reviews_mini.base_lm import train_base_lm
from fspo_train.reviews_mini.config import BenchConfig
from fspo_train.reviews_mini.data import build_records
from fspo_train.reviews_mini.domain import Domain
from fspo_train.reviews_mini.evaluation import BENCHMARK_METHODS, evaluate_methods, shots_curve
from fspo_train.reviews_mini.report import markdown_table
from fspo_train.reviews_mini.trainings import (
    is_done,
    mark_done,
    policy_adapters,
    run_trainings,
    trainings_for,
)
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["WILSON_NOTE", "bench_records", "run_benchmark", "validation_records"]

WILSON_NOTE = (
    "95% Wilson intervals over the comparisons (win rate) or held-out pairs (accuracy) of "
    "one seed, ties counting half"
)

logger = logging.getLogger(__name__)


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


def bench_records(
    domain: Domain, config: BenchConfig
) -> tuple[list[PreferenceRecord], list[PreferenceRecord], list[PreferenceRecord]]:
    """The benchmark's three record sets: (train, shots pool, held-out).

    - train: the *trained* users on *train* questions, the only records any training (the base
      LM's documents included) sees; interpolated users and test questions never reach it.
    - shots pool: every user on train questions (the shots of evaluation prompts).
    - held-out: every user on *test* questions (accuracy pairs; win-rate queries use the
      same questions).
    """
    train_records = build_records(
        domain,
        domain.users("trained"),
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
    return train_records, shot_records, test_records


def validation_records(domain: Domain, config: BenchConfig) -> list[PreferenceRecord]:
    """Every user on *validation* questions: what hyperparameters are chosen on.

    No training sees them, and the test split is not looked at. Empty without validation
    questions (`BenchConfig.validation_fraction` = 0).
    """
    if not domain.questions("validation"):
        return []
    return build_records(
        domain, domain.users(), split="validation", pairs_per_question=2, seed=config.seed + 11
    )


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch threads (0: leave torch's setting), then restore it."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    with _torch_threads(config.torch_threads):
        return _run(config, out_dir, domain, progress)


def _run(
    config: BenchConfig,
    out_dir: str | Path,
    domain: Domain | None,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

    from fspo_train.eval.scoring import PolicySet
    from fspo_train.reviews_mini.reviews import ReviewsMini

    started = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    domain = domain or ReviewsMini(
        seed=config.seed,
        num_questions=config.num_questions,
        validation_fraction=config.validation_fraction,
    )
    wanted = [m for name, m in BENCHMARK_METHODS.items() if name in config.methods]
    trainings = trainings_for(wanted)
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
    train_records, shot_records, test_records = bench_records(domain, config)
    done("data", t)

    t = time.monotonic()
    stage("training the base LM from scratch")
    lm_format = PromptFormat(
        style="chat", num_shots=config.num_shots, include_rejected=config.include_rejected
    )
    base_dir = out / "base"
    data_key: list[object] = [
        domain.name, config.seed, config.num_questions, config.pairs_per_question,
    ]  # fmt: skip
    if config.validation_fraction:  # (absent at 0: earlier base LMs are still reused)
        data_key.append(config.validation_fraction)
    base_key = {"data": data_key, "base": config.base, "format": lm_format.to_json()}
    if not is_done(base_dir, base_key):
        train_base_lm(domain, train_records, base_dir, config.base, lm_format)
        mark_done(base_dir, base_key)
    done("base_lm", t)

    stage(f"training {', '.join(trainings)} (Pref-FT, then IPO), {config.workers} at a time")
    t = time.monotonic()
    trained = run_trainings(
        config,
        trainings,
        base_dir,
        base_key,
        train_records,
        out,
        on_done=lambda name: done(f"train_{name}", t),
    )
    results_dirs = {name: result.adapter_dir for name, result in trained.items()}

    t = time.monotonic()
    stage("evaluating on held-out questions")
    adapters = policy_adapters(trained)
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
    curve_ci: dict[str, dict[str, list[float]]] = {}
    fspo_method = BENCHMARK_METHODS[FSPO]
    if "fspo" in results_dirs:
        curve, curve_ci = shots_curve(
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
        "interval": WILSON_NOTE,
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
        "training_metrics": {name: result.metrics for name, result in trained.items()},
        "methods": evaluated["methods"],
        "shots_curve": curve,
        "shots_curve_ci": curve_ci,
        "samples": evaluated["samples"],
        "adapters": {k: str(v) for k, v in results_dirs.items()},
        "work_dir": str(out),
    }
    results["table_markdown"] = markdown_table(results)
    return results
