"""Which pgvector index could make `PreferenceMemory.add` on PostgreSQL cost under 1 ms?

`add` on PostgreSQL is dominated by the insert into the HNSW graph (bench/memory_pg_add.py), and
no HNSW build setting brings it under 1 ms (bench/memory_pg_hnsw.py). This script asks the same
of the other index kinds pgvector offers, on the history database bench/memory_select.py builds
(about 114k 384-dim vectors, every user's, under one index). For each kind it replaces the
index (under the store's own index name, so the store's setup leaves it be), then measures:

- `add` p50 for a probe user (the library's whole `add`, prompts drawn like the stored ones by
  `probe_prompt`; the user is deleted afterwards);
- the nearest-8 search for the 100k-example user, as SQL (the server's search and the round
  trip, without the library's own work): p50, and recall@8 against the exact scan over
  `--queries` queries (mean and worst), at each search setting.

Kinds: `hnsw` (LangGraph's default: m=16, ef_construction=64; `ef_search` 40 as the library asks
for k=8), `hnsw-bit` (HNSW over `binary_quantize(embedding)`, Hamming distance, and an exact
rerank of its `pool` nearest: a graph with cheaper distances), `ivfflat` (340 lists, about the
square root of the rows, built on the loaded table; `probes` lists read), `none` (no ANN index:
the exact scan). The default index is rebuilt at the end.

    python bench/memory_pg_index_kinds.py --postgres-url postgresql://fspo:fspo@127.0.0.1:5432/fspo_bench

Results: bench/results/memory_pg_index_kinds.{json,md}.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.memory_pg_add import probe_prompt  # noqa: E402
from bench.memory_pg_hnsw import (  # noqa: E402
    DEFAULT,
    arguments,
    build_index,
    exact_neighbours,
    history_prefix,
    hnsw_index,
    p50_ms,
    replace_index,
    vector_total,
)
from bench.memory_select import (  # noqa: E402
    EMBED,
    machine,
    open_memory,
    pg_vector,
    postgres_versions,
    words,
)
from bench.recorded import recorded_command, write_report  # noqa: E402

PROBE_USER = "index-kind-probe"
IVF_LISTS = 340


def kinds(dims: int) -> list[dict[str, Any]]:
    """Each kind: its index (None: none), and per search setting the SET and the nearest-8 SQL.

    The SQL takes (prefix, query vector literal) and, for the rerank, the literal again.
    """
    where = "FROM store_vectors WHERE prefix = %s AND field_name = 'prompt'"
    cosine = f"SELECT key {where} ORDER BY embedding <=> %s::vector LIMIT 8"

    def bit(pool: int) -> str:
        return (
            f"SELECT key FROM (SELECT key, embedding {where} "
            f"ORDER BY binary_quantize(embedding)::bit({dims}) <~> binary_quantize(%s::vector) "
            f"LIMIT {pool}) AS pool ORDER BY embedding <=> %s::vector LIMIT 8"
        )

    hnsw_scan = "SET hnsw.iterative_scan = relaxed_order"
    return [
        {
            "kind": "hnsw",
            "index": hnsw_index(*DEFAULT),
            "searches": [
                {
                    "setting": "ef_search 40",
                    "set": [hnsw_scan, "SET hnsw.ef_search = 40"],
                    "sql": cosine,
                },
            ],
        },
        {
            "kind": "hnsw-bit",
            "index": f"USING hnsw ((binary_quantize(embedding)::bit({dims})) bit_hamming_ops) "
            f"WITH (m = {DEFAULT[0]}, ef_construction = {DEFAULT[1]})",
            "searches": [
                {
                    "setting": f"pool {pool}",
                    "set": [hnsw_scan, f"SET hnsw.ef_search = {pool}"],
                    "sql": bit(pool),
                }
                for pool in (80, 160, 320)
            ],
        },
        {
            "kind": "ivfflat",
            "index": f"USING ivfflat (embedding vector_cosine_ops) WITH (lists = {IVF_LISTS})",
            "searches": [
                {
                    "setting": f"probes {probes}",
                    "set": [
                        "SET ivfflat.iterative_scan = relaxed_order",
                        f"SET ivfflat.probes = {probes}",
                    ],
                    "sql": cosine,
                }
                for probes in (10, 20, 40)
            ],
        },
        {
            "kind": "none",
            "index": None,
            "searches": [{"setting": "exact scan", "set": [], "sql": cosine}],
        },
    ]


def measure_add(url: str, calls: int, repeats: int, tag: str) -> dict[str, Any]:
    memory = open_memory("postgres", url, indexed=True)
    try:
        runs = [
            p50_ms(
                lambda i, r=r: memory.add(
                    PROBE_USER, prompt=probe_prompt(f"{tag}-{r}", i), chosen="y"
                ),
                calls,
            )
            for r in range(repeats)
        ]
        memory.forget(PROBE_USER)
    finally:
        memory.close()
    return {"add_p50_ms": round(statistics.median(runs), 3), "add_runs_p50_ms": runs}


def measure_search(
    url: str,
    search: dict[str, Any],
    prefix: str,
    literals: list[str],
    exact: list[set[str]],
    repeats: int,
) -> dict[str, Any]:
    """p50 of the nearest-8 SQL over `repeats` passes of the queries, and its recall@8."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in search["set"]:
            conn.execute(statement)
        samples, recalls = [], []
        for _ in range(repeats):
            for literal, truth in zip(literals, exact, strict=True):
                params = (prefix, literal, literal)[: search["sql"].count("%s")]
                start = time.perf_counter_ns()
                rows = conn.execute(search["sql"], params, prepare=False).fetchall()
                samples.append((time.perf_counter_ns() - start) / 1e6)
                recalls.append(len({str(r[0]) for r in rows} & truth) / len(truth))
    return {
        "setting": search["setting"],
        "search_p50_ms": round(statistics.median(samples), 3),
        "recall_at_8": {"mean": round(statistics.fmean(recalls), 3), "min": min(recalls)},
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# pgvector index kinds: `add` cost against nearest-8 search",
        "",
        (
            f"Command: `{report['command']}`. Date {report['date']}; "
            f"{report['machine']['cpu']}, {report['machine']['cpus']} CPUs. PostgreSQL: "
            f"{report['postgres']}."
        ),
        (
            f"{report['vectors']:,} 384-dim vectors under one index (every user's). `add`: the "
            f"median of {report['repeats']} runs' p50 of {report['calls']} calls of the "
            "library's `add`. Search: the nearest-8 SQL for a user of 100k examples (server "
            f"and round trip, not the library's work), p50 over {report['repeats']} passes of "
            f"{report['queries']} queries; recall@8 against the exact scan (mean, worst)."
        ),
        "",
        (
            "| index | `add` p50 ms | search setting | search p50 ms | recall@8 mean (worst) "
            "| index MB | build s |"
        ),
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in report["kinds"]:
        for i, search in enumerate(row["searches"]):
            recall = search["recall_at_8"]
            head = f"| {row['kind']} | {row['add_p50_ms']:.2f} |" if i == 0 else "| | |"
            tail = f" {row['index_mb']} | {row['build_s']} |" if i == 0 else " | |"
            lines.append(
                f"{head} {search['setting']} | {search['search_p50_ms']:.2f} | "
                f"{recall['mean']:.3f} ({recall['min']:.3f}) |{tail}"
            )
    lines += ["", report["reading"], ""]
    return "\n".join(lines)


READING = (
    "`hnsw` is what the library ships (LangGraph's index config); its graph insert is most of "
    "`add`. Hamming distances over binary-quantised vectors (`hnsw-bit`) halve that insert, "
    "still about 3x the 1 ms. An IVFFlat insert only finds its list: `add` costs about what it "
    "costs with no ANN index at all (both about 1 ms here, where the client and the server share "
    "2 cores), but its search reads whole lists (recall@8 0.96 takes 4x the HNSW search time), "
    "and its lists are fixed when it is built (LangGraph builds it at setup, on an empty table, "
    "so it must be rebuilt once the data is in). No kind gives an `add` well under 1 ms with a "
    "search like HNSW's."
)


def main() -> None:
    args = arguments(__doc__.splitlines()[0], "memory_pg_index_kinds.json")
    rng = random.Random(args.seed)
    queries = [words(rng, 8) for _ in range(args.queries)]
    literals = [pg_vector(EMBED.embed_query(q)) for q in queries]
    dims = literals[0].count(",") + 1
    prefix = history_prefix(args.postgres_url)
    exact = exact_neighbours(args.postgres_url, prefix, queries, 8)
    rows = []
    try:
        for kind in kinds(dims):
            row: dict[str, Any] = {"kind": kind["kind"], "index": kind["index"]}
            row.update(replace_index(args.postgres_url, kind["index"]))
            row.update(measure_add(args.postgres_url, args.calls, args.repeats, kind["kind"]))
            row["searches"] = [
                measure_search(args.postgres_url, s, prefix, literals, exact, args.repeats)
                for s in kind["searches"]
            ]
            rows.append(row)
            print(row, flush=True)
    finally:
        build_index(args.postgres_url, *DEFAULT)
    report = {
        "benchmark": "pgvector index kinds: add cost against nearest-8 search",
        "command": recorded_command("bench/memory_pg_index_kinds.py"),
        "calls": args.calls,
        "repeats": args.repeats,
        "queries": args.queries,
        "vectors": vector_total(args.postgres_url),
        "kinds": rows,
        "reading": READING,
        "postgres": postgres_versions(args.postgres_url),
        **machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(report, args.out, markdown)


if __name__ == "__main__":
    main()
