"""The held-out users and questions never reach training (no training needed: seconds).

`run_benchmark` is run with its two training stages replaced by recorders that keep the records
they are handed and stop the run; the records must come from the trained users on train
questions only. Training on every user (interpolated included), or on test questions, fails
here. The record sets of `bench_records` are checked too: evaluation pairs are on test
questions, shots on train questions; validation questions (for choosing hyperparameters) are
neither trained on nor tested on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fspo_train.data.records import PreferenceRecord
from fspo_train.reviews_mini import BenchConfig
from fspo_train.reviews_mini.reviews import ReviewsMini

pytestmark = pytest.mark.train

CONFIG = BenchConfig(
    seed=3,
    num_questions=60,
    validation_fraction=0.1,
    methods=("base", "few_shot", "ipo", "fspo"),
)


class _StopError(Exception):
    """Raised by the recording training stage: the run has handed over what it trains on."""


def _domain() -> ReviewsMini:
    return ReviewsMini(
        seed=CONFIG.seed,
        num_questions=CONFIG.num_questions,
        validation_fraction=CONFIG.validation_fraction,
    )


def _question_ids(domain: ReviewsMini, split: str) -> set[str]:
    return {q.id for q in domain.questions(split)}


def _assert_training_only(domain: ReviewsMini, records: list[PreferenceRecord]) -> None:
    trained = {u.id for u in domain.users("trained")}
    interpolated = {u.id for u in domain.users("interpolated")}
    test_texts = {q.text for q in domain.questions("test")}
    test_texts |= {q.text for q in domain.questions("validation")}
    assert records
    assert interpolated
    assert not interpolated & trained
    assert {r.user_id for r in records} == trained
    assert {r.question_id for r in records} <= _question_ids(domain, "train")
    assert not {r.question for r in records} & test_texts
    assert {r.provenance["split"] for r in records} == {"train"}


def _hand_over(config: BenchConfig, out: Path) -> dict[str, Any]:
    """What `run_benchmark(config)` hands its base-LM and training stages (none of them runs)."""
    from fspo_train.reviews_mini import runner
    from fspo_train.reviews_mini.trainings import train_config

    seen: dict[str, Any] = {}

    def record_base_lm(domain: Any, records: Any, out_dir: Path, base: Any, fmt: Any) -> Path:
        seen["base_lm"], seen["base_lm_format"] = list(records), fmt
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return Path(out_dir)

    def record_trainings(
        config: Any, names: Any, base_dir: Any, key: Any, records: Any, *a: Any, **kw: Any
    ) -> Any:
        seen["trainings"] = (list(names), list(records))
        seen["train_configs"] = {
            name: train_config(config, base_dir, out / name, num_shots=4, rationale="none")
            for name in names
        }
        raise _StopError

    patch = pytest.MonkeyPatch()
    patch.setattr(runner, "train_base_lm", record_base_lm)
    patch.setattr(runner, "run_trainings", record_trainings)
    try:
        with pytest.raises(_StopError):
            runner.run_benchmark(config, out)
    finally:
        patch.undo()
    return seen


@pytest.fixture(scope="module")
def handed_over(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _hand_over(CONFIG, tmp_path_factory.mktemp("wiring"))


def test_trainings_see_trained_users_on_train_questions_only(handed_over: dict[str, Any]) -> None:
    domain = _domain()
    names, records = handed_over["trainings"]
    assert names == ["fspo", "ipo"]
    _assert_training_only(domain, records)


def test_base_lm_documents_see_trained_users_on_train_questions_only(
    handed_over: dict[str, Any],
) -> None:
    domain = _domain()
    _assert_training_only(domain, handed_over["base_lm"])


def test_evaluation_pairs_are_held_out_and_shots_are_not() -> None:
    from fspo_train.reviews_mini.runner import bench_records, validation_records

    domain = _domain()
    train, shots, test = bench_records(domain, CONFIG)
    everyone = {u.id for u in domain.users()}
    assert {r.user_id for r in test} == everyone == {r.user_id for r in shots}
    assert {r.question_id for r in test} <= _question_ids(domain, "test")
    assert {r.question_id for r in shots} <= _question_ids(domain, "train")
    assert _question_ids(domain, "train").isdisjoint(_question_ids(domain, "test"))
    validation = validation_records(domain, CONFIG)
    assert {r.user_id for r in validation} == everyone
    assert {r.question_id for r in validation} <= _question_ids(domain, "validation")
    assert len(_question_ids(domain, "validation")) == 6  # 10% of 60
    assert _question_ids(domain, "validation").isdisjoint(_question_ids(domain, "test"))
    assert _question_ids(domain, "validation").isdisjoint(_question_ids(domain, "train"))
    # A record that trains is a shot too (same pairs), never a held-out pair.
    assert {r.model_dump_json() for r in train} <= {r.model_dump_json() for r in shots}


@pytest.mark.parametrize("both", [False, True])
def test_both_responses_setting_reaches_the_base_lm_and_the_trainings(
    both: bool, tmp_path: Path
) -> None:
    import dataclasses

    config = dataclasses.replace(
        BenchConfig.cpu(seed=3, both_responses=both), num_questions=60, methods=CONFIG.methods
    )
    assert config.include_rejected is both
    seen = _hand_over(config, tmp_path)
    assert seen["base_lm_format"].include_rejected is both
    assert {c.include_rejected for c in seen["train_configs"].values()} == {both}
