"""Records per second of `fspo synth` against a local server with a fixed latency per request.

The server (`bench/fixed_latency_server.py --answers synth`, run in its own process) speaks the
OpenAI chat completions protocol, sleeps `--latency` seconds per request and answers by rule
(`bench/synth_rules.py`); the pipeline talks to it through `langchain-openai`'s
`ChatOpenAI(base_url=...)` (spec `openai:scripted@<url>`), as it would to vLLM or SGLang. The whole
pipeline (ELIX domain: questions, persona-steered responses, both-order labels, disagreement,
records) runs at concurrency 1, 8 and 32, in a fresh run folder each time, with fsync on; records
per second = final records / wall time of those stages (the report, a matplotlib plot whose cost
does not depend on concurrency, is timed apart). Target: at 32, at least 20x the records per second
at 1.

Two latencies are measured. At 50 ms the client's own CPU per request (about 2-3 ms in the
openai SDK and httpx under `ChatOpenAI`, plus the server's) caps throughput on a small shared
machine before 32 requests can overlap; at 200 ms (still far below a real LLM call, 1-10 s) the
run is latency-bound, which is what concurrency is for.

Run (from the repository root):

    python bench/synth_throughput.py            # writes bench/results/synth_throughput.{json,md}
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from fspo_train.synth import STAGES, RunnerSettings, SynthRun, load_domain, run_synth  # noqa: E402


def _start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "bench.fixed_latency_server"),
            *("--answers", "synth", "--latency", str(latency)),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _one_run(spec: str, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    domain = load_domain("elix").with_overrides(
        global_count=args.questions, batch_size=8, per_question=4, pairs_per_question=2
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        run = SynthRun(
            domain=domain,
            out=out,
            generators=[spec],
            labeller=spec,
            settings=RunnerSettings(concurrency=concurrency, progress=False, fsync=True),
        )
        start, cpu_start = time.perf_counter(), time.process_time()
        summary = run_synth(run, stages=[s for s in STAGES if s != "report"])
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        start = time.perf_counter()
        run_synth(run, stages=["report"])
        report_s = time.perf_counter() - start
        usage = json.loads((out / "usage.json").read_text())
        # Provenance names the model spec, whose URL has the server's port: hash the rest.
        rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
        records_bytes = json.dumps([{**r, "provenance": None} for r in rows]).encode()
    requests = sum(stage["requests"] for stage in usage["stages"].values())
    records = summary["records"]["records"]
    return {
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "report_s": round(report_s, 3),
        "records": records,
        "requests": requests,
        "records_per_s": round(records / wall, 2),
        "requests_per_s": round(requests / wall, 2),
        "client_cpu_ms_per_request": round(1000 * cpu / requests, 2),
        "client_cpu_share": round(cpu / wall, 2),
        "records_sha": hashlib.sha256(records_bytes).hexdigest()[:16],
    }


def _machine() -> dict[str, Any]:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def _versions() -> dict[str, str]:
    out = {}
    for pkg in (
        "langchain-fspo",
        "langchain-core",
        "langchain-openai",
        "openai",
        "httpx",
        "pydantic",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _summarise(runs: list[dict[str, Any]], concurrencies: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for concurrency in concurrencies:
        mine = [r for r in runs if r["concurrency"] == concurrency]
        summary[str(concurrency)] = {
            "records_per_s_median": statistics.median(r["records_per_s"] for r in mine),
            "records_per_s_best": max(r["records_per_s"] for r in mine),
            "requests_per_s_median": statistics.median(r["requests_per_s"] for r in mine),
            "wall_s_median": statistics.median(r["wall_s"] for r in mine),
            "client_cpu_ms_per_request_median": statistics.median(
                r["client_cpu_ms_per_request"] for r in mine
            ),
            "client_cpu_share_median": statistics.median(r["client_cpu_share"] for r in mine),
        }
    low, high = str(min(concurrencies)), str(max(concurrencies))
    speedup = summary[high]["records_per_s_median"] / summary[low]["records_per_s_median"]
    return {
        "by_concurrency": summary,
        "speedup_records_per_s": round(speedup, 2),
        "target": f"concurrency {high} >= 20x concurrency {low}",
        "passed": speedup >= 20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--latency", type=float, nargs="+", default=[0.05, 0.2], help="server seconds per request"
    )
    parser.add_argument("--questions", type=int, default=24, help="ELIX global questions")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3, help="runs per concurrency (median)")
    parser.add_argument(
        "--repeats-sequential",
        type=int,
        default=1,
        help="runs at concurrency 1 (latency-bound, so its spread is small; it is the slow one)",
    )
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results" / "synth_throughput"))
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on `kill`
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    for latency in args.latency:
        server, url = _start_server(latency)
        spec = f"openai:scripted@{url}"
        try:
            for concurrency in args.concurrency:
                repeats = args.repeats_sequential if concurrency == 1 else args.repeats
                for repeat in range(repeats):
                    result = {"latency_s": latency, **_one_run(spec, concurrency, args)}
                    runs.append(result)
                    print(f"latency {latency} run {repeat + 1}: {result}", flush=True)
        finally:
            server.terminate()
            server.wait()
    load_after = os.getloadavg()

    by_latency = {
        str(latency): _summarise([r for r in runs if r["latency_s"] == latency], args.concurrency)
        for latency in args.latency
    }
    same_records = len({r["records_sha"] for r in runs}) == 1
    result = {
        "benchmark": "fspo synth records per second vs concurrency (bench/synth_throughput.py)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "versions": _versions(),
        "setup": {
            "server": (
                "bench/fixed_latency_server.py --answers synth (ThreadingHTTPServer, own "
                "process, 127.0.0.1)"
            ),
            "client": "langchain-openai ChatOpenAI via init_chat_model('openai:scripted@<url>')",
            "latencies_s": args.latency,
            "domain": f"elix, {args.questions} questions, 4 responses/question, 2 pairs/question",
            "fsync": True,
            "repeats": args.repeats,
            "repeats_at_concurrency_1": args.repeats_sequential,
        },
        "runs": runs,
        "by_latency": by_latency,
        "identical_records_across_runs": same_records,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# fspo synth throughput",
        "",
        (
            f"{result['date']} on {result['machine']['cpu']} "
            f"({result['machine']['cpu_count']} cores, "
            f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after), "
            f"Python {result['machine']['python']}."
        ),
        f"Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}.",
        "",
        (
            f"{result['setup']['domain']}; {result['setup']['client']}; "
            f"median of {args.repeats} runs ({args.repeats_sequential} at concurrency 1). "
            f"Records identical across all runs: {same_records}."
        ),
        "",
        (
            "| server latency | concurrency | records/s | requests/s | wall s | client CPU ms/req "
            "| client CPU / wall |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for latency, summary in by_latency.items():
        for concurrency, s in summary["by_concurrency"].items():
            lines.append(
                f"| {float(latency) * 1000:.0f} ms | {concurrency} | "
                f"{s['records_per_s_median']:.2f} | {s['requests_per_s_median']:.1f} | "
                f"{s['wall_s_median']:.2f} | {s['client_cpu_ms_per_request_median']:.2f} | "
                f"{s['client_cpu_share_median']:.2f} |"
            )
    lines.append("")
    for latency, summary in by_latency.items():
        lines.append(
            f"- {float(latency) * 1000:.0f} ms: speed-up {summary['speedup_records_per_s']:.1f}x "
            f"({summary['target']}: {'passed' if summary['passed'] else 'not met'})"
        )
    lines += [
        "",
        (
            "Client CPU / wall is the share of one core the pipeline process got. Where it nears "
            "the share the machine can give (a 2-core machine shared with other jobs gives well "
            "under 1), the run is CPU-bound, not latency-bound, and more concurrency cannot help."
        ),
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    passed = all(summary["passed"] for summary in by_latency.values())
    return 0 if passed and same_records else 1


if __name__ == "__main__":
    sys.exit(main())
