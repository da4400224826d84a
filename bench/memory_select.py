"""Cost of `PreferenceMemory` per strategy as a user's history grows, on SQLite and PostgreSQL.

Two stores per engine, each bulk-loaded once (kept between runs, rebuilt when the shape changes):

- history: 1,000 background users (3 examples each) and four measured users holding 10, 1k,
  10k and 100k examples, with a 384-dimension embedding index over `prompt`
  (`BenchEmbeddings`: hashed words, deterministic, no download). Timed per measured user:
  `select` with `recent` (k=8 and k=256), `relevant`, `diverse` (k=8, pool 32) and a callable
  (its 256-example window); `aselect` recent next to `select` recent; `add`. On every store,
  `relevant` and `diverse` also with `VectorSearch(mode="exact")` in the same run (in process
  the default approximates from 20k vectors per user; PostgreSQL's HNSW index serves users
  above 2,000 that are a large share of the table), the default's recall@8 against exact on
  64 queries, and the mean cosine of `diverse`'s picks to the query. On PostgreSQL the
  vectors are VACUUMed before the sweep and after each user's timed adds are deleted (the
  deleted rows would stay in the HNSW graph and slow later searches).
- users: 1,000 and 100,000 users of 3 examples (no index); `select` recent and `add` for a
  random user.

The in-memory store runs the history sweep up to 10k examples (at 100k its Python-list vectors
alone take about a gigabyte). Each figure is the median over `--repeats` runs of the p50 of
`--calls` calls (fewer for linear scans), wall-clock; the JSON keeps every run's p50 and p90.

    python bench/memory_select.py --postgres-url postgresql://fspo:fspo@127.0.0.1:5432/fspo_bench
    python bench/memory_select.py --sizes 10 1000 --users 1000 --calls 50   # smoke

The PostgreSQL database must have pgvector and must not be the test database (the vector
dimension is fixed per database). Results: bench/results/memory_select.{json,md}.

Over the house's ~400 lines because the store loaders, the timed calls and the result tables
of all three engines stay in the one script that produced the committed result.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: the machine is shared

import numpy as np  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.recorded import recorded_command, write_report  # noqa: E402
from langchain_fspo.memory import PreferenceMemory, VectorSearch  # noqa: E402
from langchain_fspo.preference import PreferenceExample  # noqa: E402

DIMS = 384
BACKGROUND_USERS = 1_000
HISTORY_SIZES = [10, 1_000, 10_000, 100_000]
"""Examples of the history store's measured users (`size{n}`)."""
WORDS = [
    *[
        "answer",
        "explain",
        "brief",
        "detailed",
        "example",
        "code",
        "history",
        "science",
        "travel",
        "budget",
        "recipe",
    ],
    *[
        "health",
        "music",
        "sport",
        "style",
        "tone",
        "formal",
        "casual",
        "list",
        "steps",
        "summary",
        "opinion",
        "evidence",
    ],
    *[
        "garden",
        "chess",
        "coffee",
        "bread",
        "novel",
        "hiking",
        "savings",
        "interest",
        "vaccine",
        "stretch",
        "plant",
    ],
]
_TOKEN = re.compile(r"\w+")


class BenchEmbeddings(Embeddings):
    """Deterministic 384-dim embeddings: each word adds a fixed random unit vector."""

    def __init__(self) -> None:
        self._words: dict[str, np.ndarray] = {}

    def _word(self, word: str) -> np.ndarray:
        vector = self._words.get(word)
        if vector is None:
            seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
            vector = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
            self._words[word] = vector
        return vector

    def _embed(self, text: str) -> list[float]:
        total = np.zeros(DIMS, dtype=np.float32)
        for word in _TOKEN.findall(text.lower()):
            total += self._word(word)
        norm = float(np.linalg.norm(total)) or 1.0
        values: list[float] = (total / norm).tolist()
        return values

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


EMBED = BenchEmbeddings()


def index_config() -> dict[str, Any]:
    return {"dims": DIMS, "embed": EMBED, "fields": ["prompt"]}


def pg_vector(vector: Sequence[float]) -> str:
    """`vector` as pgvector's text literal, for SQL the benchmarks send themselves."""
    return "[" + ",".join(map(repr, vector)) + "]"


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def example(rng: random.Random, i: int) -> dict[str, str]:
    return {
        "prompt": f"Q{i}: {words(rng, 20)}?",
        "chosen": words(rng, 30),
        "rejected": words(rng, 30),
    }


# ----------------------------------------------------------------------------- stores


def open_memory(kind: str, where: str, *, indexed: bool) -> PreferenceMemory:
    index: Any = index_config() if indexed else None
    if kind == "sqlite":
        return PreferenceMemory.sqlite(where, index=index)
    if kind == "postgres":
        return PreferenceMemory.postgres(where, index=index, max_connections=4)
    from langgraph.store.memory import InMemoryStore

    return PreferenceMemory(InMemoryStore(index=index))


def postgres_admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(sql)


def load(memory: PreferenceMemory, shape: dict[str, Any], seed: int) -> None:
    """Bulk-load `shape`: background users, then each measured user in chunks."""
    rng = random.Random(seed)
    users = shape["users"]
    for first in range(0, users, 5_000):
        memory.add_many_users(
            {
                f"user{u:06d}": [example(rng, j) for j in range(3)]
                for u in range(first, min(first + 5_000, users))
            },
            users_per_batch=500,
        )
    for size in shape["sizes"]:
        for first in range(0, size, 2_000):
            chunk = [example(rng, first + j) for j in range(min(2_000, size - first))]
            memory.add_many(f"size{size}", chunk)


def built_store(kind: str, where: str, shape: dict[str, Any], seed: int) -> PreferenceMemory:
    """Open the store at `where`, (re)building it unless it already has `shape`."""
    indexed = bool(shape["sizes"])
    marker = Path(args_cache_dir()) / f"{kind}-{hashlib.sha1(where.encode()).hexdigest()[:8]}.json"
    if kind != "memory" and marker.exists() and json.loads(marker.read_text()) == shape:
        return open_memory(kind, where, indexed=indexed)
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(where + suffix).unlink(missing_ok=True)
    if kind == "postgres":
        postgres_admin(
            where, "DROP TABLE IF EXISTS store_vectors, vector_migrations, store, store_migrations"
        )
    memory = open_memory(kind, where, indexed=indexed)
    if kind == "sqlite" and indexed:  # a first search creates the change log: load through it
        memory.select("nobody", "warm", k=1, strategy="relevant")
    if kind == "postgres" and indexed:  # bulk load first, then build the HNSW index once
        postgres_admin(where, "DROP INDEX IF EXISTS store_vectors_embedding_idx")
    start = time.perf_counter()
    load(memory, shape, seed)
    if kind == "postgres" and indexed:
        postgres_admin(
            where,
            "CREATE INDEX store_vectors_embedding_idx ON store_vectors "
            "USING hnsw (embedding vector_cosine_ops)",
        )
        postgres_admin(where, "VACUUM ANALYZE store")
        postgres_admin(where, "VACUUM ANALYZE store_vectors")
    print(f"built {kind} {shape} in {time.perf_counter() - start:.0f} s", flush=True)
    if kind != "memory":
        marker.write_text(json.dumps(shape))
    return memory


_CACHE = {"dir": "/tmp/fspo-bench"}


def use_cache_dir(path: str) -> None:
    """Keep the stores' shape markers (and the SQLite files) under `path` from now on."""
    _CACHE["dir"] = path


def args_cache_dir() -> str:
    return _CACHE["dir"]


def bytes_per_example(kind: str, memory: PreferenceMemory, where: str, examples: int) -> float:
    if kind == "sqlite":
        conn = memory.store.conn  # type: ignore[attr-defined]
        ((pages,),) = conn.execute("PRAGMA page_count").fetchall()
        ((size,),) = conn.execute("PRAGMA page_size").fetchall()
        return float(round(pages * size / examples))
    if kind == "postgres":
        import psycopg

        with psycopg.connect(where) as conn:
            row = conn.execute(
                "SELECT pg_total_relation_size('store') + "
                "COALESCE(pg_total_relation_size(to_regclass('store_vectors')), 0)"
            ).fetchone()
        return round(int(row[0]) / examples) if row else 0.0
    return 0.0


# ----------------------------------------------------------------------------- timing


def p50_p90(fn: Callable[[int], Any], calls: int) -> tuple[float, float]:
    samples = []
    for i in range(calls):
        start = time.perf_counter_ns()
        fn(i)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.9 * len(samples)))]


def measure(fn: Callable[[int], Any], calls: int, repeats: int) -> dict[str, Any]:
    for i in range(min(5, calls)):
        fn(i)
    runs = [p50_p90(fn, calls) for _ in range(repeats)]
    return {
        "p50_ms": round(statistics.median(r[0] for r in runs), 4),
        "runs_p50_ms": [round(r[0], 4) for r in runs],
        "runs_p90_ms": [round(r[1], 4) for r in runs],
        "calls": calls,
    }


def measure_async(memory: PreferenceMemory, user: str, calls: int, repeats: int) -> dict[str, Any]:
    async def body() -> dict[str, Any]:
        runs = []
        for _ in range(repeats + 1):
            samples = []
            for _ in range(calls):
                start = time.perf_counter_ns()
                await memory.aselect(user, "q", k=8)
                samples.append((time.perf_counter_ns() - start) / 1e6)
            runs.append(statistics.median(samples))
        runs = runs[1:]  # the first run warms the thread pool
        return {"p50_ms": round(statistics.median(runs), 4), "runs_p50_ms": runs, "calls": calls}

    return asyncio.run(body())


def window(
    examples: Sequence[PreferenceExample], query: str | None, k: int
) -> list[PreferenceExample]:
    """A callable strategy: the k shortest prompts of its window."""
    del query
    return sorted(examples, key=lambda e: len(e.prompt))[:k]


def exact_against_default(
    memory: PreferenceMemory, user: str, queries: list[str], calls: int, repeats: int
) -> dict[str, Any]:
    """`relevant` and `diverse` with an exact search, and the default's recall@8 against it."""

    def ids(query: str) -> set[str]:
        return {str(e.id) for e in memory.select(user, query, k=8, strategy="relevant")}

    def picks_relevance(query: str) -> float:
        """Mean cosine of `diverse`'s 8 picks to the query (how relevant its shots are)."""
        picks = memory.select(user, query, k=8, strategy="diverse")
        rows = np.array(EMBED.embed_documents([p.prompt for p in picks]))
        target = np.array(EMBED.embed_query(query))
        cosines = rows @ target / (np.linalg.norm(rows, axis=1) * np.linalg.norm(target))
        return float(cosines.mean())

    found = [ids(query) for query in queries]
    relevance = [picks_relevance(query) for query in queries]
    default = memory._vector_search  # noqa: SLF001
    memory._vector_search = VectorSearch(mode="exact")  # noqa: SLF001
    try:
        out = {
            "relevant_k8_exact": measure(
                lambda i: memory.select(user, queries[i % len(queries)], k=8, strategy="relevant"),
                calls,
                repeats,
            ),
            "diverse_k8_pool32_exact": measure(
                lambda i: memory.select(user, queries[i % len(queries)], k=8, strategy="diverse"),
                calls,
                repeats,
            ),
        }
        truth = [ids(query) for query in queries]
        relevance_exact = [picks_relevance(query) for query in queries]
    finally:
        memory._vector_search = default  # noqa: SLF001
    recalls = [len(t & f) / len(t) for t, f in zip(truth, found, strict=True) if t]
    out["relevant_recall_at_8"] = {
        "mean": round(statistics.fmean(recalls), 4),
        "min": round(min(recalls), 4),
        "queries": len(recalls),
    }
    out["diverse_picks_relevance"] = {
        "default": round(statistics.fmean(relevance), 4),
        "exact": round(statistics.fmean(relevance_exact), 4),
        "queries": len(queries),
    }
    return out


def measure_user(
    memory: PreferenceMemory, user: str, size: int, queries: list[str], calls: int, repeats: int
) -> dict[str, Any]:
    """Every strategy, async select and add, for one measured user."""
    assert memory.count(user) >= size, (user, memory.count(user))
    slow = max(calls // 10, 10) if size >= 10_000 else calls

    def q(i: int) -> str:
        return queries[i % len(queries)]

    row = {
        "recent_k8": measure(lambda i: memory.select(user, q(i), k=8), calls, repeats),
        "recent_k256": measure(lambda i: memory.select(user, q(i), k=256), slow, repeats),
        "relevant_k8": measure(
            lambda i: memory.select(user, q(i), k=8, strategy="relevant"), slow, repeats
        ),
        "diverse_k8_pool32": measure(
            lambda i: memory.select(user, q(i), k=8, strategy="diverse"), slow, repeats
        ),
        "diverse_no_query_k8": measure(
            lambda _: memory.select(user, None, k=8, strategy="diverse"), slow, repeats
        ),
        "callable_window256": measure(
            lambda i: memory.select(user, q(i), k=8, strategy=window), slow, repeats
        ),
        "aselect_recent_k8": measure_async(memory, user, calls, repeats),
    }
    row.update(exact_against_default(memory, user, queries, slow, repeats))
    index = getattr(memory._driver.engine, "_index", None)  # noqa: SLF001
    if index is not None:  # SQLite: the SQL scan the cached matrix replaced, same data and run
        index.available = False
        try:
            row["relevant_k8_sql_scan"] = measure(
                lambda i: memory.select(user, q(i), k=8, strategy="relevant"), slow, repeats
            )
        finally:
            index.available = True
    added: list[str] = []
    row["add"] = measure(
        lambda i: added.append(
            str(memory.add(user, prompt=f"new {i} {q(i)}", chosen="yes", rejected="no").id)
        ),
        calls,
        repeats,
    )
    for example_id in added:  # keep the store's shape for the next run
        memory.delete(user, example_id)
    vacuum(memory)
    row["async_over_sync_recent"] = round(
        row["aselect_recent_k8"]["p50_ms"] / row["recent_k8"]["p50_ms"], 2
    )
    return row


def vacuum(memory: PreferenceMemory) -> None:
    """VACUUM the vectors on PostgreSQL (a no-op on the other stores).

    The timed adds' deleted rows would otherwise stay in the HNSW graph (below autovacuum's
    threshold) and slow the searches timed after them, run after run.
    """
    engine: Any = memory._driver.engine  # noqa: SLF001
    if type(engine).__name__ != "PostgresEngine":
        return
    with engine._connection() as conn:  # noqa: SLF001
        conn.autocommit, before = True, conn.autocommit
        try:
            conn.execute("VACUUM ANALYZE store_vectors")
        finally:
            conn.autocommit = before


def history_queries(seed: int) -> list[str]:
    """The 64 queries the history sweep asks (drawn like the stored prompts)."""
    rng = random.Random(seed + 7)
    return [f"{words(rng, 8)}?" for _ in range(64)]


def history_sweep(
    kind: str, memory: PreferenceMemory, sizes: list[int], calls: int, repeats: int, seed: int
) -> dict[str, Any]:
    queries = history_queries(seed)
    out: dict[str, Any] = {}
    vacuum(memory)  # every run starts from a vacuumed index
    for size in sizes:
        row = measure_user(memory, f"size{size}", size, queries, calls, repeats)
        out[str(size)] = row
        print(
            kind,
            size,
            {k: v["p50_ms"] for k, v in row.items() if isinstance(v, dict) and "p50_ms" in v},
        )
    if kind == "postgres":  # last: the pending table it makes joins every later search
        for size in sizes:
            out[str(size)]["add_deferred"] = deferred_adds(memory, f"size{size}", calls, repeats)
    return out


def deferred_adds(memory: PreferenceMemory, user: str, calls: int, repeats: int) -> dict[str, Any]:
    """`add` on PostgreSQL with `defer_indexing=True` (its mover running), then deleted.

    The pending table is dropped afterwards, once the mover has moved everything: the next
    run measures the database as a store that never deferred.
    """
    import psycopg

    url = memory.store.conn.conninfo  # type: ignore[attr-defined]
    index: Any = index_config()
    deferred = PreferenceMemory.postgres(url, index=index, defer_indexing=True)
    added: list[str] = []
    try:
        result = measure(
            lambda i: added.append(
                str(
                    deferred.add(
                        user,
                        prompt=f"deferred {i} {words(random.Random(i), 8)}",
                        chosen="yes",
                        rejected="no",
                    ).id
                )
            ),
            calls,
            repeats,
        )
    finally:
        deferred.close()  # moves what is left
        for example_id in added:
            memory.delete(user, example_id)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS fspo_pending_vectors")
        vacuum(memory)
    return result


def users_sweep(memory: PreferenceMemory, users: int, calls: int, repeats: int) -> dict[str, Any]:
    rng = random.Random(users)
    picks = [f"user{rng.randrange(users):06d}" for _ in range(256)]
    added: list[tuple[str, str]] = []
    result = {
        "recent_k8": measure(lambda i: memory.select(picks[i % 256], k=8), calls, repeats),
        "add": measure(
            lambda i: added.append(
                (picks[i % 256], str(memory.add(picks[i % 256], prompt=f"n{i}", chosen="y").id))
            ),
            calls,
            repeats,
        ),
    }
    for user, example_id in added:
        memory.delete(user, example_id)
    return result


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    versions = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "git_commit": commit,
    }
    for package in (
        "langgraph-checkpoint",
        "langgraph-checkpoint-sqlite",
        "langgraph-checkpoint-postgres",
        "sqlite-vec",
        "psycopg",
        "numpy",
    ):
        versions[package] = version(package)
    return {
        "machine": {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def postgres_versions(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()
        vector = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        settings = conn.execute(
            "SELECT string_agg(name || '=' || setting, ' ') FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'shared_buffers', 'max_parallel_workers_per_gather')"
        ).fetchone()
    return {
        "postgresql": str(server[0] if server else "?"),
        "pgvector": str(vector[0] if vector else "none"),
        "settings": str(settings[0] if settings else ""),
    }


def picks_cell(relevance: dict[str, Any] | None) -> str:
    """`default, exact` cosines of `diverse`'s picks (blank for runs that did not measure it)."""
    if not relevance:
        return " |"
    return f"{relevance['default']:.3f}, {relevance['exact']:.3f} |"


def markdown(report: dict[str, Any]) -> str:
    load = report["load_average_1m"]
    lines = [
        "# PreferenceMemory: cost per strategy as the history grows",
        "",
        (
            f"Command: `{report['command']}`. Date {report['date']}; {report['machine']['cpu']}, "
            f"{report['machine']['cpus']} CPUs, shared with other jobs (load average "
            f"{load['before']:.1f} before, {load['after']:.1f} after)."
        ),
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".",
        *[
            f"An earlier run kept by --merge: date {run['date']}, git_commit "
            f"{run['versions']['git_commit']}, load average {run['load_average_1m']['before']:.1f}"
            f" before, {run['load_average_1m']['after']:.1f} after."
            for run in report.get("earlier_runs", [])
        ],
        (
            f"Each cell: median over {report['repeats']} repeats of the p50 wall-clock ms of "
            "the calls (the JSON beside this file has every run's p50 and p90)."
        ),
        "",
    ]
    for kind, sweep in report["history"].items():
        lines += [f"## {kind}: examples per user (384-dim index on prompt)", ""]
        deferred = all("add_deferred" in row for row in sweep.values())
        lines.append(
            "| examples | recent k=8 | recent k=256 | relevant k=8 | diverse k=8 | "
            "diverse k=8, no query | callable | aselect k=8 | async/sync | add |"
            + (" add, deferred indexing |" if deferred else "")
        )
        lines.append(
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            + (" ---: |" if deferred else "")
        )
        for size, row in sweep.items():
            cells = [
                row[m]["p50_ms"]
                for m in (
                    "recent_k8",
                    "recent_k256",
                    "relevant_k8",
                    "diverse_k8_pool32",
                    "diverse_no_query_k8",
                    "callable_window256",
                    "aselect_recent_k8",
                )
            ]
            lines.append(
                f"| {int(size):,} | "
                + " | ".join(f"{c:.3f}" for c in cells)
                + f" | {row['async_over_sync_recent']:.2f} | {row['add']['p50_ms']:.3f} |"
                + (f" {row['add_deferred']['p50_ms']:.3f} |" if deferred else "")
            )
        if deferred:
            lines += [
                "",
                (
                    "`add, deferred indexing`: `PreferenceMemory.postgres(..., "
                    "defer_indexing=True)` (the vector written beside the HNSW index and moved "
                    "into it by a background thread, running meanwhile on the same cores), "
                    "measured after every other "
                    "column; bench/results/memory_pg_deferred.md has its backlog and search cost."
                ),
            ]
        scans = {size: row for size, row in sweep.items() if "relevant_k8_sql_scan" in row}
        if scans:
            lines += [
                "",
                (
                    "`relevant` k=8 on the same data, the cached matrix against the exact SQL scan "
                    "(sqlite-vec distance functions) it replaced:"
                ),
                "",
                "| examples | cached matrix | SQL scan |",
                "| ---: | ---: | ---: |",
            ]
            lines += [
                f"| {int(size):,} | {row['relevant_k8']['p50_ms']:.3f} | "
                f"{row['relevant_k8_sql_scan']['p50_ms']:.3f} |"
                for size, row in scans.items()
            ]
        pairs = {size: row for size, row in sweep.items() if "relevant_k8_exact" in row}
        default = (
            "the engine's choice (an exact scan in the database for a user of at most 2,000 "
            "vectors or a small share of the table; else pgvector's HNSW index, `ef_search` 40 "
            "for `diverse`'s pool of 32)"
            if kind == "postgres"
            else "the default `VectorSearch()` (exact below 20,000 vectors per user; above, an "
            "IVF index: the rows of the nearest coarse lists up to 16,384, a sign-code filter to "
            "512 and an exact rerank; `diverse` draws its pool of 32 from the nearest lists' "
            "first 2,048 rows, `VectorSearch.pool_probe`)"
        )
        if pairs:
            lines += [
                "",
                (
                    f"`relevant` and `diverse` k=8, {default}, against "
                    '`VectorSearch(mode="exact")`, same data and run; recall@8 of the '
                    "default's `relevant` against exact over 64 queries (mean, min); the mean "
                    "cosine of `diverse`'s 8 picks to the query, default against exact:"
                ),
                "",
                (
                    "| examples | relevant | relevant exact | diverse | diverse exact | recall@8 "
                    "| diverse picks' cosine (default, exact) |"
                ),
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            lines += [
                f"| {int(size):,} | {row['relevant_k8']['p50_ms']:.3f} | "
                f"{row['relevant_k8_exact']['p50_ms']:.3f} | "
                f"{row['diverse_k8_pool32']['p50_ms']:.3f} | "
                f"{row['diverse_k8_pool32_exact']['p50_ms']:.3f} | "
                f"{row['relevant_recall_at_8']['mean']:.3f}, "
                f"{row['relevant_recall_at_8']['min']:.3f} | "
                + picks_cell(row.get("diverse_picks_relevance"))
                for size, row in pairs.items()
            ]
        extra = report["bytes_per_example"].get(kind)
        if extra:
            lines += ["", f"Bytes per stored example (with its vector): {extra:,.0f}."]
        lines.append("")
    for kind, sweep in report["users"].items():
        lines += [f"## {kind}: users in the store (no index)", "", "| users | recent k=8 | add |"]
        lines.append("| ---: | ---: | ---: |")
        for users, row in sweep.items():
            recent, add = row["recent_k8"]["p50_ms"], row["add"]["p50_ms"]
            lines.append(f"| {int(users):,} | {recent:.3f} | {add:.3f} |")
        lines.append("")
    if report.get("postgres"):
        lines.append(f"PostgreSQL: {report['postgres']}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=HISTORY_SIZES)
    parser.add_argument("--users", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-max", type=int, default=100_000, help="largest in-memory size")
    parser.add_argument("--postgres-url", default=os.environ.get("FSPO_BENCH_POSTGRES_URL"))
    parser.add_argument(
        "--postgres-users-url",
        help="URL for the users stores, with {users} for the count (default: --postgres-url; "
        "one database for all shapes means a rebuild per shape and run)",
    )
    parser.add_argument(
        "--stores", nargs="+", default=["memory", "sqlite", "postgres"], help="which stores"
    )
    parser.add_argument("--cache", default="/tmp/fspo-bench")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results/memory_select.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--merge", action="store_true", help="update --out with the stores run, keep the rest"
    )
    args = parser.parse_args()
    use_cache_dir(args.cache)
    Path(args.cache).mkdir(parents=True, exist_ok=True)

    load_before = os.getloadavg()
    engines = [k for k in args.stores if k != "postgres" or args.postgres_url]
    history: dict[str, Any] = {}
    users_out: dict[str, Any] = {}
    sizes_bytes: dict[str, float] = {}
    for kind in engines:
        sizes = [s for s in args.sizes if kind != "memory" or s <= args.memory_max]
        where = args.postgres_url if kind == "postgres" else f"{args.cache}/history.db"
        shape = {"users": BACKGROUND_USERS, "sizes": sizes, "seed": args.seed}
        with built_store(kind, where, shape, args.seed) as memory:
            examples = BACKGROUND_USERS * 3 + sum(sizes)
            sizes_bytes[kind] = bytes_per_example(kind, memory, where, examples)
            history[kind] = history_sweep(kind, memory, sizes, args.calls, args.repeats, args.seed)
        if kind == "memory":
            continue
        users_out[kind] = {}
        for users in args.users:
            where_u = (
                (args.postgres_users_url or args.postgres_url).format(users=users)
                if kind == "postgres"
                else f"{args.cache}/users{users}.db"
            )
            shape_u = {"users": users, "sizes": [], "seed": args.seed}
            with built_store(kind, where_u, shape_u, args.seed) as memory:
                users_out[kind][str(users)] = users_sweep(memory, users, args.calls, args.repeats)
            print(kind, users, users_out[kind][str(users)], flush=True)
    load_after = os.getloadavg()
    report = {
        "benchmark": "PreferenceMemory cost per strategy, history and user count",
        "command": recorded_command("bench/memory_select.py"),
        "repeats": args.repeats,
        "history": history,
        "users": users_out,
        "bytes_per_example": sizes_bytes,
        **machine(),
        "postgres": postgres_versions(args.postgres_url) if args.postgres_url else None,
        "load_average_1m": {"before": load_before[0], "after": load_after[0]},
    }
    if args.merge and args.out.exists():  # keep the other stores' results of an earlier run
        earlier = json.loads(args.out.read_text())
        for part in ("history", "users", "bytes_per_example"):
            report[part] = {**earlier.get(part, {}), **report[part]}
        report["command"] = f"{earlier['command']}; then {report['command']}"
        report["earlier_runs"] = [
            *earlier.get("earlier_runs", []),
            {k: earlier.get(k) for k in ("date", "versions", "load_average_1m", "machine")},
        ]
        report["postgres"] = report["postgres"] or earlier.get("postgres")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(report, args.out, markdown)


if __name__ == "__main__":
    main()
