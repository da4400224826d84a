"""What pgvector's HNSW build settings cost and buy for `PreferenceMemory` on PostgreSQL.

`add` on PostgreSQL is dominated by the insert into the HNSW graph (bench/memory_pg_add.py).
The graph's build settings, `m` (links per node) and `ef_construction` (candidates weighed per
insert), are the store's own index config (`"ann_index_config": {"kind": "hnsw", "m": ...,
"ef_construction": ...}`). On the history database bench/memory_select.py builds (about 114k
384-dim vectors, every user's, under one index), for each setting this script rebuilds the
index, then measures:

- `add` p50 for a probe user, with prompts drawn like the stored ones (`probe_prompt`);
- `relevant` k=8 for the 100k-example user: p50, and recall@8 against the exact scan over
  `--queries` queries (mean and worst);
- `diverse` k=8 p50 for the same user; the index's size and build time.

The probe user is deleted after each setting, and the default index (m=16, ef_construction=64:
pgvector's and LangGraph's default) is rebuilt at the end.

    python bench/memory_pg_hnsw.py --postgres-url postgresql://fspo:fspo@127.0.0.1:5432/fspo_bench

Results: bench/results/memory_pg_hnsw.{json,md}.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.memory_pg_add import probe_prompt  # noqa: E402
from bench.memory_select import (  # noqa: E402
    EMBED,
    machine,
    open_memory,
    pg_vector,
    postgres_admin,
    postgres_versions,
    words,
)
from bench.recorded import recorded_command, write_report  # noqa: E402

USER = "size100000"
PROBE_USER = "hnsw-probe"
INDEX = "store_vectors_embedding_idx"
DEFAULT = (16, 64)
SETTINGS = [DEFAULT, (16, 32), (8, 32), (8, 16)]


def replace_index(url: str, index: str | None) -> dict[str, Any]:
    """Drop the store's ANN index and build `index` (`USING ...`) under its name.

    Its build time and size. The store's setup leaves an index of that name be, whatever its
    kind; None leaves the table without one.
    """
    postgres_admin(url, f"DROP INDEX IF EXISTS {INDEX}")
    start = time.perf_counter()
    if index is not None:
        postgres_admin(url, f"CREATE INDEX {INDEX} ON store_vectors {index}")
    seconds = time.perf_counter() - start
    postgres_admin(url, "VACUUM ANALYZE store_vectors")
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pg_relation_size(oid) FROM pg_class WHERE relname = %s", (INDEX,)
        ).fetchone()
    return {"build_s": round(seconds, 1), "index_mb": round((row[0] if row else 0) / 2**20, 1)}


def hnsw_index(m: int, ef_construction: int) -> str:
    return (
        "USING hnsw (embedding vector_cosine_ops) "
        f"WITH (m = {m}, ef_construction = {ef_construction})"
    )


def build_index(url: str, m: int, ef_construction: int) -> dict[str, Any]:
    """Replace the HNSW index with one of these settings; its build time and size."""
    return replace_index(url, hnsw_index(m, ef_construction))


def arguments(description: str, out: str) -> argparse.Namespace:
    """The options these index benchmarks share; results to bench/results/`out`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results" / out)
    return parser.parse_args()


def history_prefix(url: str) -> str:
    """The namespace prefix of the 100k-example user (memory_select's history database)."""
    probe = open_memory("postgres", url, indexed=True)
    try:
        vectors = probe.count(USER)
        assert vectors >= 100_000, f"{USER} holds {vectors} examples: run memory_select first"
        return ".".join(probe.namespaces(USER).examples)
    finally:
        probe.close()


def vector_total(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT count(*) FROM store_vectors").fetchone()
    return int(total[0]) if total else 0


def exact_neighbours(url: str, prefix: str, queries: list[str], k: int) -> list[set[str]]:
    """The exact `k` nearest keys of each query among the user's vectors (no index)."""
    import psycopg

    out = []
    with psycopg.connect(url) as conn:
        for query in queries:
            literal = pg_vector(EMBED.embed_query(query))
            rows = conn.execute(
                "SELECT key FROM store_vectors WHERE prefix = %s AND field_name = 'prompt' "
                "ORDER BY (embedding <=> %s::vector) + 0 LIMIT %s",
                (prefix, literal, k),
            ).fetchall()
            out.append({str(r[0]) for r in rows})
    return out


def p50_ms(fn: Any, calls: int) -> float:
    samples = []
    for i in range(calls):
        start = time.perf_counter_ns()
        fn(i)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(samples)


def measure(
    url: str, queries: list[str], exact: list[set[str]], calls: int, repeats: int, tag: str
) -> dict[str, Any]:
    """`add`, `relevant` (with recall@8) and `diverse` on the current index."""
    memory = open_memory("postgres", url, indexed=True)
    try:
        recalls = []
        for query, truth in zip(queries, exact, strict=True):
            found = {str(e.id) for e in memory.select(USER, query, k=8, strategy="relevant")}
            recalls.append(len(found & truth) / len(truth))

        def q(i: int) -> str:
            return queries[i % len(queries)]

        adds, relevant, diverse = [], [], []
        for repeat in range(repeats):
            adds.append(
                p50_ms(
                    lambda i, r=repeat: memory.add(
                        PROBE_USER, prompt=probe_prompt(f"{tag}-{r}", i), chosen="y"
                    ),
                    calls,
                )
            )
            relevant.append(
                p50_ms(lambda i: memory.select(USER, q(i), k=8, strategy="relevant"), calls)
            )
            diverse.append(
                p50_ms(lambda i: memory.select(USER, q(i), k=8, strategy="diverse"), calls)
            )
        memory.forget(PROBE_USER)
    finally:
        memory.close()
    return {
        "add_p50_ms": round(statistics.median(adds), 3),
        "add_runs_p50_ms": [round(v, 3) for v in adds],
        "relevant_p50_ms": round(statistics.median(relevant), 3),
        "diverse_p50_ms": round(statistics.median(diverse), 3),
        "recall_at_8": {"mean": round(statistics.fmean(recalls), 3), "min": min(recalls)},
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# pgvector HNSW build settings: `add` cost against `relevant` recall",
        "",
        (
            f"Command: `{report['command']}`. Date {report['date']}; "
            f"{report['machine']['cpu']}, {report['machine']['cpus']} CPUs. PostgreSQL: "
            f"{report['postgres']}."
        ),
        (
            f"{report['vectors']:,} 384-dim vectors under one index (every user's); `relevant` "
            f"and `diverse` for a user of 100k examples, recall@8 against the exact scan over "
            f"{report['queries']} queries; each p50 the median of {report['repeats']} runs' "
            f"p50 of {report['calls']} calls."
        ),
        "",
        (
            "| m | ef_construction | `add` p50 ms | `relevant` p50 ms | recall@8 mean (worst) "
            "| `diverse` p50 ms | index MB | build s |"
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["settings"]:
        recall = row["recall_at_8"]
        lines.append(
            f"| {row['m']} | {row['ef_construction']} | {row['add_p50_ms']:.2f} | "
            f"{row['relevant_p50_ms']:.2f} | {recall['mean']:.3f} ({recall['min']:.3f}) | "
            f"{row['diverse_p50_ms']:.2f} | {row['index_mb']} | {row['build_s']} |"
        )
    lines += ["", "The first row is the default (pgvector's and LangGraph's).", ""]
    return "\n".join(lines)


def main() -> None:
    args = arguments(__doc__.splitlines()[0], "memory_pg_hnsw.json")
    rng = random.Random(args.seed)
    queries = [words(rng, 8) for _ in range(args.queries)]
    prefix = history_prefix(args.postgres_url)
    exact = exact_neighbours(args.postgres_url, prefix, queries, 8)
    rows = []
    try:
        for m, ef_construction in SETTINGS:
            row: dict[str, Any] = {"m": m, "ef_construction": ef_construction}
            row.update(build_index(args.postgres_url, m, ef_construction))
            row.update(
                measure(
                    args.postgres_url,
                    queries,
                    exact,
                    args.calls,
                    args.repeats,
                    f"m{m}-ef{ef_construction}",
                )
            )
            rows.append(row)
            print(row, flush=True)
    finally:
        build_index(args.postgres_url, *DEFAULT)
    report = {
        "benchmark": "pgvector HNSW build settings: add cost against relevant recall",
        "command": recorded_command("bench/memory_pg_hnsw.py"),
        "calls": args.calls,
        "repeats": args.repeats,
        "queries": args.queries,
        "vectors": vector_total(args.postgres_url),
        "settings": rows,
        "postgres": postgres_versions(args.postgres_url),
        **machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(report, args.out, markdown)


if __name__ == "__main__":
    main()
