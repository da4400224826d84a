r"""`fspo train` over 2 processes (`accelerate launch`, gloo on CPU) computes what 1 process does.

The launch line is the one docs/training.md gives:

    accelerate launch --config_file examples/accelerate/ddp.yaml -m fspo_train train \\
        --config run.yaml

(`use_cpu: true` in run.yaml selects gloo). Both stages run (Pref-FT, then IPO with prefix sharing
and RAT), and the 1-process run has the same global batch: 2 pairs x 2 processes against 2 pairs
x 2 accumulation steps, same seed, so each optimizer step sees the same 4 episodes.

Tolerance. The two runs add the same float32 numbers in nearly the same order: DDP all-reduces each
gradient as g0 + g1 (one addition with 2 ranks, commutative) and halves it; one process adds
g0/2 + g1/2 (its loss is scaled by 1/2 per micro-batch). Halving is exact in binary floating
point, so the runs agree bit for bit here; with more ranks a ring all-reduce reorders the sum and
each gradient element moves by at most ~W ulps (W * 6e-8 relative). RMSprop turns that into an
update error of the same relative size on updates of at most 10 x lr = 1e-2 (first step,
alpha=0.99), so after S=3 steps per stage the adapter can differ by ~S * 1e-2 * 2 * 6e-8 ~ 4e-9.
We allow 1e-6 on the weights and 1e-5 relative on the logged losses: far above that bound, far
below one update. LoRA dropout is 0: each rank draws its own dropout masks, which a single process
draws in another order (the runs would then agree in distribution only).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # accelerate depends on it
import pytest
import torch
import yaml
from safetensors.torch import load_file

from fspo_train.data.loaders import write_records
from fspo_train.trainer.distributed import CHECKPOINT_COMPLETE
from fspo_train.trainer.run import STAGE_MARKER, SUMMARY_FILENAME
from tests.train.records import toy_records
from tests.train.trainer.slow_run import slow_run_script

pytestmark = [pytest.mark.train, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
DDP_CONFIG = ROOT / "examples" / "accelerate" / "ddp.yaml"
WEIGHT_ATOL = 1e-6
LOSS_RTOL = 1e-5
STEPS = 3

SLOW_RUN = slow_run_script(4)
"""`fspo train` with slow stage-2 steps, so the test can kill it between two checkpoints."""


def _accelerate() -> list[str]:
    script = Path(sys.executable).parent / "accelerate"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "accelerate.commands.accelerate_cli"]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _ddp_launch(program: list[str]) -> list[str]:
    return [*_accelerate(), "launch", "--config_file", str(DDP_CONFIG), *program]


@dataclass(frozen=True)
class Run:
    out: Path
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.out / SUMMARY_FILENAME).read_text())
        return data

    def losses(self, stage: str) -> list[float]:
        history = self.summary["log_history"][stage]
        return [entry["loss"] for entry in history if "loss" in entry]

    def weights(self, folder: str = "") -> dict[str, torch.Tensor]:
        return load_file(self.out / folder / "adapter_model.safetensors")


def _start(command: list[str], stdout: int = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, cwd=ROOT, env=_env(), text=True, stdout=stdout, stderr=subprocess.PIPE
    )


def _finish(proc: subprocess.Popen[str], out: Path) -> Run:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-4000:]
    return Run(out, stdout, stderr)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """run.yaml: the tiny Llama, 12 episodes of K=2 shots (4 per optimizer step), RAT on."""
    root = tmp_path_factory.mktemp("distributed")
    config = {
        "model_name_or_path": str(tiny_model_dir),
        "train_file": str(write_records(root / "prefs.jsonl", toy_records(12))),
        "style": "chat",
        "rationale": "user_description",
        "num_shots": 2,
        "max_steps": STEPS,
        "save_steps": 1,
        "save_total_limit": None,
        "per_device_train_batch_size": 2,
        "warmup_steps": 0,
        "sft_learning_rate": 1e-3,
        "learning_rate": 1e-3,
        "lora_dropout": 0.0,
        "max_length": 256,
        "use_cpu": True,
        "gradient_checkpointing": False,
        "logging_steps": 1,
    }
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(setup: Path) -> tuple[Run, Run]:
    """(1 process with 2 accumulation steps, 2 processes), started side by side."""
    one_out, two_out = setup.parent / "one", setup.parent / "two"
    train = ["train", "--config", str(setup)]
    accumulate = ["--gradient-accumulation-steps", "2"]
    one = _start(
        [sys.executable, "-m", "fspo_train", *train, "--output-dir", str(one_out), *accumulate]
    )
    two = _start(_ddp_launch(["-m", "fspo_train", *train, "--output-dir", str(two_out)]))
    return _finish(one, one_out), _finish(two, two_out)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_two_processes_train_what_one_process_trains(runs: tuple[Run, Run]) -> None:
    one, two = runs
    for stage in ("stage1", "stage2"):
        losses_one, losses_two = one.losses(stage), two.losses(stage)
        assert len(losses_one) == len(losses_two) == STEPS
        for a, b in zip(losses_one, losses_two, strict=True):
            assert math.isclose(a, b, rel_tol=LOSS_RTOL), (stage, losses_one, losses_two)
    assert two.summary["metrics"]["stage2/global_step"] == STEPS
    assert _max_diff(one.weights("stage1"), two.weights("stage1")) <= WEIGHT_ATOL
    final_one, final_two = one.weights(), two.weights()
    assert _max_diff(final_one, final_two) <= WEIGHT_ATOL
    # Not trivially equal: stage 2 moved the weights away from stage 1.
    assert _max_diff(final_two, two.weights("stage1")) > 1e3 * WEIGHT_ATOL
    assert "Prefix sharing is on" in two.stderr


def _files(root: Path) -> set[str]:
    names = set()
    for path in root.rglob("*"):
        if path.is_file() and "data" not in path.relative_to(root).parts[:2]:
            names.add(str(path.relative_to(root)))
    return names


def test_files_and_logs_are_written_once_and_ranks_agree(runs: tuple[Run, Run]) -> None:
    one, two = runs
    # The same files as one process, but one RNG state per rank in each checkpoint.
    expected = {
        name.replace("rng_state.pth", f"rng_state_{rank}.pth")
        for name in _files(one.out)
        for rank in (0, 1)
    }
    assert _files(two.out) == expected
    assert not [p for p in two.out.rglob("*") if p.suffix == ".tmp"]  # nothing half-written
    for stage in ("stage1", "stage2"):
        checkpoints = sorted((two.out / "checkpoints" / stage).glob("checkpoint-*"))
        assert len(checkpoints) == STEPS
        for checkpoint in checkpoints:
            assert json.loads((checkpoint / CHECKPOINT_COMPLETE).read_text())["num_processes"] == 2
    assert "FSPO" in (two.out / "README.md").read_text(encoding="utf-8")  # our model card
    # The summary and the log lines come once, from rank 0.
    assert two.stdout.count("FSPO adapter:") == 1
    assert two.stderr.count("Training on 12 episodes") == 1
    assert two.stderr.count("FSPO adapter written to") == 1
    # Both ranks ended each stage with the same weights (checked over the processes by train()).
    assert two.stderr.count("All 2 processes hold the same trained weights") == 2
    metrics = two.summary["metrics"]
    assert metrics["stage2/weights_checksum"] == pytest.approx(
        one.summary["metrics"]["stage2/weights_checksum"],
        rel=1e-6,
    )


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the launcher and its workers (torchrun starts each in its own session)."""
    workers = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()  # through Popen, which then reaps it and keeps its exit status
    for worker in workers:
        worker.kill()
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive


def test_a_killed_two_process_run_resumes_to_the_same_adapter(
    setup: Path, runs: tuple[Run, Run]
) -> None:
    _, uninterrupted = runs
    out = setup.parent / "killed"
    script = setup.parent / "slow_train.py"
    script.write_text(SLOW_RUN, encoding="utf-8")
    train = ["train", "--config", str(setup), "--output-dir", str(out)]
    proc = _start(_ddp_launch([str(script), *train]), stdout=subprocess.DEVNULL)
    stage2 = out / "checkpoints" / "stage2"
    deadline = time.monotonic() + 400
    try:
        while not (stage2 / "checkpoint-1" / CHECKPOINT_COMPLETE).is_file():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no complete stage-2 checkpoint was written"
            time.sleep(0.2)
    finally:
        _kill_tree(proc)
    assert proc.returncode != 0
    assert not (out / "adapter_model.safetensors").exists()
    assert json.loads((out / "checkpoints" / STAGE_MARKER).read_text())["completed"] == ["sft"]
    # What a kill during the next save leaves: a newer folder without the completion marker
    # (the model written, the optimizer cut short). It must not be resumed from.
    partial = stage2 / "checkpoint-2"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(stage2 / "checkpoint-1", partial)
    (partial / CHECKPOINT_COMPLETE).unlink()
    (partial / "optimizer.pt").write_bytes(b"")

    resumed = _finish(_start(_ddp_launch(["-m", "fspo_train", *train])), out)
    assert "was not completely written" in resumed.stderr
    metrics = resumed.summary["metrics"]
    assert metrics["stage2/resumed_from_step"] == 1
    assert metrics["stage2/global_step"] == STEPS
    assert "stage1/global_step" not in metrics  # stage 1 was done, not run again
    assert resumed.losses("stage2") == pytest.approx(uninterrupted.losses("stage2"), rel=LOSS_RTOL)
    assert _max_diff(resumed.weights(), uninterrupted.weights()) <= WEIGHT_ATOL
    assert (stage2 / "checkpoint-2" / CHECKPOINT_COMPLETE).is_file()  # written anew
