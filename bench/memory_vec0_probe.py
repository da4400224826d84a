"""Why SQLite `relevant` does not use sqlite-vec's `vec0` tables: their KNN cost and size.

One `vec0` table with a text partition key (one partition per user, as a per-user index would
need), 100,000 unit vectors of 384 dimensions in one partition and `--small-users` partitions
of 3 vectors (a store's other users). Timed: `k = 64` KNN in the big partition (float, int8
and bit vectors; `--chunk-sizes`), against an exact numpy scan of the same float32 matrix
in memory. Also the file size: a partition takes at least one chunk, so small users cost a
whole chunk each.

    python bench/memory_vec0_probe.py --chunk-sizes 64 1024

Results: bench/results/memory_vec0_probe.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.memory_select import machine  # noqa: E402
from bench.recorded import recorded_command  # noqa: E402

DIMS = 384
KINDS = {
    "float": ("float[384]", "?"),
    "int8": ("int8[384]", "vec_quantize_int8(?, 'unit')"),
    "bit": ("bit[384]", "vec_quantize_binary(?)"),
}


def connect(path: str) -> Any:
    import pysqlite3.dbapi2 as sqlite  # type: ignore[import-untyped]
    import sqlite_vec

    conn = sqlite.connect(path, isolation_level=None)
    conn.enable_load_extension(True)  # noqa: FBT003
    sqlite_vec.load(conn)
    return conn


def probe(
    kind: str, chunk: int, big: np.ndarray, small_users: int, queries: np.ndarray
) -> dict[str, Any]:
    column, convert = KINDS[kind]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "vec0.db")
        conn = connect(path)
        conn.execute(
            "CREATE VIRTUAL TABLE v USING vec0(prefix text partition key, "
            f"embedding {column}, chunk_size={chunk})"
        )
        conn.execute("BEGIN")
        sql = f"INSERT INTO v (rowid, prefix, embedding) VALUES (?, ?, {convert})"
        conn.executemany(sql, ((i + 1, "big", big[i].tobytes()) for i in range(len(big))))
        conn.executemany(
            sql,
            ((len(big) + i + 1, f"user{i // 3}", big[i].tobytes()) for i in range(3 * small_users)),
        )
        conn.execute("COMMIT")
        knn = (
            f"SELECT rowid, distance FROM v WHERE embedding MATCH {convert} "
            "AND k = 64 AND prefix = 'big'"
        )
        samples = []
        for q in queries:
            start = time.perf_counter()
            conn.execute(knn, (q.tobytes(),)).fetchall()
            samples.append((time.perf_counter() - start) * 1000)
        conn.close()
        size = Path(path).stat().st_size
    return {
        "kind": kind,
        "chunk_size": chunk,
        "knn_p50_ms": round(statistics.median(samples), 2),
        "file_mb": round(size / 1e6, 1),
    }


def numpy_scan(big: np.ndarray, queries: np.ndarray) -> float:
    samples = []
    for q in queries:
        start = time.perf_counter()
        scores = big @ q
        np.argpartition(-scores, 63)[:64]
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--small-users", type=int, default=1_000)
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--queries", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    big = rng.standard_normal((args.vectors, DIMS)).astype(np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, DIMS)).astype(np.float32)
    rows = [
        probe(kind, chunk, big, args.small_users, queries)
        for chunk in args.chunk_sizes
        for kind in KINDS
    ]
    import sqlite_vec

    report = {
        "benchmark": "sqlite-vec vec0 partitioned KNN vs an in-memory numpy scan",
        "command": recorded_command("bench/memory_vec0_probe.py"),
        "vectors": args.vectors,
        "small_users": args.small_users,
        "vec0": rows,
        "numpy_float32_scan_p50_ms": numpy_scan(big, queries),
        "sqlite_vec": sqlite_vec.__version__ if hasattr(sqlite_vec, "__version__") else "?",
        **machine(),
    }
    report["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        "# sqlite-vec `vec0` (partition key per user) vs a numpy scan, k = 64",
        "",
        (
            f"Command: `{report['command']}`. Date {report['date']}; {report['machine']['cpu']}, "
            f"{report['machine']['cpus']} CPUs shared with other jobs; one thread. "
            f"{args.vectors:,} x {DIMS} unit vectors in one partition, {args.small_users:,} "
            "partitions of 3. Median of the queries' wall-clock ms."
        ),
        "",
        "| vec0 vectors | chunk_size | KNN p50 ms | file MB |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {r['kind']} | {r['chunk_size']} | {r['knn_p50_ms']:.2f} | {r['file_mb']:.1f} |"
            for r in rows
        ],
        "",
        (
            "Exact numpy scan of the float32 matrix in memory: "
            f"{report['numpy_float32_scan_p50_ms']:.2f} ms."
        ),
        "",
    ]
    out = REPO_ROOT / "bench/results/memory_vec0_probe.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
