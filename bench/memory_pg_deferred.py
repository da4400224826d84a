"""`PreferenceMemory.add` on PostgreSQL with deferred indexing, against the default.

Runs on the history database `bench/memory_select.py` builds (about 114k 384-dim vectors under
one HNSW index). Per repeat, in turn:

- `add` p50/p90 of `--calls` calls by one user, back to back: the default memory (the vector
  inserted into the HNSW graph in the request), then `defer_indexing=True` (the vector written
  to the pending table; the memory's mover inserts it meanwhile, on the same 2 cores), then the
  default once the pending table exists (its writes also clear a pending vector). After the
  deferred adds: how many were still pending and how long the mover took to finish them.
- `relevant` k=8 on the 100k-example user (`--queries` queries, p50): without the pending table,
  with it empty, and with `--pending` of that user's own vectors pending (mover held).

    python bench/memory_pg_deferred.py --postgres-url postgresql://fspo:fspo@127.0.0.1:5432/fspo_bench

The database must not have the pending table (the run drops it at the end). Result:
bench/results/memory_pg_deferred.{json,md}.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, cast

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.memory_pg_add import USER, probe_prompt  # noqa: E402
from bench.memory_select import (  # noqa: E402
    index_config,
    machine,
    postgres_versions,
    words,
)
from bench.recorded import recorded_command, write_report  # noqa: E402
from langchain_fspo.memory import PreferenceMemory  # noqa: E402
from langchain_fspo.memory._pg_pending import PENDING_TABLE  # noqa: E402

HISTORY_USER = "size100000"
ROUNDS = 3
"""Rounds of the search timings without and with the (empty) pending table, in turn."""
VARIANTS = {
    "default": "default (HNSW insert in the request)",
    "deferred": "`defer_indexing=True` (its mover running)",
    "default_beside_pending_table": "default, once the pending table exists",
}


def open_memory(url: str, *, deferred: bool = False) -> PreferenceMemory:
    return PreferenceMemory.postgres(
        url, index=cast("Any", index_config()), max_connections=4, defer_indexing=deferred
    )


def sql(url: str, text: str, params: Any = ()) -> Any:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(text, params)
        return cur.fetchall() if cur.description is not None else None


def pending_count(url: str) -> int:
    return int(sql(url, f"SELECT count(*) FROM {PENDING_TABLE}")[0][0])


def p50_p90(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 4),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
    }


def time_adds(memory: PreferenceMemory, tag: str, calls: int) -> list[float]:
    samples = []
    for i in range(calls):
        prompt = probe_prompt(tag, i)
        start = time.perf_counter_ns()
        memory.add(USER, prompt=prompt, chosen="y")
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def adds(url: str, calls: int, repeat: int) -> dict[str, Any]:
    """One repeat of the three `add` variants (module docstring)."""
    out: dict[str, Any] = {}
    memory = open_memory(url)
    try:
        time_adds(memory, f"warm-default-{repeat}", 5)
        out["default"] = p50_p90(time_adds(memory, f"default-{repeat}", calls))
    finally:
        memory.close()
    memory = open_memory(url, deferred=True)
    mover = memory._driver.engine._mover  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        time_adds(memory, f"warm-deferred-{repeat}", 5)
        out["deferred"] = p50_p90(time_adds(memory, f"deferred-{repeat}", calls))
        start = time.perf_counter()
        out["deferred"]["pending_after_last_add"] = pending_count(url)
        while pending_count(url):
            time.sleep(0.01)
        out["deferred"]["drain_s"] = round(time.perf_counter() - start, 3)
        out["deferred"]["moved_by_its_mover"] = mover.moved
    finally:
        memory.close()
    memory = open_memory(url)
    try:
        time_adds(memory, f"warm-after-{repeat}", 5)
        out["default_beside_pending_table"] = p50_p90(time_adds(memory, f"after-{repeat}", calls))
    finally:
        memory.forget(USER)
        memory.close()
    return out


def searches(url: str, queries: list[str], pending: int) -> dict[str, Any]:
    """`relevant` p50 on the history user: no pending table, empty, `pending` rows pending."""
    from langchain_fspo.memory import _engine_postgres as engine_module

    def timed(memory: PreferenceMemory) -> float:
        for q in queries[:8]:
            memory.select(HISTORY_USER, q, k=8, strategy="relevant")
        samples = []
        for q in queries:
            start = time.perf_counter_ns()
            memory.select(HISTORY_USER, q, k=8, strategy="relevant")
            samples.append((time.perf_counter_ns() - start) / 1e6)
        return round(statistics.median(samples), 4)

    out: dict[str, Any] = {}
    memory = open_memory(url, deferred=True)  # creates the table; its mover is held below
    memory._driver.engine._mover.close()  # type: ignore[attr-defined]  # noqa: SLF001
    added: list[str] = []
    try:
        schema = engine_module._schemas[memory.store]  # noqa: SLF001
        rounds: dict[str, list[float]] = {"no_pending_table": [], "pending_table_empty": []}
        for _ in range(ROUNDS):  # in turn: a drift of the machine hits both alike
            for name, pending_table in (("no_pending_table", False), ("pending_table_empty", True)):
                schema.pending = pending_table
                rounds[name].append(timed(memory))
        for name, values in rounds.items():
            out[name] = statistics.median(values)
            out[f"{name}_rounds"] = values
        for first in range(0, pending, 500):
            batch = [
                {"prompt": f"pending {first + i} " + words_for(first + i), "chosen": "y"}
                for i in range(min(500, pending - first))
            ]
            added += [str(e.id) for e in memory.add_many(HISTORY_USER, batch)]
        out["pending_rows"] = pending_count(url)
        out["with_pending"] = timed(memory)
    finally:
        for example_id in added:
            memory.delete(HISTORY_USER, example_id)
        memory.close()
    return out


def words_for(i: int) -> str:
    return words(random.Random(f"pending-{i}"), 8)


def markdown(report: dict[str, Any]) -> str:
    runs = report["adds"]

    def cell(variant: str, key: str) -> str:
        values = [run[variant][key] for run in runs]
        return f"{statistics.median(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})"

    lines = [
        "# PreferenceMemory.add on PostgreSQL: deferred indexing against the default",
        "",
        (
            f"Command: `{report['command']}`. Date {report['date']}; {report['machine']['cpu']}, "
            f"{report['machine']['cpus']} CPUs shared with other jobs. PostgreSQL: "
            f"{report['postgres']}. Versions: {report['versions']}."
        ),
        (
            f"History database: {report['vectors_in_table']:,} vectors under one HNSW index. "
            f"Each cell: the median over {len(runs)} repeats of {report['calls']} back-to-back "
            "adds' p50 (p90), each repeat's in brackets."
        ),
        "",
        "| `add` | p50 ms | p90 ms |",
        "| --- | ---: | ---: |",
        *(
            f"| {label} | {cell(variant, 'p50_ms')} | {cell(variant, 'p90_ms')} |"
            for variant, label in VARIANTS.items()
        ),
        "",
        (
            "After the deferred adds (back to back, far faster than the graph takes them): "
            + "; ".join(
                f"{run['deferred']['pending_after_last_add']} pending, moved in "
                f"{run['deferred']['drain_s']:.2f} s"
                for run in runs
            )
            + "."
        ),
        "",
        (
            f"`relevant` k=8 on the 100k-example user, p50 of {report['queries']} queries "
            "(without and with the empty table: the median of 3 rounds taken in turn, each "
            "round's in brackets; then the pending vectors added, one round):"
        ),
        "",
        "| pending table | p50 ms |",
        "| --- | ---: |",
    ]
    s = report["searches"]

    def rounds(name: str) -> str:
        return f"{s[name]:.3f} ({', '.join(f'{v:.3f}' for v in s[name + '_rounds'])})"

    lines += [
        f"| none (no memory on the database defers) | {rounds('no_pending_table')} |",
        f"| exists, empty | {rounds('pending_table_empty')} |",
        f"| {s['pending_rows']:,} of this user's vectors pending | {s['with_pending']:.3f} |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--pending", type=int, default=1000)
    args = parser.parse_args()
    url = args.postgres_url
    if sql(url, "SELECT to_regclass(%s) IS NOT NULL", (PENDING_TABLE,))[0][0]:
        sys.exit(
            f"{PENDING_TABLE} exists: the default would not be measured as a database without "
            f"deferred indexing. Let a deferring memory move its vectors, then DROP TABLE it."
        )
    rng = random.Random(0)
    queries = [words(rng, 8) for _ in range(args.queries)]
    report: dict[str, Any] = {
        "benchmark": "PreferenceMemory.add on PostgreSQL: deferred indexing against the default",
        "command": recorded_command("bench/memory_pg_deferred.py"),
        "calls": args.calls,
        "queries": args.queries,
        "pending": args.pending,
        "vectors_in_table": int(sql(url, "SELECT count(*) FROM store_vectors")[0][0]),
        "postgres": postgres_versions(url),
        **machine(),
    }
    try:
        report["searches"] = searches(url, queries, args.pending)
        report["adds"] = []
        for repeat in range(args.repeats):
            sql(url, f"DROP TABLE IF EXISTS {PENDING_TABLE}")  # each default first: as before
            report["adds"].append(adds(url, args.calls, repeat))
            print(report["adds"][-1], flush=True)
    finally:
        sql(url, f"DROP TABLE IF EXISTS {PENDING_TABLE}")
        sql(url, "VACUUM store_vectors")  # the probe's deleted vectors out of the graph
    write_report(report, REPO_ROOT / "bench/results/memory_pg_deferred.json", markdown)


if __name__ == "__main__":
    main()
