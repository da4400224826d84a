"""Client-side cost of one `TGIBackend.agenerate` call: pooled async session vs. one per call.

`huggingface_hub.AsyncInferenceClient` opens a new `httpx.AsyncClient` (TLS context, empty
connection pool) for every client; `TGIBackend` shares one per event loop. This script times
sequential `agenerate` calls against a server that answers TGI's `POST /v1/chat/completions`
instantly (bench/fixed_latency_server.py, 127.0.0.1), so what is measured is the client and HTTP
overhead only:

- `pooled`: the backend as shipped (one session per event loop);
- `fresh`: the session closed after every call (what a new `AsyncInferenceClient` per call
  costs, the hub's default behaviour);
- `sync`: `TGIBackend.generate` (hub's shared `httpx.Client`), for reference.

    python bench/tgi_async_session.py              # 200 calls per mode, writes bench/results/
    python bench/tgi_async_session.py --calls 20   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fixed_latency_server import FixedLatencyServer  # noqa: E402
from langchain_fspo.backends.base import GenerationParams  # noqa: E402
from langchain_fspo.backends.tgi import TGIBackend  # noqa: E402
from langchain_fspo.prompt_format import PromptFormat  # noqa: E402

PARAMS = GenerationParams(max_tokens=4, temperature=0)


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


async def _async_calls(backend: TGIBackend, calls: int, *, fresh: bool) -> list[float]:
    prompt = PromptFormat(style="chat").render([], "Review the film Dune.")
    await backend.agenerate(prompt, adapter="a", params=PARAMS)  # warm-up
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await backend.agenerate(prompt, adapter="a", params=PARAMS)
        samples.append(time.perf_counter() - start)
        if fresh:
            await backend.aclose()
    await backend.aclose()
    return samples


def _sync_calls(backend: TGIBackend, calls: int) -> list[float]:
    prompt = PromptFormat(style="chat").render([], "Review the film Dune.")
    backend.generate(prompt, adapter="a", params=PARAMS)
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        backend.generate(prompt, adapter="a", params=PARAMS)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "tgi_async_session.json"
    )
    args = parser.parse_args()
    with FixedLatencyServer(latency_s=0.0) as server:
        backend = TGIBackend(server.url, adapters=["a"])
        results = {
            "pooled": _summary(asyncio.run(_async_calls(backend, args.calls, fresh=False))),
            "fresh": _summary(asyncio.run(_async_calls(backend, args.calls, fresh=True))),
            "sync": _summary(_sync_calls(backend, args.calls)),
        }
    report = {
        "benchmark": "TGIBackend.agenerate client overhead, pooled vs fresh async session",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "versions": {p: version(p) for p in ("huggingface-hub", "httpx")},
        "calls_per_mode": args.calls,
        "server": "bench/fixed_latency_server.py, 127.0.0.1, plain HTTP, instant fixed answer",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
