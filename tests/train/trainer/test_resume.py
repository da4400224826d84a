"""A training run killed after its first stage-2 checkpoint resumes from it (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fspo_train.data.loaders import write_records
from fspo_train.trainer.distributed import CHECKPOINT_COMPLETE
from fspo_train.trainer.run import STAGE_MARKER, SUMMARY_FILENAME
from tests.train.records import tiny_run_config, toy_records
from tests.train.trainer.slow_run import slow_run_script

pytestmark = [pytest.mark.train, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]

SLOW_RUN = slow_run_script(3)
"""`fspo train` with slow stage-2 steps, so the test can kill it between two checkpoints."""


def _checkpoint_ready(path: Path) -> bool:
    return (path / CHECKPOINT_COMPLETE).is_file()  # what resuming looks for


def test_killed_run_resumes_from_its_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    tiny = tiny_model_dir
    out = tmp_path / "run"
    config_path = tiny_run_config(
        tmp_path / "run.yaml",
        tiny,
        write_records(tmp_path / "prefs.jsonl", toy_records()),
        out,
        style="chat",
        max_steps=4,
        save_steps=1,
        save_total_limit=None,
        sft_learning_rate=1e-3,
        learning_rate=1e-3,
        logging_steps=1,
        resume=True,
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    args = ["--log-level", "WARNING", "train", "--config", str(config_path)]

    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stage2 = out / "checkpoints" / "stage2"
    deadline = time.monotonic() + 400
    try:
        while not _checkpoint_ready(stage2 / "checkpoint-1"):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no stage-2 checkpoint was written"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode != 0  # killed mid-run, not finished
    checkpoints = sorted(int(p.name.split("-")[1]) for p in stage2.glob("checkpoint-*"))
    last = max(c for c in checkpoints if _checkpoint_ready(stage2 / f"checkpoint-{c}"))
    assert last < 4
    assert not (out / "adapter_model.safetensors").exists()
    marker = json.loads((out / "checkpoints" / STAGE_MARKER).read_text())
    assert marker["completed"] == ["sft"]

    done = subprocess.run(
        [sys.executable, "-m", "fspo_train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"FSPO adapter: {out}" in done.stdout
    metrics = json.loads((out / SUMMARY_FILENAME).read_text())["metrics"]
    assert metrics["stage2/resumed_from_step"] == last
    assert metrics["stage2/global_step"] == 4
    assert "stage1/global_step" not in metrics  # stage 1 was done and not run again
    assert (out / "adapter_model.safetensors").is_file()
    marker = json.loads((out / "checkpoints" / STAGE_MARKER).read_text())
    assert marker["completed"] == ["sft", "preference"]
