"""The pipeline's output is training data: `fspo train` runs on it with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fspo_train.cli import main
from fspo_train.data.records import PreferenceRecord
from langchain_fspo.prompt_format import PromptFormat

pytestmark = pytest.mark.train


def test_fspo_train_trains_on_synthetic_records(reference_run, tiny_model_dir: Path, tmp_path):
    run_dir, _ = reference_run
    train_file = run_dir / "train.jsonl"
    records = [
        PreferenceRecord.model_validate_json(line) for line in train_file.read_text().splitlines()
    ]
    per_user: dict[str, int] = {}
    for record in records:
        per_user[record.user_id] = per_user.get(record.user_id, 0) + 1
    assert min(per_user.values()) >= 3, "every training user has K+1 = 3 records"
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_name_or_path": str(tiny_model_dir),
                "train_file": str(train_file),
                "output_dir": str(tmp_path / "out"),
                "num_shots": 2,
                "max_steps": 1,
                "per_device_train_batch_size": 2,
                "warmup_steps": 0,
                "max_length": 512,
                "use_cpu": True,
                "gradient_checkpointing": False,
            }
        )
    )
    assert main(["train", "--config", str(config), "--rationale", "user_description"]) == 0
    out = tmp_path / "out"
    fmt = PromptFormat.from_pretrained(out)
    assert fmt.rationale == "user_description"  # the refined personas are the RAT targets
    assert (out / "adapter_model.safetensors").is_file()
    metrics = json.loads((out / "training_summary.json").read_text())["metrics"]
    assert metrics["stage2/global_step"] == 1
    assert metrics["data/episodes"] >= len(per_user)
