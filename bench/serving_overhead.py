"""What `ChatFSPO` adds to every call on top of the backend's own generation time.

The backend here answers instantly (a fixed string), so everything measured is ChatFSPO's
work: resolving the user, selecting the K shots from a SQLite `PreferenceMemory` (10,000
examples for the measured user among 100,000 users), rendering the `PromptFormat`, parsing
the completion, and LangChain's own `invoke` machinery (callbacks, run ids).

Run (about a minute to build the database, then a minute of measuring):

    python bench/serving_overhead.py            # writes bench/results/serving_overhead.{json,md}
    python bench/serving_overhead.py --users 2000 --calls 300 --out /tmp/quick   # smoke run

Budget: median under 2 ms, p99 under 10 ms per call.
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

from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt

REPO = Path(__file__).resolve().parents[1]
TARGET = "measured-user@example.com"
BUDGET_MEDIAN_MS = 2.0
BUDGET_P99_MS = 10.0
QUERIES = [f"What would you recommend for situation number {i}?" for i in range(64)]


class InstantBackend(Backend):
    """A backend whose generation takes no time: it returns a fixed answer."""

    name: ClassVar[str] = "instant"

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        return Generation(
            text="A fixed answer of a few words.",
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


def _time(fn: Callable[[int], Any], calls: int, warmup: int) -> dict[str, float]:
    for i in range(warmup):
        fn(i)
    wall, cpu = [], []
    for i in range(calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(i)
        cpu.append((time.process_time() - start_cpu) * 1e3)
        wall.append((time.perf_counter() - start) * 1e3)
    wall.sort()
    cpu.sort()

    def p99(values: list[float]) -> float:
        return round(values[min(len(values) - 1, int(0.99 * len(values)))], 4)

    return {
        "median_ms": round(statistics.median(wall), 4),
        "p99_ms": p99(wall),
        "mean_ms": round(statistics.fmean(wall), 4),
        "max_ms": round(wall[-1], 4),
        "cpu_median_ms": round(statistics.median(cpu), 4),
        "cpu_p99_ms": p99(cpu),
        "calls": calls,
    }


def _atime(fn: Callable[[int], Any], calls: int, warmup: int) -> dict[str, float]:
    loop = asyncio.new_event_loop()
    try:
        return _time(lambda i: loop.run_until_complete(fn(i)), calls, warmup)
    finally:
        loop.close()


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
    names = ["langchain-core", "langgraph", "langgraph-checkpoint-sqlite", "pydantic"]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=3_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "fspo_bench.db")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)

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
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
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
    (args.out / "serving_overhead.md").write_text("\n".join(lines))
    print(f"Wrote {args.out / 'serving_overhead.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
