"""The session's real vLLM server (CPU build) serving tiny FSPO adapters, as a pytest fixture.

`FSPO_VLLM_PYTHON` names the python of vLLM's environment (`bash .ci/build-vllm.sh` builds it
and prints it); without it the vLLM tests skip, and with `FSPO_REQUIRE_VLLM=1` (CI) a missing
or broken vLLM fails them instead. The server itself is started by
`fspo_train.testing.vllm.start_vllm` (the launch line docs/serving.md shows).

One server is started for the whole session (startup takes one to three minutes on two cores):
a tiny random Llama whose head size (64) the CPU attention kernels accept, and these adapters:

- `alpha`, `beta`: `style="chat"` LoRA adapters with different random weights;
- `paper`: a `style="paper"` adapter (raw text through `/v1/completions`);
- `trained-chat`, `trained-paper`: adapters written by `fspo train` (the CLI, in a subprocess).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fspo_train.testing.vllm import VLLMServer, start_vllm

PYTHON_ENV = "FSPO_VLLM_PYTHON"
REQUIRE_ENV = "FSPO_REQUIRE_VLLM"
STARTUP_TIMEOUT_ENV = "FSPO_VLLM_STARTUP_TIMEOUT"
DEFAULT_STARTUP_TIMEOUT_S = 600.0
RANDOM_ADAPTERS = {"alpha": ("chat", 1), "beta": ("chat", 2), "paper": ("paper", 3)}
"""Adapter name -> (prompt style, seed of its random LoRA weights)."""
TRAINED_STYLES = ("chat", "paper")
"""`fspo train` writes one adapter per style, served as `trained-<style>`."""


def require_vllm(reason: str) -> None:
    """Skip with `reason`, or fail under `FSPO_REQUIRE_VLLM=1`."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def vllm_python() -> str:
    """The python of the vLLM environment, from `FSPO_VLLM_PYTHON` (skip or fail if unusable)."""
    python = os.environ.get(PYTHON_ENV)
    if not python:
        require_vllm(f"{PYTHON_ENV} is not set (bash .ci/build-vllm.sh prints the python to use)")
    assert python is not None
    if not Path(python).is_file():
        require_vllm(f"{PYTHON_ENV}={python} is not a file; run bash .ci/build-vllm.sh")
    return python


def train_adapter(base_dir: Path, out_dir: Path, style: str) -> Path:
    """Run the `fspo train` CLI (a subprocess, one torch thread) on the tiny model."""
    from fspo_train.data.loaders import write_records
    from tests.train.records import toy_records

    out_dir.mkdir(parents=True, exist_ok=True)
    data = write_records(out_dir.parent / f"prefs-{style}.jsonl", toy_records())
    command = [
        sys.executable,
        "-m",
        "fspo_train",
        "train",
        "--model-name-or-path",
        str(base_dir),
        "--train-file",
        str(data),
        "--output-dir",
        str(out_dir),
        "--style",
        style,
        "--num-shots",
        "2",
        "--max-steps",
        "2",
        "--per-device-train-batch-size",
        "2",
        "--warmup-steps",
        "0",
        "--max-length",
        "256",
        "--learning-rate",
        "1e-2",
        "--sft-learning-rate",
        "1e-2",
        "--use-cpu",
        "--no-gradient-checkpointing",
        "--holdout-users",
        "0",
        "--holdout-question-fraction",
        "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, env=env, check=False
    )
    if done.returncode != 0:
        output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        msg = f"fspo train failed (exit {done.returncode}):\n{output}"
        raise RuntimeError(msg)
    return out_dir


def build_stack(root: Path) -> tuple[Path, dict[str, Path]]:
    """The tiny base model and every adapter the session's server loads."""
    from fspo_train.testing import build_tiny_adapter, build_tiny_base_model
    from langchain_fspo.prompt_format import PromptFormat

    base = build_tiny_base_model(root / "base", hidden_size=128, num_heads=2, seed=0)
    adapters: dict[str, Path] = {}
    for name, (style, seed) in RANDOM_ADAPTERS.items():
        fmt = None
        if style == "paper":
            fmt = PromptFormat(style="paper", num_shots=4, base_model_id=str(base.resolve()))
        adapters[name] = build_tiny_adapter(base, root / name, prompt_format=fmt, seed=seed)
    for style in TRAINED_STYLES:
        adapters[f"trained-{style}"] = train_adapter(base, root / f"trained-{style}", style)
    return base, adapters


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """The session's vLLM server (built and started on first use, stopped at the end).

    Registered once, in `tests/integration_tests/conftest.py`: a test module that imported it
    would get a second server.
    """
    python = vllm_python()
    root = tmp_path_factory.mktemp("vllm")
    base, adapters = build_stack(root)
    timeout = float(os.environ.get(STARTUP_TIMEOUT_ENV, DEFAULT_STARTUP_TIMEOUT_S))
    try:
        server = start_vllm(python, base, adapters, root / "server.log", timeout=timeout)
    except RuntimeError as e:
        require_vllm(f"{e}\n(on a slow machine raise {STARTUP_TIMEOUT_ENV}, in seconds)")
        raise  # not reached: require_vllm skips or fails
    sys.stderr.write(f"\n[vllm] server ready in {server.startup_s:.0f} s\n")
    try:
        yield server
    finally:
        server.stop()
