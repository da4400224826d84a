"""A real vLLM server (its CPU build) serving tiny FSPO adapters, one per test session.

vLLM lives in its own virtual environment (`bash .ci/build-vllm.sh` builds it and prints its
python). `FSPO_VLLM_PYTHON` names that python; without it the vLLM tests skip, and with
`FSPO_REQUIRE_VLLM=1` (CI) a missing or broken vLLM fails them instead.

One server is started for the whole session (startup takes one to three minutes on two cores):
a tiny random Llama whose head size (64) the CPU attention kernels accept, and these adapters:

- `alpha`, `beta`: `style="chat"` LoRA adapters with different random weights;
- `paper`: a `style="paper"` adapter (raw text through `/v1/completions`);
- `trained-chat`, `trained-paper`: adapters written by `fspo train` (the CLI, in a subprocess).

The server runs with prefix caching, prompt-token details in `usage`, runtime LoRA loading
(`VLLM_ALLOW_RUNTIME_LORA_UPDATING`), a tool-call parser (forced tool choice goes through
guided decoding), and guided decoding without free whitespace. `launch_command` is the exact
command line; docs/serving.md shows it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

PYTHON_ENV = "FSPO_VLLM_PYTHON"
REQUIRE_ENV = "FSPO_REQUIRE_VLLM"
STARTUP_TIMEOUT_ENV = "FSPO_VLLM_STARTUP_TIMEOUT"
DEFAULT_STARTUP_TIMEOUT_S = 600.0
BASE_MODEL_NAME = "fspo-tiny-base"
MAX_LORA_RANK = 16
"""`--max-lora-rank`: `fspo train`'s default rank (16); vLLM accepts 1, 8, 16, 32, 64, ..."""
MAX_MODEL_LEN = 2048
RANDOM_ADAPTERS = {"alpha": ("chat", 1), "beta": ("chat", 2), "paper": ("paper", 3)}
"""Adapter name -> (prompt style, seed of its random LoRA weights)."""
TRAINED_STYLES = ("chat", "paper")
"""`fspo train` writes one adapter per style, served as `trained-<style>`."""

ENGINE_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache; the default asks for far more
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # a shared machine: no core pinning
    "OMP_NUM_THREADS": "1",
}


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


def launch_command(
    python: str, base_dir: Path, adapters: Mapping[str, Path], *, port: int
) -> list[str]:
    """The command line that starts the server (run with `ENGINE_ENV` in the environment)."""
    lora_modules = [f"{name}={path}" for name, path in adapters.items()]
    return [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        str(base_dir),
        "--served-model-name",
        BASE_MODEL_NAME,
        "--dtype",
        "float32",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--enable-lora",
        "--max-lora-rank",
        str(MAX_LORA_RANK),
        "--max-loras",
        "4",
        "--lora-modules",
        *lora_modules,
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "pythonic",
        "--structured-outputs-config",
        json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class VLLMServer:
    """A running vLLM server process and what it serves."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    command: list[str]
    base_dir: Path
    adapter_dirs: dict[str, Path]
    startup_s: float = 0.0
    runtime_adapters: set[str] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible root (`.../v1`)."""
        return f"{self.url}/v1"

    def log_tail(self, lines: int = 60) -> str:
        """The last `lines` lines of the server's log."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        """The whole server log so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def served(self) -> list[str]:
        """The model ids `/v1/models` lists now."""
        response = httpx.get(f"{self.base_url}/models", timeout=30)
        response.raise_for_status()
        return [str(item["id"]) for item in response.json()["data"]]

    def stop(self) -> None:
        """Stop the server and every process it started (its own process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def start_vllm(
    python: str,
    base_dir: Path,
    adapters: Mapping[str, Path],
    log_path: Path,
    *,
    timeout: float,
) -> VLLMServer:
    """Start the server and wait until `/v1/models` lists every adapter.

    Raises:
        RuntimeError: The process exited, or was not ready within `timeout` seconds (it is
            stopped then); the message carries the end of the server log.
    """
    port = _free_port()
    command = launch_command(python, base_dir, adapters, port=port)
    env = {**os.environ, **ENGINE_ENV}
    env.pop("PYTHONPATH", None)  # the vLLM environment must not import this checkout's venv
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = VLLMServer(
        url=f"http://127.0.0.1:{port}",
        process=process,
        log_path=log_path,
        command=command,
        base_dir=base_dir,
        adapter_dirs=dict(adapters),
    )
    wanted = {BASE_MODEL_NAME, *adapters}
    last_error = "no answer yet"
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            msg = (
                f"vLLM exited with code {process.returncode} during startup.\n"
                f"command: {' '.join(command)}\n--- server log (end) ---\n{server.log_tail()}"
            )
            raise RuntimeError(msg)
        try:
            missing = wanted - set(server.served())
            if not missing:
                server.startup_s = time.monotonic() - started
                return server
            last_error = f"/v1/models does not list {sorted(missing)} yet"
        except httpx.HTTPError as e:
            last_error = f"{type(e).__name__}: {e}"
        time.sleep(2)
    server.stop()
    msg = (
        f"vLLM was not ready after {timeout:.0f} s ({last_error}); raise "
        f"{STARTUP_TIMEOUT_ENV} on a slow machine.\ncommand: {' '.join(command)}\n"
        f"--- server log (end) ---\n{server.log_tail()}"
    )
    raise RuntimeError(msg)


def preference_records(users: Sequence[str] = ("ada", "bo", "cy"), n: int = 6) -> list[object]:
    """A few per-user preference records, enough for `fspo train` on the tiny model."""
    from fspo_train.records import PreferenceRecord

    return [
        PreferenceRecord(
            user_id=user,
            question=f"Question {i}: which film should {user} watch tonight?",
            chosen=f"{user} would enjoy film number {i}: quiet, clever and short.",
            rejected=f"Any loud sequel, {i}.",
            question_id=f"q{i}",
        )
        for user in users
        for i in range(n)
    ]


def train_adapter(base_dir: Path, out_dir: Path, style: str) -> Path:
    """Run the `fspo train` CLI (a subprocess, one torch thread) on the tiny model."""
    from fspo_train.loaders import write_records

    out_dir.mkdir(parents=True, exist_ok=True)
    data = write_records(out_dir.parent / f"prefs-{style}.jsonl", preference_records())
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
    from fspo_train.tiny import build_tiny_adapter, build_tiny_base_model
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
        require_vllm(str(e))
        raise  # not reached: require_vllm skips or fails
    sys.stderr.write(f"\n[vllm] server ready in {server.startup_s:.0f} s\n")
    try:
        yield server
    finally:
        server.stop()
