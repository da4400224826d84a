"""A real vLLM server (its CPU build) for tests and benchmarks: launch line, start, stop.

vLLM lives in its own virtual environment (`bash .ci/build-vllm.sh` builds it and prints its
python): it pins its own torch and transformers. `start_vllm` starts the OpenAI-compatible
server from that python on a free local port with a base model and LoRA adapters, waits until
`/v1/models` lists them all, and returns a `VLLMServer` (stop it with `stop()`).

The server runs with prefix caching, prompt-token details in `usage`, runtime LoRA loading
(`VLLM_ALLOW_RUNTIME_LORA_UPDATING`), a tool-call parser (forced tool choice goes through
guided decoding), and guided decoding without free whitespace. `launch_command` is the exact
command line; docs/serving.md shows it. The base model's head size must be one the CPU
attention kernels accept (64 works: `build_tiny_base_model(..., hidden_size=128, num_heads=2)`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "BASE_MODEL_NAME",
    "ENGINE_ENV",
    "MAX_LORA_RANK",
    "VLLMServer",
    "launch_command",
    "start_vllm",
]

BASE_MODEL_NAME = "fspo-tiny-base"
MAX_LORA_RANK = 16
"""`--max-lora-rank`: `fspo train`'s default rank (16); vLLM accepts 1, 8, 16, 32, 64, ..."""
MAX_MODEL_LEN = 2048

ENGINE_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache; the default asks for far more
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # a shared machine: no core pinning
    "OMP_NUM_THREADS": "1",
}
"""Environment of the server process (on top of the caller's)."""


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

    Args:
        python: The python of the vLLM environment.
        base_dir: The base model's folder.
        adapters: Adapter name -> folder (`--lora-modules`).
        log_path: Where the server's output goes.
        timeout: Seconds to wait for the server to be ready.

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
        process = subprocess.Popen(  # noqa: S603 - our own command line, no shell
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
        f"the timeout on a slow machine.\ncommand: {' '.join(command)}\n"
        f"--- server log (end) ---\n{server.log_tail()}"
    )
    raise RuntimeError(msg)
