"""Small preference datasets for the training tests: every user answers the same questions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from fspo_train.data.records import PreferenceRecord

DEFAULT_USERS = ("kid", "expert", "poet")


def toy_records(n: int = 6, users: Sequence[str] = DEFAULT_USERS) -> list[PreferenceRecord]:
    """`n` questions per user, each preferring the answer that names them (with descriptions)."""
    return [
        PreferenceRecord(
            user_id=user,
            question=f"Question {i}: why does the fox jump?",
            chosen=f"The {user} answer {i}: a quick brown fox.",
            rejected=f"Nope {i}.",
            user_description=f"The user is a {user}.",
            question_id=f"q{i}",
        )
        for user in users
        for i in range(n)
    ]


TINY_RUN: dict[str, object] = {
    "num_shots": 2,
    "per_device_train_batch_size": 2,
    "warmup_steps": 0,
    "max_length": 256,
    "use_cpu": True,
    "gradient_checkpointing": False,
}
"""The settings every `fspo train` run over the tiny Llama shares (K=2, CPU, short rows)."""


def tiny_run_config(path: Path, model: Path, data: Path, out: Path, **settings: object) -> Path:
    """Write a run.yaml training `model` on `data` into `out` (`TINY_RUN` plus `settings`)."""
    config = {
        "model_name_or_path": str(model),
        "train_file": str(data),
        "output_dir": str(out),
        **TINY_RUN,
        **settings,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
