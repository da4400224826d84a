"""Tokenized training data for both stages, built from episodes.

`build_training_datasets` streams episodes into an Arrow dataset on disk (memory-mapped, so a
paper-scale run does not hold a billion token ids in Python lists) and caches it under a
fingerprint, so a resumed run does not tokenize again. `build_training_rows` is the same in
plain lists, for small data and tests.

Rows of the preference dataset: `prompt_ids`, `chosen_ids`, `rejected_ids` (what
`FSPOPreferenceTrainer` takes). Rows of the SFT dataset: `input_ids` = prompt + target and
`completion_mask` (1 on the target), one per preferred response (`sft_targets="chosen"`, the
paper) or two (`"chosen_and_rejected"`, the official code, paper §6.6).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fspo_train.data.episodes import EpisodeSet
from fspo_train.data.tokenization import tokenize_episode
from langchain_fspo.errors import InvalidExampleError, PromptBudgetError
from langchain_fspo.prompt_format import PromptFormat

__all__ = [
    "PREFERENCE_COLUMNS",
    "TrainingData",
    "TrainingRows",
    "build_training_datasets",
    "build_training_rows",
    "sft_rows",
]

logger = logging.getLogger(__name__)

PREFERENCE_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


@dataclass
class TrainingRows:
    """Tokenized rows for both stages (plain lists), and the episodes that could not be used."""

    sft: list[dict[str, list[int]]] = field(default_factory=list)
    preference: list[dict[str, list[int]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    shots_dropped_for_budget: int = 0


@dataclass
class TrainingData:
    """Tokenized datasets for both stages (Arrow, memory-mapped when cached on disk)."""

    preference: Any
    """`datasets.Dataset` with `prompt_ids`, `chosen_ids`, `rejected_ids`."""
    sft: Any
    """`datasets.Dataset` with `input_ids`, `completion_mask`."""
    skipped: list[str] = field(default_factory=list)
    shots_dropped_for_budget: int = 0


def sft_rows(
    prompt: list[int], chosen: list[int], rejected: list[int], sft_targets: str = "chosen"
) -> list[dict[str, list[int]]]:
    """The Pref-FT rows of one preference pair (loss on the target only)."""
    targets = [chosen, rejected] if sft_targets == "chosen_and_rejected" else [chosen]
    return [
        {"input_ids": prompt + t, "completion_mask": [0] * len(prompt) + [1] * len(t)}
        for t in targets
    ]


def _iter_rows(
    episodes: EpisodeSet,
    fmt: PromptFormat,
    tokenizer: Any,
    max_length: int,
    stats: dict[str, Any],
) -> Iterator[dict[str, list[int]]]:
    from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

    for episode in tqdm(episodes.episodes, desc="Tokenizing episodes", unit="episode"):
        try:
            tok = tokenize_episode(fmt, tokenizer, episode, max_length=max_length)
        except (PromptBudgetError, InvalidExampleError) as e:
            stats["skipped"].append(str(e))
            continue
        capped = max(0, len(episode.shots) - fmt.num_shots)
        stats["shots_dropped_for_budget"] += tok.dropped_shots - capped
        yield {
            "prompt_ids": tok.prompt_ids,
            "chosen_ids": tok.chosen_ids,
            "rejected_ids": tok.rejected_ids,
        }


def _log_skipped(skipped: list[str]) -> None:
    for reason in skipped[:10]:
        logger.warning("Skipped episode: %s", reason)
    if skipped:
        logger.warning("Skipped %d episodes that could not be tokenized.", len(skipped))


def build_training_rows(
    episodes: EpisodeSet,
    fmt: PromptFormat,
    tokenizer: Any,
    *,
    max_length: int,
    sft_targets: str = "chosen",
) -> TrainingRows:
    """Tokenize every episode for both stages, in memory; unusable episodes are reported."""
    stats: dict[str, Any] = {"skipped": [], "shots_dropped_for_budget": 0}
    rows = TrainingRows()
    for row in _iter_rows(episodes, fmt, tokenizer, max_length, stats):
        rows.preference.append(row)
        rows.sft.extend(
            sft_rows(row["prompt_ids"], row["chosen_ids"], row["rejected_ids"], sft_targets)
        )
    rows.skipped = stats["skipped"]
    rows.shots_dropped_for_budget = stats["shots_dropped_for_budget"]
    _log_skipped(rows.skipped)
    return rows


def _to_sft(batch: dict[str, list[list[int]]], sft_targets: str) -> dict[str, list[list[int]]]:
    out: dict[str, list[list[int]]] = {"input_ids": [], "completion_mask": []}
    for prompt, chosen, rejected in zip(
        batch["prompt_ids"], batch["chosen_ids"], batch["rejected_ids"], strict=True
    ):
        for row in sft_rows(prompt, chosen, rejected, sft_targets):
            out["input_ids"].append(row["input_ids"])
            out["completion_mask"].append(row["completion_mask"])
    return out


def build_training_datasets(
    episodes: EpisodeSet,
    fmt: PromptFormat,
    tokenizer: Any,
    *,
    max_length: int,
    sft_targets: str = "chosen",
    cache_dir: str | Path | None = None,
    fingerprint: str | None = None,
) -> TrainingData:
    """Tokenize every episode into Arrow datasets for both stages.

    Args:
        episodes: The episodes (`build_episodes`).
        fmt: The prompt format (rendering and completion text).
        tokenizer: The base model's tokenizer.
        max_length: Most tokens of prompt + response (oldest shots dropped to fit).
        sft_targets: `chosen` (paper) or `chosen_and_rejected` (official code).
        cache_dir: Where the Arrow files go (default: the `datasets` cache).
        fingerprint: Cache key; the same key reuses the files (and the skip report) of an
            earlier call. Make it cover everything that changes the tokens. None: no reuse.

    Returns:
        The datasets and what was skipped. With no usable episode both datasets are empty.
    """
    from datasets import Dataset, Features, List, Value

    key = fingerprint or uuid.uuid4().hex
    stats: dict[str, Any] = {"skipped": [], "shots_dropped_for_budget": 0, "ran": False}

    def generate() -> Iterator[dict[str, list[int]]]:
        stats["ran"] = True
        yield from _iter_rows(episodes, fmt, tokenizer, max_length, stats)

    features = Features({name: List(Value("int32")) for name in PREFERENCE_COLUMNS})
    try:
        preference = Dataset.from_generator(
            generate,
            features=features,
            cache_dir=None if cache_dir is None else str(cache_dir),
            fingerprint=key,
        )
    except ValueError as e:  # the generator yielded nothing
        if "corresponds to no data" not in str(e):
            raise
        preference = Dataset.from_dict({name: [] for name in PREFERENCE_COLUMNS}, features=features)
    stats_file = Path(cache_dir) / f"fspo-tokenize-{key}.json" if cache_dir else None
    if stats["ran"]:
        if stats_file is not None:
            stats_file.parent.mkdir(parents=True, exist_ok=True)
            stats_file.write_text(
                json.dumps({k: stats[k] for k in ("skipped", "shots_dropped_for_budget")})
            )
    elif stats_file is not None and stats_file.is_file():
        logger.info("Reusing the tokenized episodes cached under %s", cache_dir)
        stats.update(json.loads(stats_file.read_text()))
    _log_skipped(stats["skipped"])
    sft = preference.map(
        _to_sft,
        batched=True,
        remove_columns=list(PREFERENCE_COLUMNS),
        fn_kwargs={"sft_targets": sft_targets},
        new_fingerprint=f"{key}-sft-{sft_targets}",
        desc="Building Pref-FT rows",
    )
    return TrainingData(
        preference=preference,
        sft=sft,
        skipped=list(stats["skipped"]),
        shots_dropped_for_budget=int(stats["shots_dropped_for_budget"]),
    )
