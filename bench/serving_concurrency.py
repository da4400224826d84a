"""Client CPU per call under concurrency: `ChatFSPO.ainvoke` vs direct clients, the same body.

A part of `serving_overhead.py` (`--concurrency`). The server is
`bench/fixed_latency_server.py` in its own process (pinned to another core when there is
one): it sleeps `latency` seconds and answers a fixed string on `POST /v1/chat/completions`.
The clients run in this process on one event loop, pinned to one core, so this process's CPU
time (`time.process_time`) divided by the calls is the client's own work per call:

- `AsyncInferenceClient (direct)`: `huggingface_hub.AsyncInferenceClient.chat_completion`
  with the messages `ChatFSPO` sends for the measured user (its K shots), built up front;
- `ChatFSPO (TGIBackend)`: `ainvoke` for that user (reads the K shots from an in-memory
  `PreferenceMemory`, renders them, sends the same messages with the backends' own HTTP
  client, `backends/_json_http.py`, and parses the answer into an `AIMessage`);
- `LangChain floor`: the smallest LangChain chat model (a `BaseChatModel` whose `_agenerate`
  makes the direct call above) through `ainvoke`: what LangChain's own call machinery
  (callbacks, run ids, message objects, its task per call) costs on top of the client, which
  any LangChain chat model pays;
- `AsyncOpenAI (direct)` and `ChatFSPO (OpenAICompatibleBackend)`: the same over the
  OpenAI-compatible route.

For each concurrency (1, 16, 64: that many tasks, each making its share of the calls one
after another) and repeat, the clients take turns in short blocks of calls (a rotating order),
so a change of load on the shared machine hits them alike; CPU per call is summed per client
and repeat. Ratios to the direct hub client are taken per repeat and summarised by their
median and a 95% t-interval over the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["concurrency_bench", "concurrency_markdown", "t95"]

REPO = Path(__file__).resolve().parents[1]
USER = "measured-user@example.com"
ADAPTER = "fspo"
MAX_TOKENS = 16
QUERIES = [f"What would you recommend for situation number {i}?" for i in range(64)]
TGI_DIRECT = "AsyncInferenceClient (direct)"
TGI_FSPO = "ChatFSPO (TGIBackend)"
OPENAI_DIRECT = "AsyncOpenAI (direct)"
OPENAI_FSPO = "ChatFSPO (OpenAICompatibleBackend)"
FLOOR = "LangChain floor (minimal BaseChatModel around the direct hub call)"
BASELINE = TGI_DIRECT
TARGET = 1.3
"""Issue 14: ChatFSPO's client CPU per call within this factor of the direct hub client."""

_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179]


def t95(values: list[float]) -> tuple[float, float]:
    """The 95% t-interval of the mean of `values` (at least 2)."""
    mean = statistics.fmean(values)
    t = _T975[min(len(values) - 2, len(_T975) - 1)]
    half = t * statistics.stdev(values) / len(values) ** 0.5
    return round(mean - half, 4), round(mean + half, 4)


@contextlib.contextmanager
def _server(latency: float) -> Iterator[str]:
    """`bench.fixed_latency_server` in a subprocess (on the last core); yields its base URL."""
    cores = sorted(os.sched_getaffinity(0))
    command = [sys.executable, "-m", "bench.fixed_latency_server", "--latency", str(latency)]
    if len(cores) > 1:
        command = ["taskset", "-c", str(cores[-1]), *command]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        yield base.removesuffix("/v1")
    finally:
        process.terminate()
        process.wait(timeout=10)


def _memory(examples: int) -> PreferenceMemory:
    memory = PreferenceMemory()
    memory.add_many(
        USER,
        [
            {
                "prompt": f"Question {i}: which of these would you pick, and why?",
                "chosen": f"A concise, concrete answer number {i} with an example.",
                "rejected": f"A long, vague answer number {i} full of jargon.",
            }
            for i in range(examples)
        ],
    )
    return memory


Call = Callable[[int], Awaitable[str]]


def _clients(url: str, shots: int, examples: int) -> dict[str, Call]:
    from huggingface_hub import AsyncInferenceClient
    from openai import AsyncOpenAI

    from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend

    fmt = PromptFormat(style="chat", num_shots=shots)
    memory = _memory(examples)
    tgi = ChatFSPO(
        model=ADAPTER,
        base_url=url,
        adapters=[ADAPTER],
        prompt_format=fmt,
        memory=memory,
        max_tokens=MAX_TOKENS,
        temperature=0,
    )
    openai_backend = OpenAICompatibleBackend(url, model="bench", adapters=[ADAPTER])
    oai = tgi.model_copy(update={"backend": openai_backend})
    bodies = [tgi.build_prompt(q, user_id=USER).messages for q in QUERIES]
    hub = AsyncInferenceClient(base_url=url)
    openai_client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)

    async def hub_direct(i: int) -> str:
        out = await hub.chat_completion(
            bodies[i % len(bodies)], model=ADAPTER, max_tokens=MAX_TOKENS, temperature=0
        )
        return str(out.choices[0].message.content)

    async def openai_direct(i: int) -> str:
        out = await openai_client.chat.completions.create(
            messages=bodies[i % len(bodies)],  # type: ignore[arg-type]
            model=ADAPTER,
            max_tokens=MAX_TOKENS,
            temperature=0,
        )
        return str(out.choices[0].message.content)

    async def fspo(llm: ChatFSPO, i: int) -> str:
        return str((await llm.ainvoke(QUERIES[i % len(QUERIES)], user_id=USER)).content)

    floor = _FloorModel(call=hub_direct)

    async def langchain_floor(i: int) -> str:
        return str((await floor.ainvoke(QUERIES[i % len(QUERIES)], i=i)).content)

    return {
        TGI_DIRECT: hub_direct,
        FLOOR: langchain_floor,
        TGI_FSPO: lambda i: fspo(tgi, i),
        OPENAI_DIRECT: openai_direct,
        OPENAI_FSPO: lambda i: fspo(oai, i),
    }


class _FloorModel(BaseChatModel):
    """The least a LangChain chat model can do: `_agenerate` makes one direct client call."""

    call: Any

    @property
    def _llm_type(self) -> str:
        return "langchain-floor"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:  # noqa: ARG002
        text = await self.call(kwargs.get("i", 0))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


async def _run(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """(CPU ms per call, calls per second) of `calls` calls, `concurrency` in flight."""

    async def worker(first: int) -> None:
        for i in range(first, calls, concurrency):
            await call(i)

    start, start_cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
    return cpu / calls * 1e3, calls / wall


async def _measure(
    clients: dict[str, Call], levels: dict[int, int], repeats: int, blocks: int
) -> dict[str, dict[str, list[float]]]:
    """CPU ms per call, per concurrency, client and repeat (blocks of calls in turn)."""
    answers = {name: await call(0) for name, call in clients.items()}
    assert len(set(answers.values())) == 1, answers
    names = list(clients)
    cpu: dict[str, dict[str, list[float]]] = {}
    for concurrency, calls in levels.items():
        level = cpu.setdefault(str(concurrency), {name: [] for name in names})
        for name in names:
            await _run(clients[name], concurrency * 2, concurrency)  # warm-up, connections
        for repeat in range(repeats):
            total = dict.fromkeys(names, 0.0)
            for block in range(blocks):
                turn = (repeat * blocks + block) % len(names)
                for name in names[turn:] + names[:turn]:
                    ms, _rate = await _run(clients[name], calls, concurrency)
                    total[name] += ms
            for name in names:
                level[name].append(round(total[name] / blocks, 4))
            print(
                f"concurrency {concurrency} repeat {repeat + 1}/{repeats}: "
                + ", ".join(f"{n} {level[n][-1]:.3f} ms" for n in names),
                flush=True,
            )
    return cpu


def concurrency_bench(
    *,
    latency: float,
    repeats: int,
    blocks: int,
    calls: dict[int, int],
    shots: int,
    examples: int,
) -> dict[str, Any]:
    """Client CPU per call of every client at every concurrency, `repeats` times."""
    cores = sorted(os.sched_getaffinity(0))
    with _server(latency) as url:
        os.sched_setaffinity(0, {cores[0]})
        try:
            clients = _clients(url, shots, examples)
            raw = asyncio.run(_measure(clients, calls, repeats, blocks))
        finally:
            os.sched_setaffinity(0, cores)
    summary: dict[str, Any] = {}
    for level, per_client in raw.items():
        rows: dict[str, Any] = {}
        for name in clients:
            values = per_client[name]
            ratios = [v / b for v, b in zip(values, per_client[BASELINE], strict=True)]
            rows[name] = {
                "cpu_ms_per_call_median": round(statistics.median(values), 4),
                "cpu_ms_per_call_ci95": t95(values),
                "ratio_to_hub_direct_median": round(statistics.median(ratios), 3),
                "ratio_to_hub_direct_ci95": t95(ratios),
            }
        direct = per_client[OPENAI_DIRECT]
        ratios = [f / d for f, d in zip(per_client[OPENAI_FSPO], direct, strict=True)]
        rows[OPENAI_FSPO]["ratio_to_openai_direct_median"] = round(statistics.median(ratios), 3)
        rows[OPENAI_FSPO]["ratio_to_openai_direct_ci95"] = t95(ratios)
        summary[level] = rows
    return {
        "setup": {
            "server": (
                f"bench/fixed_latency_server.py in a subprocess, latency {latency * 1e3:g} ms, "
                "POST /v1/chat/completions, not streamed"
            ),
            "client_pinning": f"this process on core {cores[0]}, the server on core {cores[-1]}",
            "shots": shots,
            "examples_for_user": examples,
            "max_tokens": MAX_TOKENS,
            "repeats": repeats,
            "blocks_per_repeat": blocks,
            "calls_per_block": {str(k): v for k, v in calls.items()},
            "cpu_clock": "time.process_time of the client process, per call",
        },
        "raw": raw,
        "summary": summary,
    }


def concurrency_markdown(result: dict[str, Any]) -> list[str]:
    """The section of the report for `concurrency_bench`'s result."""
    setup = result["setup"]
    lines = [
        "## Client CPU per call under concurrency",
        "",
        (
            f"Server: {setup['server']}. Clients: {setup['client_pinning']}; one event loop. "
            f"ChatFSPO answers the measured user with K={setup['shots']} shots from an "
            f"in-memory `PreferenceMemory` ({setup['examples_for_user']} examples); the direct "
            "clients send the same messages (built up front). Per concurrency and repeat: "
            f"{setup['blocks_per_repeat']} blocks of {setup['calls_per_block']} calls (by "
            "concurrency) per client, the clients in turn, after a warm-up of twice the "
            f"concurrency. {setup['repeats']} repeats; CPU = {setup['cpu_clock']}. Median over "
            "repeats [95% t-interval]; ratios per repeat, to the direct `AsyncInferenceClient`."
        ),
        "",
        "| concurrency | client | CPU ms/call | 95% CI | ratio to direct hub | 95% CI |",
        "|---:|---|---:|---|---:|---|",
    ]
    for level, rows in result["summary"].items():
        for name, row in rows.items():
            lines.append(
                f"| {level} | {name} | {row['cpu_ms_per_call_median']:.3f} "
                f"| {list(row['cpu_ms_per_call_ci95'])} "
                f"| {row['ratio_to_hub_direct_median']:.2f}x "
                f"| {list(row['ratio_to_hub_direct_ci95'])} |"
            )
    lines += ["", f"Target (issue 14): ChatFSPO within {TARGET}x of the direct hub client.", ""]
    for level, rows in result["summary"].items():
        verdicts = [
            f"{name} {rows[name]['ratio_to_hub_direct_median']:.2f}x "
            + ("met" if rows[name]["ratio_to_hub_direct_median"] <= TARGET else "**not met**")
            for name in (TGI_FSPO, OPENAI_FSPO)
        ]
        lines.append(f"- concurrency {level}: " + "; ".join(verdicts))
    lines += ["", "ChatFSPO (OpenAICompatibleBackend) / AsyncOpenAI (direct), per repeat:", ""]
    for level, rows in result["summary"].items():
        row = rows[OPENAI_FSPO]
        lines.append(
            f"- concurrency {level}: {row['ratio_to_openai_direct_median']:.2f}x "
            f"{list(row['ratio_to_openai_direct_ci95'])}"
        )
    lines.append("")
    return lines
