"""How `VectorSearch`'s coarse lists (IVF) grow against the exact scan, and their recall.

One user's `VectorMatrix` (the in-memory and SQLite stores' cached matrix) of 384-dim float32
vectors, for 20k to 200k rows, on two kinds of vectors:

- clustered: 100 random centres plus unit-variance noise per dimension (within-cluster
  cosine about 0.5); queries are fresh points of the same clusters.
- bench: sums of 20 random word vectors from memory_select.py's 34-word vocabulary (its
  `BenchEmbeddings`); queries are sums of 8.

For each: p50 ms of `nearest` (k=8 and k=32, the `diverse` pool) exact and with the default
`VectorSearch()` (the rows of the nearest coarse lists, sign-code filter, exact rerank), the
time to build the lists (k-means, assignment, codes), and recall@8 of the default against exact
(mean and min over 64 queries). One BLAS thread; the machine is shared, so exact and
approximate alternate query by query in the same run.

    python bench/vector_search.py            # results: bench/results/vector_search.{json,md}
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: the machine is shared

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.memory_select import machine  # noqa: E402
from bench.recorded import recorded_command, write_report  # noqa: E402
from langchain_fspo.memory import VectorSearch  # noqa: E402
from langchain_fspo.memory._vector_matrix import VectorMatrix  # noqa: E402

DIMS = 384
QUERIES = 64


def clustered(rng: np.random.Generator, n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.standard_normal((100, DIMS)).astype(np.float32)
    rows = centres[rng.integers(0, 100, n + queries)]
    rows += rng.standard_normal((n + queries, DIMS)).astype(np.float32)
    return rows[:n], rows[n:]


def bags(rng: np.random.Generator, n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    words = rng.standard_normal((34, DIMS)).astype(np.float32)

    def sums(count: int, size: int) -> np.ndarray:
        picks = rng.integers(0, 34, (count, size))
        out = np.zeros((count, DIMS), dtype=np.float32)
        for j in range(size):
            out += words[picks[:, j]]
        return out

    return sums(n, 20), sums(queries, 8)


def run(kind: str, n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rows, queries = (clustered if kind == "clustered" else bags)(rng, n, QUERIES)
    matrix = VectorMatrix.build([str(i) for i in range(n)], rows)
    search = VectorSearch()
    start = time.perf_counter()
    lists = matrix.lists()  # built on the first approximate search; timed apart
    build_ms = (time.perf_counter() - start) * 1e3
    times: dict[str, list[float]] = {
        "exact_k8": [],
        "approx_k8": [],
        "exact_k32": [],
        "approx_k32": [],
    }
    recalls = []
    for query in queries:
        for limit in (8, 32):
            for name, how in (("exact", None), ("approx", search)):
                start = time.perf_counter()
                hits = matrix.nearest(query, limit, search=how)
                times[f"{name}_k{limit}"].append((time.perf_counter() - start) * 1e3)
                if limit == 8:
                    if how is None:
                        truth = set(hits)
                    else:
                        recalls.append(len(truth & set(hits)) / 8)
    return {
        **{f"{name}_p50_ms": round(statistics.median(v), 3) for name, v in times.items()},
        "recall_at_8_mean": round(statistics.fmean(recalls), 4),
        "recall_at_8_min": round(min(recalls), 4),
        "code_build_ms": round(build_ms, 1),
        "lists": len(lists.sizes),
        "code_bytes_per_row": lists.signs.words * 8,
    }


def provenance(report: dict[str, Any], versions: str = "") -> str:
    """The result file's line on how, when and where it was measured."""
    return (
        f"Command: `{report['command']}`. Date {report['date']}; {report['machine']['cpu']}, "
        f"{report['machine']['cpus']} CPUs, shared with other jobs (load average "
        f"{report['load_average_1m']['before']:.1f} before, "
        f"{report['load_average_1m']['after']:.1f} after). numpy "
        f"{report['versions']['numpy']}{versions}, git_commit {report['versions']['git_commit']}."
    )


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# VectorSearch: coarse lists against the exact scan, as a user's history grows",
        "",
        provenance(report),
        (
            f"Each cell: p50 ms over {QUERIES} queries of `VectorMatrix.nearest`, exact and "
            "default `VectorSearch()` alternating; recall@8 of the default against exact "
            "(mean, min)."
        ),
        "",
    ]
    for kind, sweep in report["results"].items():
        lines += [
            f"## {kind} vectors (384 dims)",
            "",
            (
                "| rows | exact k=8 | approx k=8 | exact k=32 | approx k=32 | recall@8 | "
                "lists | build ms |"
            ),
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for n, r in sweep.items():
            lines.append(
                f"| {int(n):,} | {r['exact_k8_p50_ms']:.3f} | {r['approx_k8_p50_ms']:.3f} | "
                f"{r['exact_k32_p50_ms']:.3f} | {r['approx_k32_p50_ms']:.3f} | "
                f"{r['recall_at_8_mean']:.3f}, {r['recall_at_8_min']:.3f} | "
                f"{r['lists']} | {r['code_build_ms']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 50_000, 100_000, 200_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results/vector_search.json")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    results: dict[str, Any] = {}
    for kind in ("clustered", "bench"):
        results[kind] = {}
        for n in args.rows:
            results[kind][str(n)] = run(kind, n, args.seed + n)
            print(kind, n, results[kind][str(n)], flush=True)
    report = {
        "benchmark": "VectorSearch coarse lists against exact",
        "command": recorded_command("bench/vector_search.py"),
        "results": results,
        **machine(),
        "load_average_1m": {"before": before, "after": os.getloadavg()[0]},
    }
    write_report(report, args.out, markdown)


if __name__ == "__main__":
    main()
