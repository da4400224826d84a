"""Would a compiled HNSW index search faster than `VectorSearch`'s IVF at the same recall?

The same 100k x 384 float32 vectors and queries as bench/vector_search.py (clustered, and the
memory benchmark's bags of words), searched by:

- `VectorSearch` (numpy IVF: nearest coarse lists up to `probe` rows, sign-code filter, exact
  rerank) at several `probe` values, `pool_probe`'s 2,048 included;
- usearch's HNSW (connectivity 16, expansion_add 64, one thread) storing float32 or float16,
  at several `expansion_search` values.

For each: p50 ms of a k=8 and a k=32 search over 64 queries and recall@8 / recall@32 against the
exact scan (mean). One BLAS thread and one usearch thread; the machine is shared.

usearch is not a dependency of this project; install it beside it to run this:

    pip install usearch==2.26.6 && python bench/ann_hnsw.py   # bench/results/ann_hnsw.{json,md}
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: the machine is shared

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.memory_select import machine  # noqa: E402
from bench.recorded import recorded_command, write_report  # noqa: E402
from bench.vector_search import (  # noqa: E402
    QUERIES,
    bags,
    clustered,
    provenance,
)
from langchain_fspo.memory import VectorSearch  # noqa: E402
from langchain_fspo.memory._vector_matrix import VectorMatrix  # noqa: E402

PROBES = (2_048, 4_096, 8_192, 16_384)
EXPANSIONS = (32, 64, 128)

Search = Callable[[np.ndarray, int], list[int]]


def measure(
    search: Search, queries: np.ndarray, truth: dict[int, list[set[int]]]
) -> dict[str, float]:
    """p50 ms and mean recall of `search` at k=8 and k=32."""
    out: dict[str, float] = {}
    for k in (8, 32):
        times, recalls = [], []
        for query, exact in zip(queries, truth[k], strict=True):
            start = time.perf_counter()
            hits = search(query, k)
            times.append((time.perf_counter() - start) * 1e3)
            recalls.append(len(exact & set(hits)) / k)
        out[f"k{k}_p50_ms"] = round(statistics.median(times), 3)
        out[f"recall_at_{k}"] = round(statistics.fmean(recalls), 4)
    return out


def run(kind: str, n: int, seed: int) -> dict[str, Any]:
    from usearch.index import Index  # type: ignore[import-not-found]  # not a dependency

    rng = np.random.default_rng(seed)
    rows, queries = (clustered if kind == "clustered" else bags)(rng, n, QUERIES)
    matrix = VectorMatrix.build([str(i) for i in range(n)], rows)
    truth = {k: [set(matrix.nearest(q, k)) for q in queries] for k in (8, 32)}
    matrix.lists()  # built once, outside the timed searches
    results: dict[str, Any] = {}
    for probe in PROBES:
        search = VectorSearch(probe=probe, rerank=min(512, probe // 4))

        def ivf(q: np.ndarray, k: int, search: VectorSearch = search) -> list[int]:
            return matrix.nearest(q, k, search=search)

        results[f"ivf probe={probe}"] = measure(ivf, queries, truth)
        print(kind, f"ivf probe={probe}", results[f"ivf probe={probe}"], flush=True)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    for dtype in ("f32", "f16"):
        index = Index(ndim=rows.shape[1], metric="cos", dtype=dtype, connectivity=16)
        index.expansion_add = 64
        start = time.perf_counter()
        index.add(np.arange(n), unit, threads=1)
        build_s = round(time.perf_counter() - start, 1)
        for expansion in EXPANSIONS:
            index.expansion_search = expansion

            def hnsw(q: np.ndarray, k: int, index: Any = index) -> list[int]:
                return [int(key) for key in index.search(q, k, threads=1).keys]

            name = f"hnsw {dtype} ef={expansion}"
            results[name] = {**measure(hnsw, queries, truth), "build_s": build_s}
            print(kind, name, results[name], flush=True)
    return results


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# A compiled HNSW index (usearch) against VectorSearch's IVF, same vectors",
        "",
        provenance(report, f", usearch {report['usearch']}"),
        (
            f"{report['rows']:,} rows; each cell: p50 ms over {QUERIES} queries, recall against "
            "the exact scan (mean). IVF rows: `VectorSearch(probe=...)` (the default is 16,384; "
            "`diverse`'s pool uses 2,048); HNSW rows: connectivity 16, expansion_add 64, one "
            "thread (build time beside them)."
        ),
        "",
    ]
    for kind, rows in report["results"].items():
        lines += [
            f"## {kind} vectors (384 dims)",
            "",
            "| search | k=8 ms | recall@8 | k=32 ms | recall@32 | build s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {name} | {r['k8_p50_ms']:.3f} | {r['recall_at_8']:.3f} | "
            f"{r['k32_p50_ms']:.3f} | {r['recall_at_32']:.3f} | {r.get('build_s', '')} |"
            for name, r in rows.items()
        ]
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results/ann_hnsw.json")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    results = {kind: run(kind, args.rows, args.seed + args.rows) for kind in ("clustered", "bench")}
    report = {
        "benchmark": "usearch HNSW against VectorSearch IVF",
        "command": recorded_command("bench/ann_hnsw.py"),
        "rows": args.rows,
        "results": results,
        "usearch": version("usearch"),
        **machine(),
        "load_average_1m": {"before": before, "after": os.getloadavg()[0]},
    }
    write_report(report, args.out, markdown)


if __name__ == "__main__":
    main()
