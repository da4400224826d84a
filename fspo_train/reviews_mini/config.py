"""`BenchConfig`: everything one Reviews-mini run depends on (saved in its result).

The sizes: `BenchConfig.cpu` (what `make demo` trains), `BenchConfig.full` (a GPU size) and
`BenchConfig.tiny` (the test suite's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fspo_train.reviews_mini.base_lm import BaseLMConfig
from fspo_train.reviews_mini.evaluation import BENCHMARK_METHODS, EvalSettings

__all__ = ["BenchConfig", "StageConfig"]


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
    validation_fraction: float = 0.0
    """Share of the pool held out as validation questions, for choosing hyperparameters
    (`fspo_train.reviews_mini.selection`); 0: none (the split of the committed results)."""
    pairs_per_question: int = 2
    num_shots: int = 4
    """K: the most shots in training and in the table's few-shot prompts."""
    min_shots: int = 1
    """Variable K in training: each episode draws K in [min_shots, num_shots]."""
    include_rejected: bool = False
    """Show the dispreferred response of each shot (the paper's setting: "both responses").
    Off by default at CPU size, where the 0.2M-parameter model learned to read length but not
    sentiment from shots that show both (see `bench/results/reviews_mini_notes.md`); every
    size takes `both_responses=True` to measure that setting beside preferred-only."""
    base: BaseLMConfig = field(default_factory=BaseLMConfig)
    stages: StageConfig = field(default_factory=StageConfig)
    eval: EvalSettings = field(default_factory=EvalSettings)
    shots_curve: tuple[int, ...] = (0, 1, 2, 4, 8)
    methods: tuple[str, ...] = tuple(BENCHMARK_METHODS)
    workers: int = 2
    """Trainings run in parallel processes (tiny models use one core poorly; 1 = inline)."""
    torch_threads: int = 0
    """Torch threads of this process and of each training process (0: the cores divided by
    `workers` for the trainings, torch's default here). 1 on a shared CPU: more threads than
    free cores spin-wait and slow every process down."""

    @classmethod
    def cpu(cls, seed: int = 0, *, both_responses: bool = False) -> BenchConfig:
        """The `make demo` size: minutes on 2 CPU cores.

        Its base LM is pretrained without agreeing documents (`agreeing_fraction=0`): the
        stages were tuned on that base, and the committed reference result comes from it. One
        run with half agreeing (the `BaseLMConfig` default) gave few-shot prompting 49.0 / 40.1
        and FSPO 64.1 / 57.8 (win rates, trained / interpolated): re-tune on the validation
        split (`select_on_validation`) before switching.
        """
        return cls(
            seed=seed,
            include_rejected=both_responses,
            base=BaseLMConfig(seed=seed, agreeing_fraction=0.0),
            eval=EvalSettings(seed=seed),
        )

    @classmethod
    def full(cls, seed: int = 0, *, both_responses: bool = True) -> BenchConfig:
        """A GPU size: a wider, deeper model, more data, 8 shots."""
        return cls(
            seed=seed,
            num_questions=400,
            pairs_per_question=4,
            num_shots=8,
            base=BaseLMConfig(
                hidden_size=256, num_layers=4, num_heads=8, steps=1500, batch_size=32, seed=seed
            ),
            include_rejected=both_responses,
            stages=StageConfig(batch_size=32, episode_passes=48),
            eval=EvalSettings(
                num_shots=8, questions_per_user=48, pairs_per_user=96, max_new_tokens=80, seed=seed
            ),
        )

    @classmethod
    def tiny(cls, seed: int = 0) -> BenchConfig:
        """A reduced run for the test suite: about 3.5 CPU-minutes, one torch thread per process.

        Fewer questions, a shorter base LM and fewer passes than `cpu` (8 passes: at 5, FSPO
        was above IPO by only 4 points of accuracy on trained users), the four rows the
        test orders (base, few-shot, IPO, FSPO), one thread per process (`torch_threads=1`:
        robust to a shared CPU). Measured in `bench/results/reviews_mini_notes.md`.
        """
        return cls(
            seed=seed,
            num_questions=160,
            base=BaseLMConfig(steps=500, seed=seed),
            stages=StageConfig(episode_passes=8, warmup_steps=20),
            eval=EvalSettings(questions_per_user=4, pairs_per_user=32, seed=seed),
            shots_curve=(0, 4),
            methods=("base", "few_shot", "ipo", "fspo"),
            torch_threads=1,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the result file."""
        return dataclasses.asdict(self)
