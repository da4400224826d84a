"""Where the time of `PreferenceMemory.add` goes on PostgreSQL with a pgvector HNSW index.

Runs on the history database `bench/memory_select.py` builds (about 114k 384-dim vectors under
one HNSW index, shared by every user), for a probe user of its own (deleted afterwards):

- client side, per `add`: the whole call, the embedding alone, and the same `add` on a memory
  whose connections set `synchronous_commit = off` (the commit no longer waits for the WAL
  flush; a crash may lose the last acknowledged writes);
- server side, per statement: `EXPLAIN (ANALYZE, WAL)` of the two INSERTs `PostgresStore`
  sends for one example (its row, then its vector), with the HNSW index and, in a transaction
  that drops the index and is rolled back, without it.

    python bench/memory_pg_add.py --postgres-url postgresql://fspo:fspo@127.0.0.1:5432/fspo_bench

The result goes to bench/results/memory_pg_add{--label}.{json,md}; the server's `fsync` and
`synchronous_commit` settings are part of it (compare a run with fsync off and one with it on).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.memory_select import (  # noqa: E402
    BenchEmbeddings,
    machine,
    open_memory,
    postgres_versions,
)

USER = "add-probe"


def p50(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def timed(fn: Callable[[int], Any], calls: int) -> list[float]:
    out = []
    for i in range(calls):
        start = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def with_option(url: str, option: str) -> str:
    from urllib.parse import quote

    return url + ("&" if "?" in url else "?") + "options=" + quote(option, safe="")


def client_side(url: str, calls: int, repeats: int) -> dict[str, Any]:
    """p50 ms of `add`, of the embedding alone, and of `add` with synchronous_commit off."""
    embed = BenchEmbeddings()
    plain = open_memory("postgres", url, indexed=True)
    relaxed = open_memory("postgres", with_option(url, "-c synchronous_commit=off"), indexed=True)
    runs: dict[str, list[float]] = {"add": [], "add_synchronous_commit_off": [], "embed": []}
    try:
        for memory in (plain, relaxed):  # warm the pools and caches
            timed(lambda i, m=memory: m.add(USER, prompt=f"warm {i}", chosen="y"), 5)
        for _ in range(repeats):  # interleaved, so that a load change hits all alike
            for name, memory in (("add", plain), ("add_synchronous_commit_off", relaxed)):
                samples = timed(
                    lambda i, m=memory: m.add(USER, prompt=f"probe {i} tone brief", chosen="y"),
                    calls,
                )
                runs[name].append(p50(samples))
            runs["embed"].append(
                p50(timed(lambda i: embed.embed_documents([f"probe {i} tone brief"]), calls))
            )
    finally:
        plain.forget(USER)
        plain.close()
        relaxed.close()
    return {name: {"p50_ms": p50(values), "runs_p50_ms": values} for name, values in runs.items()}


def _explain_ms(cur: Any, sql: str, params: Any) -> tuple[float, dict[str, Any]]:
    cur.execute("EXPLAIN (ANALYZE, WAL, FORMAT JSON) " + sql, params)
    (plan,) = cur.fetchone()[0]
    wal = {k: plan["Plan"].get(k) for k in ("WAL Records", "WAL Bytes")}
    return float(plan["Execution Time"]), wal


def server_side(url: str, calls: int) -> dict[str, Any]:
    """Server execution ms of the row INSERT and the vector INSERT, with and without HNSW."""
    import psycopg

    embed = BenchEmbeddings()
    prefix = f"fspo.add-probe-{uuid.uuid4().hex[:8]}.examples"
    out: dict[str, Any] = {}
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        (has_index,) = cur.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'store_vectors_embedding_idx'"
        ).fetchone()
        (vectors,) = cur.execute("SELECT count(*) FROM store_vectors").fetchone()
        out["vectors_in_table"] = int(vectors)
        out["hnsw_index"] = bool(has_index)
        for variant in ("with_hnsw", "without_hnsw"):
            row_ms, vector_ms = [], []
            wal: dict[str, Any] = {}
            for i in range(calls):
                key = f"k{i}"
                vector = "[" + ",".join(map(repr, embed.embed_query(f"probe {i} tone"))) + "]"
                with conn.transaction(force_rollback=True):
                    if variant == "without_hnsw":
                        cur.execute("DROP INDEX IF EXISTS store_vectors_embedding_idx")
                    ms, _ = _explain_ms(
                        cur,
                        "INSERT INTO store (prefix, key, value) VALUES (%s, %s, %s)",
                        (prefix, key, json.dumps({"prompt": f"probe {i}"})),
                    )
                    row_ms.append(ms)
                    ms, wal = _explain_ms(
                        cur,
                        "INSERT INTO store_vectors (prefix, key, field_name, embedding) "
                        "VALUES (%s, %s, 'prompt', %s::vector)",
                        (prefix, key, vector),
                    )
                    vector_ms.append(ms)
            out[variant] = {
                "row_insert_p50_ms": p50(row_ms),
                "vector_insert_p50_ms": p50(vector_ms),
                "vector_insert_wal": wal,
            }
    return out


def markdown(report: dict[str, Any]) -> str:
    client, server = report["client"], report["server"]
    lines = [
        "# PreferenceMemory.add on PostgreSQL: where the time goes",
        "",
        (
            f"Command: `{report['command']}`. Date {report['date']}; {report['machine']['cpu']}, "
            f"{report['machine']['cpus']} CPUs shared with other jobs. PostgreSQL: "
            f"{report['postgres']}."
        ),
        f"{server['vectors_in_table']:,} vectors under one HNSW index (every user's).",
        "",
        "| what | p50 ms |",
        "| --- | ---: |",
        f"| `add` (client, whole call) | {client['add']['p50_ms']:.3f} |",
        f"| `add`, synchronous_commit=off | {client['add_synchronous_commit_off']['p50_ms']:.3f} |",
        f"| embedding one prompt (client) | {client['embed']['p50_ms']:.3f} |",
    ]
    for variant in ("with_hnsw", "without_hnsw"):
        row = server[variant]
        lines += [
            (
                f"| server: row INSERT ({variant.replace('_', ' ')}) | "
                f"{row['row_insert_p50_ms']:.3f} |"
            ),
            (
                f"| server: vector INSERT ({variant.replace('_', ' ')}) | "
                f"{row['vector_insert_p50_ms']:.3f} |"
            ),
        ]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default="", help="suffix of the result files")
    args = parser.parse_args()
    report = {
        "benchmark": "PreferenceMemory.add on PostgreSQL with HNSW: where the time goes",
        "command": "python bench/memory_pg_add.py " + " ".join(sys.argv[1:]),
        "client": client_side(args.postgres_url, args.calls, args.repeats),
        "server": server_side(args.postgres_url, args.calls),
        "postgres": postgres_versions(args.postgres_url),
        **machine(),
    }
    report["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    out = REPO_ROOT / f"bench/results/memory_pg_add{args.label}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
