"""Store-specific behaviour: SQLite persistence across processes, PostgreSQL wiring, id encoding."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.memory import PreferenceMemory, decode_user_id, encode_user_id
from langchain_fspo.memory._layout import new_record_id
from tests.memory_stores import HashingEmbeddings

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ----------------------------------------------------------------------------- SQLite


def test_sqlite_examples_survive_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "prefs.db"
    writer = run_python(
        f"""
        from langchain_fspo.memory import PreferenceMemory
        with PreferenceMemory.sqlite({str(path)!r}) as memory:
            for i in range(3):
                ex = memory.add("ada@example.com", prompt=f"q{{i}}", chosen=f"c{{i}}", rejected="r")
            memory.record_choice("ada@example.com", "tie?", "x", "y", "tie")
            memory.set_description("ada@example.com", "Terse.")
            print(ex.id)
        """
    )
    assert writer.returncode == 0, writer.stderr
    last_id = writer.stdout.strip()
    with PreferenceMemory.sqlite(path) as memory:
        listed = memory.list("ada@example.com")
        assert [e.chosen for e in listed] == ["c0", "c1", "c2"]
        assert listed[-1].id == last_id
        assert [e.id for e in memory.select("ada@example.com", k=1)] == [last_id]
        assert memory.get_description("ada@example.com") == "Terse."
        assert [c.choice for c in memory.list_choices("ada@example.com")] == ["tie"]
        # This process adds after the other one: ordering continues.
        newer = memory.add("ada@example.com", prompt="q3", chosen="c3")
        assert memory.select("ada@example.com", k=2)[-1] == newer


def test_sqlite_is_safe_across_threads_on_one_connection(tmp_path: Path) -> None:
    with PreferenceMemory.sqlite(tmp_path / "t.db") as memory:

        def work(i: int) -> None:
            user = f"user.{i % 4}"
            memory.add(user, prompt=f"q{i}", chosen=f"{user} c{i}")
            assert all(e.chosen.startswith(user) for e in memory.select(user, k=8))

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(work, range(80)))
        assert sum(memory.count(f"user.{j}") for j in range(4)) == 80
        assert sum(len(memory.list(f"user.{j}")) for j in range(4)) == 80


def test_sqlite_forget_removes_vectors_too(tmp_path: Path) -> None:
    index = {"dims": 32, "embed": HashingEmbeddings(32), "fields": ["prompt"]}
    path = tmp_path / "v.db"
    with PreferenceMemory.sqlite(path, index=index) as memory:
        memory.add("gone", prompt="coffee brewing", chosen="c")
        memory.add("stays", prompt="tea brewing", chosen="c")
        assert memory.has_index
    # Inspect the raw tables (sqlite_vec is not needed to count rows).
    conn = sqlite3.connect(path)
    gone = memory.namespaces("gone").user
    prefix = ".".join(gone)
    count = "SELECT count(*) FROM {} WHERE prefix = ? OR prefix LIKE ?"
    assert conn.execute(count.format("store_vectors"), (prefix, prefix + ".%")).fetchone()[0] == 1
    conn.close()
    with PreferenceMemory.sqlite(path, index=index) as memory:
        memory.forget("gone")
        assert [e.prompt for e in memory.select("stays", "tea", strategy="relevant")] == [
            "tea brewing"
        ]
    conn = sqlite3.connect(path)
    for table in ("store", "store_vectors"):
        assert conn.execute(count.format(table), (prefix, prefix + ".%")).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM store_vectors").fetchone()[0] == 1
    conn.close()


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
@pytest.mark.integration
def test_postgres_constructor_round_trip(postgres_url: str) -> None:
    user = f"pg-ctor.{os.getpid()}.{new_record_id()[0]}@example.com"
    with PreferenceMemory.postgres(postgres_url, max_connections=4) as memory:
        ex = memory.add(user, prompt="q", chosen="c", rejected="r")
    with PreferenceMemory.postgres(postgres_url) as memory:
        assert memory.list(user) == [ex]
        memory.forget(user)
        assert memory.store.search(memory.namespaces(user).user) == []


def test_postgres_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langgraph.store.postgres", None)
    with pytest.raises(ImportError, match=r"langchain-fspo\[postgres\]"):
        PreferenceMemory.postgres("postgresql://nobody@127.0.0.1:1/none")


@pytest.mark.slow
def test_required_postgres_fails_instead_of_skipping() -> None:
    """With FSPO_REQUIRE_POSTGRES=1 an unreachable server fails the PostgreSQL cases."""
    args = [
        "-m",
        "pytest",
        "tests/unit_tests/memory/test_memory.py",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "test_add_returns_stamped_example_and_get_reads_it_back",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "FSPO_TEST_POSTGRES_URL": "postgresql://fspo:fspo@127.0.0.1:9/fspo",
    }
    required = subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={**env, "FSPO_REQUIRE_POSTGRES": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert required.returncode != 0
    assert "FSPO_REQUIRE_POSTGRES=1 but no PostgreSQL server" in required.stdout
    assert "2 passed" in required.stdout
    optional = subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={k: v for k, v in env.items() if k != "FSPO_REQUIRE_POSTGRES"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert optional.returncode == 0, optional.stdout
    assert "2 passed, 1 skipped" in optional.stdout


# ----------------------------------------------------------------------------- layout


@given(st.text(max_size=200))
def test_user_id_encoding_round_trips(user_id: str) -> None:
    label = encode_user_id(user_id)
    assert label
    assert "." not in label
    assert decode_user_id(label) == user_id


@pytest.mark.parametrize("user_id", ["", ".", "..", "a.b", "\ud800lone surrogate", "é" * 512])
def test_user_id_encoding_edge_cases(user_id: str) -> None:
    label = encode_user_id(user_id)
    assert label.isascii()
    assert set(label) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_user_id(label) == user_id


def test_distinct_ids_get_distinct_labels() -> None:
    ids = ["a", "a.", "a..", "A", "a ", "a\x00", "", "u", "ua"]
    assert len({encode_user_id(i) for i in ids}) == len(ids)
    with pytest.raises(ValueError, match="not an encoded user id"):
        decode_user_id("xyz")
    with pytest.raises(ValueError, match="not an encoded user id"):
        decode_user_id("u!!")


def test_record_ids_sort_by_creation_time() -> None:
    made = [new_record_id() for _ in range(2000)]
    ids = [i for i, _ in made]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    stamps = [t for _, t in made]
    assert stamps == sorted(stamps)


def test_namespace_root_must_be_valid() -> None:
    with pytest.raises(MemoryConfigError, match="namespace"):
        PreferenceMemory(namespace=("fspo.x",))
    with pytest.raises(MemoryConfigError, match="namespace"):
        PreferenceMemory(namespace=("fspo", ""))
    custom = PreferenceMemory(namespace=("app", "prefs"))
    custom.add("u", prompt="p", chosen="c")
    assert custom.store.list_namespaces(prefix=("app", "prefs"))
    assert custom.store.list_namespaces(prefix=("fspo",)) == []


def test_sqlite_forget_leaves_no_text_in_the_files(tmp_path: Path) -> None:
    path = tmp_path / "gdpr.db"
    marker = f"SECRET-{new_record_id()[0]}"
    with PreferenceMemory.sqlite(path) as memory:
        memory.add("gone@example.com", prompt=f"{marker} prompt", chosen=f"{marker} answer")
        memory.set_description("gone@example.com", f"{marker} description")
        memory.add("stays@example.com", prompt="kept prompt", chosen="kept answer")
        files = [p for p in tmp_path.iterdir() if p.name.startswith("gdpr.db")]
        assert any(marker.encode() in p.read_bytes() for p in files), "marker was written"
        memory.forget("gone@example.com")
        for p in tmp_path.iterdir():
            assert marker.encode() not in p.read_bytes(), p.name
        assert [e.chosen for e in memory.list("stays@example.com")] == ["kept answer"]


async def test_async_only_store(tmp_path: Path) -> None:
    """A store with only an async interface (AsyncSqliteStore) serves the async methods."""
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    async with AsyncSqliteStore.from_conn_string(str(tmp_path / "aio.db")) as store:
        await store.setup()
        memory = PreferenceMemory(store)
        first = await memory.aadd("a.b@example.com", prompt="p", chosen="c")
        second = await memory.aadd("a.b@example.com", prompt="p2", chosen="c2")
        assert await memory.aselect("a.b@example.com", k=1) == [second]
        assert await memory.alist("a.b@example.com") == [first, second]
        assert await memory.aforget("a.b@example.com") == 2
        assert await memory.alist("a.b@example.com") == []


# ----------------------------------------------------------------------------- cost of `recent`


def test_recent_is_one_index_walk_of_k_rows_whatever_the_user_size(tmp_path: Path) -> None:
    """The serving path on SQLite: one statement, read through an index, no sort, LIMIT k."""
    with PreferenceMemory.sqlite(tmp_path / "c.db") as memory:
        memory.add_many("big", [{"prompt": f"q{i}", "chosen": f"c{i}"} for i in range(600)])
        memory.add("small", prompt="q", chosen="c")
        conn = memory.store.conn
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        try:
            for user, expected in (("big", 8), ("small", 1), ("unknown", 0)):
                statements.clear()
                assert len(memory.select(user, "query", k=8)) == expected
                assert len(statements) == 1, statements
        finally:
            conn.set_trace_callback(None)
        sql = statements[0]
        plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "USING INDEX store_prefix_idx" in plan
        assert "TEMP B-TREE" not in plan, "the rows come in order from the index: no sort"
        assert sql.rstrip().endswith("LIMIT 8")


@pytest.mark.postgres
@pytest.mark.integration
def test_postgres_recent_reads_the_order_index_without_sorting(postgres_url: str) -> None:
    """`Newest` on PostgreSQL can be answered by walking the engine's index, LIMIT k, no sort."""
    import psycopg

    from langchain_fspo.memory._engine_postgres import _NEWEST_FIRST, ORDER_INDEX

    with PreferenceMemory.postgres(postgres_url, max_connections=1) as memory:
        user = f"index-{os.getpid()}"
        memory.add_many(user, [{"prompt": f"q{i}", "chosen": f"c{i}"} for i in range(30)])
        try:
            prefix = ".".join(memory.namespaces(user).examples)
            with psycopg.connect(postgres_url) as conn:
                conn.execute("SET enable_seqscan = off")
                conn.execute("SET enable_sort = off")
                plan = "\n".join(
                    row[0]
                    for row in conn.execute(
                        "EXPLAIN SELECT key, value FROM store WHERE prefix = %s "
                        f"ORDER BY {_NEWEST_FIRST} LIMIT 8",
                        (prefix,),
                    )
                )
            assert f"Index Scan Backward using {ORDER_INDEX}" in plan, plan
            assert "Sort" not in plan, plan
        finally:
            memory.forget(user)
