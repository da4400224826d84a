"""Where `diverse` spends its time, for a user of 10 examples and one of 100k.

`select(strategy="diverse", k=8)` with a query embeds the query, draws a pool of the 32
examples nearest it through the store's vector search (`fetch_k`, default `max(32, 4k)`),
runs MMR over the pool's stored vectors, and turns the 8 picks into examples. A user with 10
examples has a pool of 10: every example, found by an exact scan of 10 vectors. At 100k the
pool is full and comes from the store's index. This script times, on the stores
bench/memory_select.py builds (same data, same queries), per store and user:

- `whole`: the `select` call, as in memory_select's `diverse k=8` column;
- `whole, pool 10`: the same with `fetch_k=10` (the pool size the 10-example user gets);
- `embed`: the query's embedding alone (the benchmark's hashed-word embeddings);
- `pool search`: the engine's search for the 32 nearest with their stored vectors and rows
  alone (a pre-computed query vector);
- `MMR`: `mmr_indices` over those 32 vectors alone;
- `rest`: `whole` minus those three (plan, rows to examples, ordering).

The necessary parts at 100k (embed, pool search, MMR) against twice the 10-example `whole`
say whether the 2x target of the memory issue can be met at all with a 32-candidate pool.

    python bench/memory_diverse_parts.py --cache /tmp/fspo-bench \
        --postgres-url postgresql://fspo:fspo@127.0.0.1:5432/fspo_bench

`--cache` must be the one memory_select used (its SQLite history database is reused; the
PostgreSQL database must hold memory_select's history shape). Results:
bench/results/memory_diverse_parts.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.memory_select import (  # noqa: E402
    BACKGROUND_USERS,
    EMBED,
    HISTORY_SIZES,
    built_store,
    history_queries,
    machine,
    measure,
    postgres_versions,
    use_cache_dir,
)
from bench.recorded import recorded_command, write_report  # noqa: E402
from langchain_fspo.memory import PreferenceMemory  # noqa: E402
from langchain_fspo.memory._engines import Nearest, Row  # noqa: E402
from langchain_fspo.selection import mmr_indices  # noqa: E402

MEASURED = [10, 100_000]
POOL = 32
K = 8
PARTS = ("whole", "whole_pool10", "embed", "pool_search", "mmr")


def pool_rows(memory: PreferenceMemory, user: str, vector: list[float]) -> list[Row]:
    """The engine's pool search, as `diverse` asks for it (rows with their stored vectors)."""

    def plan() -> Any:
        rows = yield Nearest(
            memory.namespaces(user).examples,
            "prompt",
            POOL,
            vector=vector,
            with_vectors=True,
            search=memory._vector_search,  # noqa: SLF001
            pool=True,
        )
        return rows

    rows: list[Row] = memory._driver.run(plan())  # noqa: SLF001
    return rows


def parts(
    memory: PreferenceMemory, user: str, queries: list[str], calls: int, repeats: int
) -> dict[str, Any]:
    vectors = [EMBED.embed_query(q) for q in queries]
    pools = [[r.vector for r in pool_rows(memory, user, v)] for v in vectors]
    n = len(queries)
    out: dict[str, Any] = {
        "whole": measure(
            lambda i: memory.select(user, queries[i % n], k=K, strategy="diverse"), calls, repeats
        ),
        "whole_pool10": measure(
            lambda i: memory.select(user, queries[i % n], k=K, strategy="diverse", fetch_k=10),
            calls,
            repeats,
        ),
        "embed": measure(lambda i: EMBED.embed_query(queries[i % n]), calls, repeats),
        "pool_search": measure(lambda i: pool_rows(memory, user, vectors[i % n]), calls, repeats),
        "mmr": measure(lambda i: mmr_indices(pools[i % n], vectors[i % n], K), calls, repeats),
        "pool_size": len(pools[0]),
    }
    necessary = sum(out[p]["p50_ms"] for p in ("embed", "pool_search", "mmr"))
    out["rest_ms"] = round(out["whole"]["p50_ms"] - necessary, 4)
    out["necessary_ms"] = round(necessary, 4)
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# `diverse` k=8: where a call spends its time, 10 examples against 100k",
        "",
        (
            f"Command: `{report['command']}`. Date {report['date']}; "
            f"{report['machine']['cpu']}, {report['machine']['cpus']} CPUs, shared with other "
            f"jobs (load average {report['load_average_1m']['before']:.1f} before, "
            f"{report['load_average_1m']['after']:.1f} after)."
        ),
        f"Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}.",
        f"PostgreSQL: {report['postgres']}." if report.get("postgres") else "PostgreSQL: not run.",
        (
            f"Each cell: the median over {report['repeats']} repeats of the p50 wall-clock ms "
            f"of {report['calls']} calls; memory_select's stores and 64 queries. `necessary` "
            "is embed + pool search + MMR; `bound` is `necessary` at 100k over the 10-example "
            "`whole`."
        ),
        "",
        (
            "| store | examples | whole | whole, pool 10 | embed | pool search | MMR | rest "
            "| necessary | bound |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, rows in report["stores"].items():
        small = rows[str(MEASURED[0])]["whole"]["p50_ms"]
        for size, row in rows.items():
            bound = f"{row['necessary_ms'] / small:.2f}x" if int(size) == MEASURED[-1] else ""
            cells = [f"{row[p]['p50_ms']:.3f}" for p in PARTS]
            lines.append(
                f"| {kind} | {int(size):,} (pool {row['pool_size']}) | {' | '.join(cells)} | "
                f"{row['rest_ms']:.3f} | {row['necessary_ms']:.3f} | {bound} |"
            )
    lines += [
        "",
        (
            "The 10-example user's pool is every example (10), found by an exact scan; the "
            "100k-example user's is the 32 nearest through the store's index (in process: "
            "coarse lists and sign codes, `VectorSearch.pool()`; PostgreSQL: pgvector's HNSW "
            "index). A `bound` above 2x means no change outside those three parts can bring "
            "the 100k call within twice the 10-example call; `whole, pool 10` is the "
            "comparison at equal pool size."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=os.environ.get("FSPO_BENCH_POSTGRES_URL"))
    parser.add_argument("--stores", nargs="+", default=["memory", "sqlite", "postgres"])
    parser.add_argument("--cache", default="/tmp/fspo-bench")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "bench/results/memory_diverse_parts.json"
    )
    args = parser.parse_args()
    use_cache_dir(args.cache)
    queries = history_queries(args.seed)
    load_before = os.getloadavg()
    stores: dict[str, Any] = {}
    for kind in args.stores:
        if kind == "postgres" and not args.postgres_url:
            continue
        where = args.postgres_url if kind == "postgres" else f"{args.cache}/history.db"
        shape = {"users": BACKGROUND_USERS, "sizes": HISTORY_SIZES, "seed": args.seed}
        if kind == "memory":  # in process only the two measured users
            shape = {"users": 0, "sizes": MEASURED, "seed": args.seed}
        with built_store(kind, where, shape, args.seed) as memory:
            stores[kind] = {}
            for size in MEASURED:
                row = parts(memory, f"size{size}", queries, args.calls, args.repeats)
                stores[kind][str(size)] = row
                print(kind, size, {p: row[p]["p50_ms"] for p in PARTS}, flush=True)
    load_after = os.getloadavg()
    report = {
        "benchmark": "diverse k=8: time per part, 10 against 100k examples",
        "command": recorded_command("bench/memory_diverse_parts.py"),
        "calls": args.calls,
        "repeats": args.repeats,
        "stores": stores,
        **machine(),
        "postgres": postgres_versions(args.postgres_url) if args.postgres_url else None,
        "load_average_1m": {"before": load_before[0], "after": load_after[0]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(report, args.out, markdown)


if __name__ == "__main__":
    main()
