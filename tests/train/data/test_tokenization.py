"""Tokenized training data on disk: same rows as in memory, cached under a fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fspo_train.data.episodes import EpisodeSet, build_episodes
from fspo_train.data.records import PreferenceRecord
from fspo_train.data.training_data import build_training_datasets, build_training_rows
from fspo_train.trainer.config import FSPOTrainConfig
from fspo_train.trainer.tokenizer import build_prompt_format, load_tokenizer

pytestmark = pytest.mark.train


def _episodes() -> EpisodeSet:
    records = [
        PreferenceRecord(
            user_id=u,
            question=f"Why {i}?",
            chosen=f"Because {u} {i}.",
            rejected="No.",
            user_description=None if u == "anon" else f"The user is {u}.",
        )
        for u in ("kid", "anon")
        for i in range(6)
    ]
    return build_episodes(records, num_shots=2, passes=2, seed=0)


@pytest.fixture(scope="module")
def setup(tiny_model_dir: Path) -> tuple[object, object]:
    config = FSPOTrainConfig(
        model_name_or_path=str(tiny_model_dir), rationale="user_description", style="paper"
    )
    tokenizer = load_tokenizer(config)
    return tokenizer, build_prompt_format(config, tokenizer)


class _Exploding(list):  # type: ignore[type-arg]
    def __iter__(self):
        raise AssertionError("the cached dataset should have been reused")


@pytest.mark.parametrize("sft_targets", ["chosen", "chosen_and_rejected"])
def test_datasets_match_rows_and_are_reused(
    setup: tuple[object, object], tmp_path: Path, sft_targets: str
) -> None:
    tokenizer, fmt = setup
    episodes = _episodes()
    rows = build_training_rows(episodes, fmt, tokenizer, max_length=512, sft_targets=sft_targets)
    cached_build: dict[str, Any] = {
        "max_length": 512,
        "sft_targets": sft_targets,
        "cache_dir": tmp_path,
        "fingerprint": "run-1",
    }
    data = build_training_datasets(episodes, fmt, tokenizer, **cached_build)
    assert data.preference.to_list() == rows.preference
    assert data.sft.to_list() == rows.sft
    assert len(rows.sft) == len(rows.preference) * (2 if sft_targets != "chosen" else 1)
    # "anon" has no user description, which RAT needs: its episodes are skipped and reported.
    assert data.skipped == rows.skipped
    assert len(data.skipped) == 4
    assert all("'anon'" in s for s in data.skipped)

    cached = EpisodeSet(episodes=_Exploding(episodes.episodes))
    again = build_training_datasets(cached, fmt, tokenizer, **cached_build)
    assert again.preference.to_list() == rows.preference
    assert again.skipped == rows.skipped  # the skip report comes back with the cache


def test_no_usable_episode_gives_empty_datasets(setup: tuple[object, object]) -> None:
    tokenizer, fmt = setup
    episodes = _episodes()
    anon_only = EpisodeSet(episodes=[e for e in episodes.episodes if e.user_id == "anon"])
    data = build_training_datasets(anon_only, fmt, tokenizer, max_length=512)
    assert len(data.preference) == 0
    assert len(data.sft) == 0
    assert len(data.skipped) == len(anon_only.episodes)
