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
import random
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.memory_select import (  # noqa: E402
    BenchEmbeddings,
    machine,
    open_memory,
    pg_vector,
    postgres_versions,
    words,
)
from bench.recorded import recorded_command  # noqa: E402

USER = "add-probe"


def probe_prompt(tag: str, i: int) -> str:
    """A prompt drawn like the stored ones (8 of the benchmark's words), distinct per `tag`, i.

    Its vector lands among the stored ones, as a real user's next prompt would. Short prompts
    of words the vocabulary mostly lacks ("probe 7 tone brief", this script's runs before
    2026-12-06T12:00) land apart from them, and their HNSW inserts are cheaper: `add` 1.44 ms
    then against 4.47 ms with these (the committed results, same database and machine).
    """
    return f"{tag} {i} " + words(random.Random(f"{tag}-{i}"), 8)


def p50(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def with_option(url: str, option: str) -> str:
    from urllib.parse import quote

    return url + ("&" if "?" in url else "?") + "options=" + quote(option, safe="")


def client_side(url: str, plain_url: str | None, calls: int, repeats: int) -> dict[str, Any]:
    """p50 ms of `add` per variant, one call of each in turn (a load change hits all alike).

    Variants: the history database as is; its connections with synchronous_commit off; the
    same write sent through `PostgresStore.batch` (a pipeline, the vector as a float list: the
    path before the engine wrote itself); a database without an embedding index (`plain_url`,
    no vector written); the embedding alone.
    """
    embed = BenchEmbeddings()
    memories = {
        "add": open_memory("postgres", url, indexed=True),
        "add_synchronous_commit_off": open_memory(
            "postgres", with_option(url, "-c synchronous_commit=off"), indexed=True
        ),
    }
    previous = open_memory("postgres", url, indexed=True)
    previous._driver.engine._own_write = lambda _ops: False  # type: ignore[attr-defined]  # noqa: SLF001
    memories["add_via_store_batch"] = previous  # the path before: PostgresStore.batch
    if plain_url:
        memories["add_no_vector_index"] = open_memory("postgres", plain_url, indexed=False)
    samples: dict[str, list[list[float]]] = {name: [] for name in [*memories, "embed"]}
    try:
        for memory in memories.values():  # warm the pools and caches
            for i in range(5):
                memory.add(USER, prompt=f"warm {i}", chosen="y")
        for _ in range(repeats):
            for values in samples.values():
                values.append([])
            for i in range(calls):
                for name, memory in memories.items():  # each its own prompts: no duplicates
                    prompt = probe_prompt(name, i)
                    start = time.perf_counter_ns()
                    memory.add(USER, prompt=prompt, chosen="y")
                    samples[name][-1].append((time.perf_counter_ns() - start) / 1e6)
                start = time.perf_counter_ns()
                embed.embed_documents([probe_prompt("embed", i)])
                samples["embed"][-1].append((time.perf_counter_ns() - start) / 1e6)
    finally:
        for memory in memories.values():
            memory.forget(USER)
            memory.close()
    out = {}
    for name, runs in samples.items():
        p50s = [p50(run) for run in runs]
        out[name] = {"p50_ms": p50(p50s), "runs_p50_ms": p50s}
    return out


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
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        index_row = cur.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'store_vectors_embedding_idx'"
        ).fetchone()
        vectors_row = cur.execute("SELECT count(*) FROM store_vectors").fetchone()
        assert index_row is not None  # count(*) returns one row
        assert vectors_row is not None
        (has_index,), (vectors,) = index_row, vectors_row
        out["vectors_in_table"] = int(vectors)
        out["hnsw_index"] = bool(has_index)
        for variant in ("with_hnsw", "without_hnsw"):
            row_ms, vector_ms = [], []
            wal: dict[str, Any] = {}
            for i in range(calls):
                key = f"k{i}"
                vector = pg_vector(embed.embed_query(probe_prompt("probe", i)))
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
        out["commit_p50_ms"] = p50(_commits(conn, cur, prefix, calls))
    return out


def _commits(conn: Any, cur: Any, prefix: str, calls: int) -> list[float]:
    """Client-timed COMMIT of a transaction holding one row and its vector (kept, then deleted)."""
    embed = BenchEmbeddings()
    samples = []
    try:
        for i in range(calls):
            vector = pg_vector(embed.embed_query(probe_prompt("commit", i)))
            cur.execute("BEGIN")
            cur.execute(
                "INSERT INTO store (prefix, key, value) VALUES (%s, %s, '{}')", (prefix, f"c{i}")
            )
            cur.execute(
                "INSERT INTO store_vectors (prefix, key, field_name, embedding) "
                "VALUES (%s, %s, 'prompt', %s::vector)",
                (prefix, f"c{i}", vector),
            )
            start = time.perf_counter_ns()
            cur.execute("COMMIT")
            samples.append((time.perf_counter_ns() - start) / 1e6)
    finally:
        if conn.info.transaction_status != 0:  # not IDLE: a failed insert
            cur.execute("ROLLBACK")
        cur.execute("DELETE FROM store WHERE prefix = %s", (prefix,))
    return samples


def server_log(url: str, admin_url: str, log_path: Path, calls: int) -> dict[str, Any]:
    """Server-side duration of each `add`'s one message (both INSERTs and the commit).

    Switches `log_min_duration_statement` to 0 (superuser `admin_url`) for `calls` adds, then
    back, and reads the durations PostgreSQL logged for them from `log_path`.
    """
    import psycopg

    start = log_path.stat().st_size
    settings = ("ALTER SYSTEM SET log_min_duration_statement = 0", "SELECT pg_reload_conf()")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for sql in settings:
            admin.execute(sql)
    time.sleep(1)
    memory = open_memory("postgres", url, indexed=True)
    client = []
    try:
        for i in range(calls):
            begin = time.perf_counter_ns()
            memory.add(USER, prompt=probe_prompt("logged", i), chosen="y")
            client.append((time.perf_counter_ns() - begin) / 1e6)
    finally:
        memory.forget(USER)
        memory.close()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("ALTER SYSTEM RESET log_min_duration_statement")
            admin.execute("SELECT pg_reload_conf()")
    with log_path.open("rb") as log:
        log.seek(start)
        text = log.read().decode(errors="replace")
    # A simple-query message is logged as "duration: X ms  statement: " + its text, whose
    # first line is empty for PostgresStore's statements.
    server = [
        float(m.group(1))
        for m in re.finditer(r"duration: ([0-9.]+) ms  statement: \s*\n\s*INSERT INTO store ", text)
    ]
    return {
        "client_add_p50_ms": p50(client),
        "server_message_p50_ms": p50(server),
        "n": len(server),
    }


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
        (
            f"| `add` through `PostgresStore.batch` (the previous path) | "
            f"{client['add_via_store_batch']['p50_ms']:.3f} |"
        ),
        f"| embedding one prompt (client) | {client['embed']['p50_ms']:.3f} |",
    ]
    if "add_no_vector_index" in client:
        lines.append(
            f"| `add` to a store without an embedding index | "
            f"{client['add_no_vector_index']['p50_ms']:.3f} |"
        )
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
    lines.append(f"| COMMIT of one row and its vector (client) | {server['commit_p50_ms']:.3f} |")
    logged = report.get("server_log")
    if logged:
        lines += [
            (
                f"| `add` (client), {logged['n']} more calls with statement logging on | "
                f"{logged['client_add_p50_ms']:.3f} |"
            ),
            (
                "| server: the whole message of such an `add` (both INSERTs, commit), from the "
                f"server log | {logged['server_message_p50_ms']:.3f} |"
            ),
        ]
    lines += ["", verdict(report), ""]
    return "\n".join(lines)


def verdict(report: dict[str, Any]) -> str:
    """Whether an `add` under 1 ms can hold here with the HNSW index, from this run's figures."""
    client, server = report["client"], report["server"]
    hnsw = server["with_hnsw"]["vector_insert_p50_ms"]
    plain = server["without_hnsw"]["vector_insert_p50_ms"]
    logged = report.get("server_log")
    if logged:
        work = logged["server_message_p50_ms"]
        source = "its log: both INSERTs and the commit"
    else:
        work = hnsw + server["with_hnsw"]["row_insert_p50_ms"] + server["commit_p50_ms"]
        source = "EXPLAIN ANALYZE of both INSERTs, plus the commit"
    embed = client["embed"]["p50_ms"]
    holds = "can" if work + embed < 1.0 else "cannot"
    return (
        f"An `add` under 1 ms {holds} hold on this machine with the HNSW index: the server's "
        f"own work for one `add` is {work:.2f} ms ({source}), most of it the insert into the "
        f"graph (EXPLAIN ANALYZE, instrumented: {hnsw:.2f} ms, {plain:.2f} without the index), "
        f"before the client's embedding ({embed:.2f}) and the round trip. The engine already "
        "sends both INSERTs as one message, one round trip "
        f"({client['add']['p50_ms']:.2f} ms against {client['add_via_store_batch']['p50_ms']:.2f}"
        " through `PostgresStore.batch`). Under 1 ms here: only a store without the ANN index "
        "(exact scans for `relevant`); cheaper graph settings lower the insert's cost and the "
        "search's recall, measured in bench/results/memory_pg_hnsw.md."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--plain-url", help="a database for the store without a vector index")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default="", help="suffix of the result files")
    parser.add_argument("--admin-url", help="a superuser URL: also time adds in the server log")
    parser.add_argument("--server-log", type=Path, help="the server's log file (--admin-url)")
    args = parser.parse_args()
    report = {
        "benchmark": "PreferenceMemory.add on PostgreSQL with HNSW: where the time goes",
        "command": recorded_command("bench/memory_pg_add.py"),
        "client": client_side(args.postgres_url, args.plain_url, args.calls, args.repeats),
        "server": server_side(args.postgres_url, args.calls),
        "postgres": postgres_versions(args.postgres_url),
        **machine(),
    }
    if args.admin_url and args.server_log:
        report["server_log"] = server_log(
            args.postgres_url, args.admin_url, args.server_log, args.calls
        )
    report["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    out = REPO_ROOT / f"bench/results/memory_pg_add{args.label}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
