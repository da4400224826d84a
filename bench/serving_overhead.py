"""What `ChatFSPO` adds to every call on top of the backend's own generation time.

Two measurements, both with an engine that answers instantly (a fixed string):

1. In process: `ChatFSPO` over an `InstantBackend`, so everything measured is ChatFSPO's
   work: resolving the user, selecting the K shots from a SQLite `PreferenceMemory` (10,000
   examples for the measured user among 100,000 users), rendering the `PromptFormat`, parsing
   the completion, and LangChain's own `invoke` machinery (callbacks, run ids).
2. Over HTTP (the TGI path): a server that answers instantly with a fixed string on TGI's
   `POST /v1/chat/completions` (`bench/fixed_latency_server.py`, started in this process on
   127.0.0.1) answered by three clients with the same question: a direct
   `huggingface_hub.InferenceClient.chat_completion` call (the baseline),
   `langchain-huggingface`'s `ChatHuggingFace(llm=HuggingFaceEndpoint(endpoint_url=...))`, and
   `ChatFSPO` (`TGIBackend`) for the measured user (K shots from the same SQLite memory, so
   its request is bigger) and for an unknown user (zero-shot, about the same body as the
   others). A direct call that sends ChatFSPO's own K-shot messages isolates ChatFSPO's work
   from the cost of the bigger body. Clients are timed in interleaved blocks so that a change
   of load on the machine hits all of them alike; sync `invoke` and async `ainvoke`. The
   server runs in this process, so the CPU-time columns of this part count only the calling
   thread (`time.thread_time`), not the server's threads.

Run (about a minute to build the database, then about three minutes of measuring):

    python bench/serving_overhead.py            # writes bench/results/serving_overhead.{json,md}
    python bench/serving_overhead.py --users 2000 --calls 300 --tgi-calls 300 --out /tmp/q

Budget (in process): median under 2 ms, p99 under 10 ms per call.

One script, several sections (`--concurrency`, `--stream`, `--local-batch`, `--vllm`), each a
function here or in a module beside it: over the house's ~400 lines because the command line
and the result writers of every section are kept in the one file a reader runs.
"""

# InstantBackend keeps the Backend signatures and deliberately ignores the arguments.
# ruff: noqa: ARG002

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.fixed_latency_server`
from bench.fixed_latency_server import FIXED_ANSWER, FixedLatencyServer
from bench.recorded import recorded_command
from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.backends.tgi import TGIBackend
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt

REPO = Path(__file__).resolve().parents[1]
TARGET = "measured-user@example.com"
BUDGET_MEDIAN_MS = 2.0
BUDGET_P99_MS = 10.0
QUERIES = [f"What would you recommend for situation number {i}?" for i in range(64)]
ADAPTER = "fspo"
MAX_TOKENS = 16
DIRECT = "InferenceClient.chat_completion (direct)"
DIRECT_SAME_BODY = "InferenceClient.chat_completion, ChatFSPO's K-shot messages"
HF = "ChatHuggingFace"
FSPO = "ChatFSPO (K shots)"
FSPO_ZERO = "ChatFSPO (unknown user, zero-shot)"


class InstantBackend(Backend):
    """A backend whose generation takes no time: it returns a fixed answer."""

    name: ClassVar[str] = "instant"

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        return Generation(
            text=FIXED_ANSWER,
            finish_reason="stop",
            input_tokens=len(prompt.text) // 4,
            output_tokens=7,
            model_name=adapter,
        )

    def stream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Iterator[GenerationChunk]:
        yield GenerationChunk(text="A fixed answer.", finish_reason="stop")

    async def agenerate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        # Server backends are natively async; no worker thread here either.
        return self.generate(prompt, adapter=adapter, params=params)

    def count_tokens(self, text: str) -> int:
        return len(text) // 4


def _populate(path: Path, users: int, examples: int) -> None:
    """Fill the SQLite memory at `path` (reused when it already holds this population)."""
    marker = path.with_suffix(".populated.json")
    wanted = {"users": users, "examples": examples}
    if path.exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"Reusing {path}")
        return
    path.unlink(missing_ok=True)
    with PreferenceMemory.sqlite(path) as memory:
        memory.add_many(
            TARGET,
            [
                {
                    "prompt": f"Question {i}: which of these would you pick, and why?",
                    "chosen": f"A concise, concrete answer number {i} with an example.",
                    "rejected": f"A long, vague answer number {i} full of jargon.",
                }
                for i in range(examples)
            ],
        )
        for u in tqdm(range(users - 1), desc="other users", unit="user", mininterval=2):
            memory.add_many(
                f"user-{u}",
                [{"prompt": f"User {u} question?", "chosen": "Yes.", "rejected": "No."}],
            )
    marker.write_text(json.dumps(wanted))


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 4)


def _summary(wall: list[float], cpu: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(wall), 4),
        "p99_ms": _p99(wall),
        "mean_ms": round(statistics.fmean(wall), 4),
        "max_ms": round(max(wall), 4),
        "cpu_median_ms": round(statistics.median(cpu), 4),
        "cpu_p99_ms": _p99(cpu),
        "calls": len(wall),
    }


def _time(fn: Callable[[int], Any], calls: int, warmup: int) -> dict[str, float]:
    for i in range(warmup):
        fn(i)
    wall, cpu = [], []
    for i in range(calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(i)
        cpu.append((time.process_time() - start_cpu) * 1e3)
        wall.append((time.perf_counter() - start) * 1e3)
    return _summary(wall, cpu)


def _atime(fn: Callable[[int], Any], calls: int, warmup: int) -> dict[str, float]:
    loop = asyncio.new_event_loop()
    try:
        return _time(lambda i: loop.run_until_complete(fn(i)), calls, warmup)
    finally:
        loop.close()


def _interleaved(
    cases: dict[str, Callable[[int], Any]], calls: int, warmup: int, block: int
) -> dict[str, dict[str, float]]:
    """Time every case `calls` times, in rounds of `block` calls per case (wall, thread CPU).

    Interleaving spreads a change of load on the (shared) machine over all cases alike.
    """
    for fn in cases.values():
        for i in range(warmup):
            fn(i)
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    rounds = -(-calls // block)
    for r in tqdm(range(rounds), desc="TGI rounds", unit="round", mininterval=5):
        for name, fn in cases.items():
            for i in range(r * block, min(calls, (r + 1) * block)):
                start, start_cpu = time.perf_counter(), time.thread_time()
                fn(i)
                cpu[name].append((time.thread_time() - start_cpu) * 1e3)
                wall[name].append((time.perf_counter() - start) * 1e3)
    return {name: _summary(wall[name], cpu[name]) for name in cases}


def _answer_text(output: Any) -> str:
    """The answer of a LangChain message or of a hub `ChatCompletionOutput`."""
    if hasattr(output, "content"):
        return str(output.content)
    return str(output.choices[0].message.content)


def _request_of(server: FixedLatencyServer, fn: Callable[[int], Any]) -> dict[str, Any]:
    """What one call of `fn` sends: body bytes, message count, `model`, adapter TGI would serve."""
    server.clear()
    fn(0)
    [request] = server.requests
    body = request.body
    server.clear()
    return {
        "body_bytes": request.content_length,
        "messages": len(body["messages"]),
        "model": body.get("model"),
        # TGI serves the adapter `model` names when it was loaded at launch, else the base model.
        "served_adapter": ADAPTER if body.get("model") == ADAPTER else None,
    }


def _overheads(results: dict[str, dict[str, float]], baseline: str) -> dict[str, dict[str, float]]:
    base = results[baseline]
    return {
        name: {
            "median_ms": round(r["median_ms"] - base["median_ms"], 4),
            "p99_ms": round(r["p99_ms"] - base["p99_ms"], 4),
            "cpu_median_ms": round(r["cpu_median_ms"] - base["cpu_median_ms"], 4),
            "cpu_p99_ms": round(r["cpu_p99_ms"] - base["cpu_p99_ms"], 4),
        }
        for name, r in results.items()
    }


def _tgi_bench(memory: PreferenceMemory, args: argparse.Namespace) -> dict[str, Any]:
    """The TGI path: three clients against one instant server on TGI's chat route."""
    from huggingface_hub import AsyncInferenceClient, InferenceClient
    from langchain_huggingface import ChatHuggingFace, HuggingFaceEndpoint

    fmt = PromptFormat(style="chat", num_shots=args.shots)
    server = FixedLatencyServer(latency_s=0.0)
    loop = asyncio.new_event_loop()
    with server:
        fspo = ChatFSPO(
            model=ADAPTER,
            base_url=server.url,
            adapters=[ADAPTER],
            prompt_format=fmt,
            memory=memory,
            max_tokens=MAX_TOKENS,
            temperature=0,
        )
        hf = ChatHuggingFace(
            # `model` is filled in from `endpoint_url` by its validator.
            llm=HuggingFaceEndpoint(  # type: ignore[call-arg]
                endpoint_url=server.url, task="conversational", max_new_tokens=MAX_TOKENS
            ),
        )
        client = InferenceClient(base_url=server.url)
        aclient = AsyncInferenceClient(base_url=server.url)
        same_body = [fspo.build_prompt(question, user_id=TARGET).messages for question in QUERIES]
        assert all(len(m) >= 1 for m in same_body)

        def q(i: int) -> str:
            return QUERIES[i % len(QUERIES)]

        def direct(messages: list[dict[str, Any]]) -> Any:
            return client.chat_completion(
                messages, model=ADAPTER, max_tokens=MAX_TOKENS, temperature=0
            )

        async def adirect(messages: list[dict[str, Any]]) -> Any:
            return await aclient.chat_completion(
                messages, model=ADAPTER, max_tokens=MAX_TOKENS, temperature=0
            )

        def run(coro_fn: Callable[[int], Any]) -> Callable[[int], Any]:
            return lambda i: loop.run_until_complete(coro_fn(i))

        sync_cases: dict[str, Callable[[int], Any]] = {
            DIRECT: lambda i: direct([{"role": "user", "content": q(i)}]),
            DIRECT_SAME_BODY: lambda i: direct(same_body[i % len(QUERIES)]),
            HF: lambda i: hf.invoke(q(i)),
            FSPO: lambda i: fspo.invoke(q(i), user_id=TARGET),
            FSPO_ZERO: lambda i: fspo.invoke(q(i), user_id="nobody"),
        }
        async_cases: dict[str, Callable[[int], Any]] = {
            DIRECT: run(lambda i: adirect([{"role": "user", "content": q(i)}])),
            DIRECT_SAME_BODY: run(lambda i: adirect(same_body[i % len(QUERIES)])),
            HF: run(lambda i: hf.ainvoke(q(i))),
            FSPO: run(lambda i: fspo.ainvoke(q(i), user_id=TARGET)),
            FSPO_ZERO: run(lambda i: fspo.ainvoke(q(i), user_id="nobody")),
        }
        requests = {name: _request_of(server, fn) for name, fn in sync_cases.items()}
        answers = {name: _answer_text(fn(0)) for name, fn in sync_cases.items()}
        assert len(set(answers.values())) == 1, answers
        server.clear()
        load_before = [round(x, 2) for x in os.getloadavg()]
        modes: dict[str, dict[str, dict[str, float]]] = {}
        for mode, cases in (("sync invoke", sync_cases), ("async ainvoke", async_cases)):
            modes[mode] = _interleaved(cases, args.tgi_calls, args.warmup, args.block)
            for name, r in modes[mode].items():
                print(
                    f"TGI {mode:13s} {name:60s} median {r['median_ms']:.3f} ms  "
                    f"p99 {r['p99_ms']:.3f} ms"
                )
        assert isinstance(fspo.backend, TGIBackend), fspo.backend
        loop.run_until_complete(fspo.backend.aclose())
    loop.close()
    return {
        "setup": {
            "server": (
                "bench/fixed_latency_server.py (TGI's POST /v1/chat/completions shape, "
                "instant fixed answer), 127.0.0.1, plain HTTP/1.1, in this process"
            ),
            "route": "POST /v1/chat/completions, not streamed",
            "answer": answers[DIRECT],
            "max_tokens": MAX_TOKENS,
            "num_shots": args.shots,
            "calls_per_client": args.tgi_calls,
            "warmup_per_client": args.warmup,
            "interleaved_block": args.block,
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_clock": "time.thread_time of the calling thread (the server's threads excluded)",
            "requests": requests,
        },
        "results": modes,
        "overhead_vs_direct": {mode: _overheads(r, DIRECT) for mode, r in modes.items()},
        "chatfspo_overhead_vs_direct_same_body": {
            mode: _overheads(r, DIRECT_SAME_BODY)[FSPO] for mode, r in modes.items()
        },
    }


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _versions() -> dict[str, str]:
    names = [
        "langchain-core",
        "langgraph",
        "langgraph-checkpoint-sqlite",
        "pydantic",
        "huggingface-hub",
        "langchain-huggingface",
        "httpx",
    ]
    versions = {name: metadata.version(name) for name in names}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    versions["langchain-fspo (git)"] = commit
    return versions


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _tgi_markdown(tgi: dict[str, Any]) -> list[str]:
    setup = tgi["setup"]
    requests = setup["requests"]
    lines = [
        "## The TGI path: ChatFSPO vs. a direct InferenceClient call vs. ChatHuggingFace",
        "",
        (
            f"One server on TGI's chat route (`bench/fixed_latency_server.py`, 127.0.0.1, "
            f"started in the bench's process), which answers {setup['answer']!r} at once "
            f"to every request; `POST /v1/chat/completions`, not streamed, "
            f"max_tokens={setup['max_tokens']}. Every client asks the same question "
            f"(64 questions in turn). ChatFSPO (`TGIBackend`) answers the measured user "
            f"with K={setup['num_shots']} shots from the SQLite memory above, and an unknown "
            f"user zero-shot. `ChatHuggingFace(llm=HuggingFaceEndpoint(endpoint_url=..., "
            f'task="conversational"))` is langchain-huggingface\'s client. '
            f"{setup['calls_per_client']:,} timed calls per client and mode after "
            f"{setup['warmup_per_client']} warm-up calls, interleaved in rounds of "
            f"{setup['interleaved_block']} calls per client (so load changes hit all alike)."
        ),
        "",
        (
            f"Load average (1/5/15 min) before: {setup['load_average_before']}, after: "
            f"{setup['load_average_after']}. CPU columns: CPU time of the calling thread "
            "only (the server's threads excluded), i.e. the client's own work; wall clock "
            "includes the server and waiting for a core on this shared 2-core machine. "
            "Overhead = this client minus the direct InferenceClient call (question only), "
            "median minus median and p99 minus p99 (a difference of two tails: small or "
            'negative p99 differences are noise). `ChatHuggingFace` sends `model="dummy"` '
            "(huggingface_hub's placeholder for an endpoint URL), so TGI runs the base model "
            "for it: it cannot pick an adapter; with the instant engine that costs nothing."
        ),
        "",
        "Requests as sent (one call each):",
        "",
        "| client | body bytes | messages | `model` | adapter served |",
        "|---|---:|---:|---|---|",
        *(
            f"| {name} | {r['body_bytes']:,} | {r['messages']} | `{r['model']}` "
            f"| {r['served_adapter'] or 'base model'} |"
            for name, r in requests.items()
        ),
        "",
    ]
    for mode, results in tgi["results"].items():
        over = tgi["overhead_vs_direct"][mode]
        lines += [
            f"### {mode}",
            "",
            (
                "| client | median ms | p99 ms | CPU median ms | CPU p99 ms "
                "| overhead median ms | overhead p99 ms | CPU overhead median ms |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {name} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} "
                f"| {r['cpu_median_ms']:.3f} | {r['cpu_p99_ms']:.3f} "
                f"| {over[name]['median_ms']:+.3f} | {over[name]['p99_ms']:+.3f} "
                f"| {over[name]['cpu_median_ms']:+.3f} |"
                for name, r in results.items()
            ),
            "",
        ]
        same = tgi["chatfspo_overhead_vs_direct_same_body"][mode]
        lines += [
            (
                f"ChatFSPO (K shots) minus a direct call sending the same K-shot messages "
                f"({mode}): median {same['median_ms']:+.3f} ms, p99 {same['p99_ms']:+.3f} ms, "
                f"CPU median {same['cpu_median_ms']:+.3f} ms, CPU p99 "
                f"{same['cpu_p99_ms']:+.3f} ms."
            ),
            "",
        ]
    return lines


def _write_report(out: Path, stem: str, report: dict[str, Any], lines: list[str]) -> None:
    """Write `<stem>.json` (the report) and `<stem>.md` (`lines`) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stem}.md").write_text("\n".join(lines))
    print(f"Wrote {out / stem}.json and .md")


def _vllm_row(args: argparse.Namespace) -> int:
    """Run only the real-engine row and write `serving_overhead_vllm.{json,md}`."""
    from bench.vllm_overhead import python_from_env, vllm_bench, vllm_markdown

    python = python_from_env(args.vllm_python)
    engine = vllm_bench(
        python,
        calls=args.vllm_calls,
        concurrent_calls=args.vllm_concurrent_calls,
        shots=args.shots,
        max_tokens=8,
    )
    report = {
        "benchmark": "serving_overhead_vllm",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": _versions(),
        **engine,
    }
    lines = [
        "# Serving overhead on a real engine (vLLM CPU build)",
        "",
        (
            f"{report['date']}; {report['machine']['cpu']}, {report['machine']['cores']} cores; "
            f"git {report['versions']['langchain-fspo (git)']}. Command: "
            "`python bench/serving_overhead.py --vllm`."
        ),
        "",
        *vllm_markdown(engine),
    ]
    print("\n".join(lines))
    _write_report(args.out, "serving_overhead_vllm", report, lines)
    return 0


def _header(report: dict[str, Any], title: str, command: str) -> list[str]:
    machine, versions = report["machine"], report["versions"]
    return [
        f"# {title}",
        "",
        (
            f"{report['date']} on {machine['cpu']} ({machine['cores']} cores, shared; load "
            f"average at the end {machine['load_average_1_5_15']}), Python {machine['python']}; "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + f". Command: `{command}`."
        ),
        "",
    ]


def _add_perf_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the concurrency (`--concurrency`) and long-stream (`--stream`) parts."""
    parser.add_argument(
        "--concurrency",
        action="store_true",
        help="only client CPU per call at concurrency 1/16/64 (bench/serving_concurrency.py)",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="only the parse time of a long stream (bench/stream_parse.py)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="--concurrency/--stream repeats")
    parser.add_argument("--blocks", type=int, default=3, help="--concurrency: blocks per repeat")
    parser.add_argument("--block-calls-1", type=int, default=30)
    parser.add_argument("--block-calls-16", type=int, default=96)
    parser.add_argument("--block-calls-64", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.002, help="--concurrency: server s")
    parser.add_argument("--stream-tokens", type=int, default=200_000)


def _concurrency_part(args: argparse.Namespace) -> int:
    """Client CPU per call at concurrency 1/16/64: `serving_overhead_concurrency.{json,md}`."""
    from bench.serving_concurrency import concurrency_bench, concurrency_markdown

    result = concurrency_bench(
        latency=args.latency,
        repeats=args.repeats,
        blocks=args.blocks,
        calls={1: args.block_calls_1, 16: args.block_calls_16, 64: args.block_calls_64},
        shots=args.shots,
        examples=200,
    )
    versions = {**_versions(), "openai": metadata.version("openai")}
    title = "ChatFSPO client CPU per call under concurrency"
    return _publish(
        args, "serving_overhead_concurrency", title, versions, result, concurrency_markdown(result)
    )


def _stream_part(args: argparse.Namespace) -> int:
    """A long stream's parse time: `serving_overhead_stream.{json,md}`."""
    from bench.stream_parse import stream_bench, stream_markdown

    result = stream_bench(
        tokens=args.stream_tokens,
        repeats=args.repeats,
        parser_sizes=[25_000, 50_000, 100_000, 200_000],
    )
    title = "ChatFSPO: parse time of a long stream"
    return _publish(
        args, "serving_overhead_stream", title, _versions(), result, stream_markdown(result)
    )


def _local_batch_row(args: argparse.Namespace) -> int:
    """Run only the in-process batching section: `serving_overhead_local_batch.{json,md}`."""
    from bench.local_batch import local_batch_bench, local_batch_markdown

    data = local_batch_bench(
        rounds=args.local_rounds,
        max_tokens=args.local_max_tokens,
        hidden=args.local_hidden,
        layers=args.local_layers,
        shots=args.shots,
    )
    versions = {**_versions(), **_torch_versions()}
    title = "Serving overhead: `ChatFSPO.batch` on the in-process backend"
    return _publish(
        args, "serving_overhead_local_batch", title, versions, data, local_batch_markdown(data)
    )


def _publish(
    args: argparse.Namespace,
    stem: str,
    title: str,
    versions: dict[str, str],
    result: dict[str, Any],
    markdown: list[str],
) -> int:
    """Print one section's report and write it as `<stem>.{json,md}` into `args.out`."""
    report = {
        "benchmark": stem,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": versions,
        "command": args.command,
        **result,
    }
    lines = [*_header(report, title, args.command), *markdown]
    print("\n".join(lines))
    _write_report(args.out, stem, report, lines)
    return 0


def _torch_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in ("torch", "transformers", "peft")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=3_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--tgi-calls", type=int, default=3_000, help="per client and mode")
    parser.add_argument("--block", type=int, default=100, help="calls per client per round")
    parser.add_argument("--skip-tgi", action="store_true", help="in-process part only")
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "fspo_bench.db")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--vllm",
        action="store_true",
        help="only the real-engine row (bench/vllm_overhead.py): serving_overhead_vllm.{json,md}",
    )
    parser.add_argument("--vllm-python", help="python of the vLLM env (default FSPO_VLLM_PYTHON)")
    parser.add_argument("--vllm-calls", type=int, default=200, help="per client, concurrency 1")
    parser.add_argument("--vllm-concurrent-calls", type=int, default=320, help="per client, 16")
    _add_perf_arguments(parser)
    parser.add_argument(
        "--local-batch",
        action="store_true",
        help="only the in-process batching section: serving_overhead_local_batch.{json,md}",
    )
    parser.add_argument("--local-rounds", type=int, default=30)
    parser.add_argument("--local-max-tokens", type=int, default=16)
    parser.add_argument("--local-hidden", type=int, default=64)
    parser.add_argument("--local-layers", type=int, default=2)
    args = parser.parse_args(argv)
    args.command = recorded_command("bench/serving_overhead.py", argv)
    if args.vllm:
        return _vllm_row(args)
    if args.concurrency:
        return _concurrency_part(args)
    if args.stream:
        return _stream_part(args)
    if args.local_batch:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        return _local_batch_row(args)

    started = time.perf_counter()
    _populate(args.db, args.users, args.examples)
    populate_s = time.perf_counter() - started

    fmt = PromptFormat(style="chat", num_shots=args.shots)
    budget_fmt = PromptFormat(style="chat", num_shots=args.shots, max_prompt_tokens=4096)
    backend = InstantBackend()
    results: dict[str, dict[str, float]] = {}
    with PreferenceMemory.sqlite(args.db) as memory:
        llm = ChatFSPO(backend=backend, prompt_format=fmt, model="fspo", memory=memory)
        budget_llm = llm.model_copy(update={"prompt_format": budget_fmt})
        shots = memory.select(TARGET, QUERIES[0], k=args.shots)
        assert len(shots) == args.shots, len(shots)
        prompt = llm.build_prompt(QUERIES[0], user_id=TARGET)

        def q(i: int) -> str:
            return QUERIES[i % len(QUERIES)]

        cases: dict[str, Callable[[int], Any]] = {
            "backend.generate alone (baseline)": lambda _: backend.generate(
                prompt, adapter="fspo", params=GenerationParams()
            ),
            "memory.select(k=8)": lambda i: memory.select(TARGET, q(i), k=args.shots),
            "ChatFSPO.build_prompt": lambda i: llm.build_prompt(q(i), user_id=TARGET),
            "ChatFSPO.build_prompt + token budget": lambda i: budget_llm.build_prompt(
                q(i), user_id=TARGET
            ),
            "ChatFSPO.invoke": lambda i: llm.invoke(q(i), user_id=TARGET),
            "ChatFSPO.invoke (user from config)": lambda i: llm.invoke(
                q(i), config={"configurable": {"user_id": TARGET}}
            ),
            "ChatFSPO.invoke (unknown user, zero-shot)": lambda i: llm.invoke(
                q(i), user_id="nobody"
            ),
            "ChatFSPO.stream (consumed)": lambda i: list(llm.stream(q(i), user_id=TARGET)),
        }
        for name, fn in cases.items():
            results[name] = _time(fn, args.calls, args.warmup)
            print(
                f"{name:45s} median {results[name]['median_ms']:.3f} ms  "
                f"p99 {results[name]['p99_ms']:.3f} ms"
            )
        name = "ChatFSPO.ainvoke"
        results[name] = _atime(lambda i: llm.ainvoke(q(i), user_id=TARGET), args.calls, args.warmup)
        print(
            f"{name:45s} median {results[name]['median_ms']:.3f} ms  "
            f"p99 {results[name]['p99_ms']:.3f} ms"
        )
        tgi = None if args.skip_tgi else _tgi_bench(memory, args)

    invoke = results["ChatFSPO.invoke"]
    report: dict[str, Any] = {
        "benchmark": "serving_overhead",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": _versions(),
        "setup": {
            "memory": "PreferenceMemory.sqlite (WAL), strategy=recent",
            "users": args.users,
            "examples_for_measured_user": args.examples,
            "num_shots": args.shots,
            "prompt_style": "chat",
            "prompt_chars": len(prompt.text),
            "backend": "InstantBackend (returns a fixed string, no generation time)",
            "calls_per_case": args.calls,
            "warmup_per_case": args.warmup,
            "populate_seconds": round(populate_s, 1),
        },
        "budget": {"median_ms": BUDGET_MEDIAN_MS, "p99_ms": BUDGET_P99_MS},
        "within_budget": {
            "median": invoke["median_ms"] < BUDGET_MEDIAN_MS,
            "p99_wall_clock": invoke["p99_ms"] < BUDGET_P99_MS,
            "p99_cpu_time": invoke["cpu_p99_ms"] < BUDGET_P99_MS,
        },
        "results": results,
    }
    if tgi is not None:
        report["tgi"] = tgi
    lines = [
        "# ChatFSPO serving overhead",
        "",
        f"{report['date']} on {report['machine']['cpu']} ({report['machine']['cores']} cores), "
        f"Python {report['machine']['python']}; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + ".",
        "",
        (
            f"SQLite `PreferenceMemory`: {args.users:,} users, {args.examples:,} examples for "
            f"the measured user, K={args.shots}, chat style. The backend returns instantly, so "
            f"the numbers are ChatFSPO's own cost. {args.calls:,} calls per row after "
            f"{args.warmup} warm-up calls. Produced by `python bench/serving_overhead.py`."
        ),
        "",
        (
            f"Load average at the end (1/5/15 min): {report['machine']['load_average_1_5_15']} "
            "(a shared machine: wall-clock p99 includes waiting for a core; the CPU-time "
            "columns are the work itself)."
        ),
        "",
        "| what | median ms | p99 ms | mean ms | CPU median ms | CPU p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} | {r['mean_ms']:.3f} "
            f"| {r['cpu_median_ms']:.3f} | {r['cpu_p99_ms']:.3f} |"
            for name, r in results.items()
        ),
        "",
        (
            f"Budget for `ChatFSPO.invoke`: median < {BUDGET_MEDIAN_MS} ms: "
            f"{_verdict(report['within_budget']['median'])} ({invoke['median_ms']:.3f} ms); "
            f"p99 < {BUDGET_P99_MS} ms: wall clock "
            f"{_verdict(report['within_budget']['p99_wall_clock'])} ({invoke['p99_ms']:.3f} ms), "
            f"CPU time {_verdict(report['within_budget']['p99_cpu_time'])} "
            f"({invoke['cpu_p99_ms']:.3f} ms)."
        ),
        "",
    ]
    if tgi is not None:
        lines += _tgi_markdown(tgi)
    _write_report(args.out, "serving_overhead", report, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
