"""`relevant` through the cached matrices: SQLite's vector log (`_sqlite_vectors`) and memory.

Every answer is compared with a brute-force ranking computed here from the same embeddings:
the index is exact, so the two must agree, after writes by this process, by another
`PreferenceMemory`, by `SqliteStore` itself, by another OS process, after deletes and
`forget`, and after the log and its triggers were dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.memory._sqlite_vectors import LOG_TABLE, META_TABLE

REPO_ROOT = Path(__file__).resolve().parents[3]
DIMS = 24


class SeededEmbeddings(Embeddings):
    """Each text maps to a fixed random vector (seeded by its hash): distinct distances."""

    def _embed(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
        values: list[float] = np.random.default_rng(seed).standard_normal(DIMS).tolist()
        return values

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def _index(distance: str = "cosine") -> Any:
    return {
        "dims": DIMS,
        "embed": SeededEmbeddings(),
        "fields": ["prompt"],
        "distance_type": distance,
    }


def _open(path: Path, distance: str = "cosine") -> PreferenceMemory:
    return PreferenceMemory.sqlite(path, index=_index(distance))


def brute_force(prompts: list[str], query: str, k: int, distance: str = "cosine") -> list[str]:
    """The `k` prompts nearest `query`, best first, by a plain numpy scan."""
    embed = SeededEmbeddings()
    matrix = np.asarray(embed.embed_documents(prompts), dtype=np.float64)
    target = np.asarray(embed.embed_query(query), dtype=np.float64)
    if distance == "l2":
        score = -np.linalg.norm(matrix - target, axis=1)
    else:
        score = (matrix @ target) / np.linalg.norm(matrix, axis=1) / np.linalg.norm(target)
    return [prompts[i] for i in np.argsort(-score, kind="stable")[:k]]


def relevant(memory: PreferenceMemory, user: str, query: str, k: int) -> set[str]:
    return {e.prompt for e in memory.select(user, query, k=k, strategy="relevant")}


def _log_rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT prefix, key FROM {LOG_TABLE}").fetchall()


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_relevant_equals_the_brute_force_ranking(tmp_path: Path, distance: str) -> None:
    prompts = [f"question {i}" for i in range(80)]
    with _open(tmp_path / "m.db", distance) as memory:
        memory.add_many("u", [{"prompt": p, "chosen": "yes"} for p in prompts])
        memory.add_many("other", [{"prompt": f"other {i}", "chosen": "yes"} for i in range(40)])
        for query in ("alpha", "beta", "gamma", "question 7"):
            for k in (1, 5, 17, 80, 200):
                expected = set(brute_force(prompts, query, k, distance))
                assert relevant(memory, "u", query, k) == expected, (query, k)
        # Diverse draws its candidates from the same index, with their stored vectors.
        picked = memory.select("u", "alpha", k=4, strategy="diverse", fetch_k=10)
        assert {e.prompt for e in picked} <= set(brute_force(prompts, "alpha", 10, distance))
        assert len(picked) == 4


def test_writes_after_the_first_search_are_followed(tmp_path: Path) -> None:
    prompts = [f"q{i}" for i in range(30)]
    with _open(tmp_path / "m.db") as memory, _open(tmp_path / "m.db") as other:
        memory.add_many("u", [{"prompt": p, "chosen": "c"} for p in prompts])
        assert relevant(memory, "u", "probe", 5) == set(brute_force(prompts, "probe", 5))
        # Another PreferenceMemory on the file, and SqliteStore itself, write.
        extra = [f"later {i}" for i in range(20)]
        other.add_many("u", [{"prompt": p, "chosen": "c"} for p in extra])
        all_prompts = prompts + extra
        assert relevant(memory, "u", "probe", 8) == set(brute_force(all_prompts, "probe", 8))
        # A re-put of an existing key with a new prompt replaces its vector.
        target = memory.list("u")[0]
        store = other.store
        value = dict(store.get(other.namespaces("u").examples, str(target.id)).value)
        value["prompt"] = "probe"
        store.put(other.namespaces("u").examples, str(target.id), value, index=["prompt"])
        assert [e.id for e in memory.select("u", "probe", k=1, strategy="relevant")] == [target.id]


def test_delete_and_forget_keep_the_index_in_step(tmp_path: Path) -> None:
    prompts = [f"item {i}" for i in range(40)]
    path = tmp_path / "m.db"
    with _open(path) as memory:
        added = memory.add_many("u", [{"prompt": p, "chosen": "c"} for p in prompts])
        (best,) = memory.select("u", "needle", k=1, strategy="relevant")
        memory.add("keep", prompt="kept", chosen="c")  # logged: the log exists now
        assert memory.delete("u", str(best.id))
        remaining = [p for p in prompts if p != best.prompt]
        assert relevant(memory, "u", "needle", 6) == set(brute_force(remaining, "needle", 6))
        assert memory.forget("u") == len(added) - 1
        assert memory.select("u", "needle", k=6, strategy="relevant") == []
        prefixes = {prefix for prefix, _ in _log_rows(path)}
        assert prefixes == {".".join(memory.namespaces("keep").examples)}, "none of u's left"
        memory.add("u", prompt="needle again", chosen="c")
        assert relevant(memory, "u", "needle", 6) == {"needle again"}
        assert relevant(memory, "keep", "needle", 6) == {"kept"}


def test_a_dropped_log_is_rebuilt_and_nothing_is_missed(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    prompts = [f"p{i}" for i in range(25)]
    with _open(path) as memory, _open(path) as writer:
        memory.add_many("u", [{"prompt": p, "chosen": "c"} for p in prompts])
        assert relevant(memory, "u", "x", 3) == set(brute_force(prompts, "x", 3))
        with sqlite3.connect(path) as conn:  # someone drops the log and its triggers
            for name in ("insert", "update", "delete"):
                conn.execute(f"DROP TRIGGER fspo_vector_log_{name}")
            conn.execute(f"DROP TABLE {LOG_TABLE}")
        # Unlogged writes while it is gone: an add and a delete.
        writer.add_many("u", [{"prompt": f"new {i}", "chosen": "c"} for i in range(10)])
        gone = writer.list("u")[0]
        writer.delete("u", str(gone.id))
        now = [p for p in prompts if p != gone.prompt] + [f"new {i}" for i in range(10)]
        for query in ("x", "y", "new 3"):
            assert relevant(memory, "u", query, 7) == set(brute_force(now, query, 7))
        with sqlite3.connect(path) as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            (generation,) = conn.execute(f"SELECT generation FROM {META_TABLE}").fetchone()
        assert {LOG_TABLE, "fspo_vector_log_insert", "fspo_vector_log_delete"} <= names
        assert generation >= 2, "the rebuild started a new generation"


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from tests.unit_tests.memory.test_vector_index import _open
    from pathlib import Path
    with _open(Path(sys.argv[2])) as memory:
        memory.add_many("u", [{"prompt": f"child {i}", "chosen": "c"} for i in range(15)])
        first = memory.list("u")[0]
        assert memory.delete("u", str(first.id))
        print(first.prompt)
    """
)


def test_another_process_writes_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    prompts = [f"parent {i}" for i in range(20)]
    with _open(path) as memory:
        memory.add_many("u", [{"prompt": p, "chosen": "c"} for p in prompts])
        assert relevant(memory, "u", "q", 4) == set(brute_force(prompts, "q", 4))
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(REPO_ROOT), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        deleted = child.stdout.strip()
        now = [p for p in prompts if p != deleted] + [f"child {i}" for i in range(15)]
        for query in ("q", "child 4", "parent 2"):
            assert relevant(memory, "u", query, 9) == set(brute_force(now, query, 9))


def test_in_memory_matrix_follows_writes_exactly() -> None:
    from langgraph.store.memory import InMemoryStore

    store = InMemoryStore(index=_index())
    memory = PreferenceMemory(store)
    prompts = [f"m{i}" for i in range(50)]
    memory.add_many("u", [{"prompt": p, "chosen": "c"} for p in prompts])
    assert relevant(memory, "u", "z", 6) == set(brute_force(prompts, "z", 6))
    (best,) = memory.select("u", "z", k=1, strategy="relevant")
    memory.delete("u", str(best.id))  # our write: applied to the matrix in place
    memory.add("u", prompt="fresh", chosen="c")
    now = [p for p in prompts if p != best.prompt] + ["fresh"]
    assert relevant(memory, "u", "z", 6) == set(brute_force(now, "z", 6))
    # A write straight to the store (behind the engine's back) rebuilds it.
    store.put(memory.namespaces("u").examples, "direct", {"prompt": "z", "chosen": "c"})
    assert [e.prompt for e in memory.select("u", "z", k=1, strategy="relevant")] == ["z"]


def test_in_memory_stored_vectors_come_from_the_matrix_only_while_it_is_in_step() -> None:
    from langgraph.store.memory import InMemoryStore

    from langchain_fspo.memory._engines import Vectors

    store = InMemoryStore(index=_index())
    memory = PreferenceMemory(store)
    added = memory.add_many("u", [{"prompt": f"v{i}", "chosen": "c"} for i in range(40)])
    engine = memory._driver.engine
    examples = memory.namespaces("u").examples
    keys = (*(str(e.id) for e in added[:5]), "absent")

    def vectors() -> dict[str, list[float]]:
        found = engine.run(Vectors(examples, "prompt", (*keys, "direct")))
        return {key: np.asarray(v, dtype=np.float64).tolist() for key, v in found.items()}

    from_lists = vectors()  # no search yet: no matrix, the store's own lists
    assert engine._cached(examples, "prompt", store._vectors[examples]) is None
    no_query = memory.select("u", None, k=5, strategy="diverse")
    memory.select("u", "v3", k=1, strategy="relevant")  # builds the matrix
    assert engine._cached(examples, "prompt", store._vectors[examples]) is not None
    from_matrix = vectors()
    assert sorted(from_matrix) == sorted(from_lists) == sorted(keys[:5])
    for key in from_lists:
        np.testing.assert_allclose(from_matrix[key], from_lists[key], rtol=1e-6, atol=1e-6)
    assert memory.select("u", None, k=5, strategy="diverse") == no_query
    # A write behind the engine's back: the matrix is stale, the lists answer (new key too).
    store.put(examples, "direct", {"prompt": "v1", "chosen": "c"}, index=["prompt"])
    assert engine._cached(examples, "prompt", store._vectors[examples]) is None
    assert "direct" in vectors()


def test_a_full_cache_evicts_and_reloads_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_fspo.memory import _sqlite_vectors

    monkeypatch.setattr(_sqlite_vectors, "CACHE_BYTES", 1)  # room for one user's matrix
    per_user = {u: [f"{u} {i}" for i in range(30)] for u in ("a", "b", "c")}
    with _open(tmp_path / "m.db") as memory:
        for user, prompts in per_user.items():
            memory.add_many(user, [{"prompt": p, "chosen": "c"} for p in prompts])
        for round_ in range(2):
            for user, prompts in per_user.items():
                query = f"query {round_}"
                assert relevant(memory, user, query, 5) == set(brute_force(prompts, query, 5))
        index = _sqlite_vectors.vector_index(memory.store)
        assert len(index._entries) == 1


class WrongWidthEmbeddings(SeededEmbeddings):
    """Vectors of DIMS dimensions, for a PostgreSQL column of another width: the INSERT fails."""


@pytest.mark.postgres
@pytest.mark.integration
def test_postgres_add_writes_row_and_vector_together(postgres_url: str) -> None:
    """A failing vector INSERT leaves no row either, sync and async (pool: own write path)."""
    import psycopg

    from tests.memory_stores import INDEX_DIMS

    assert INDEX_DIMS != DIMS  # the table's vector column has INDEX_DIMS dimensions
    index: Any = {"dims": INDEX_DIMS, "embed": WrongWidthEmbeddings(), "fields": ["prompt"]}
    root = ("fspo-tests", f"one-tx-{uuid.uuid4().hex[:8]}")
    with PreferenceMemory.postgres(postgres_url, index=index, namespace=root) as memory:
        try:
            with pytest.raises(psycopg.errors.DataException, match="dimensions"):
                memory.add("u", prompt="row and vector", chosen="c")
            assert memory.count("u") == 0, "the row's INSERT was rolled back with the vector's"

            async def both() -> int:
                with pytest.raises(psycopg.errors.DataException, match="dimensions"):
                    await memory.aadd("u", prompt="async too", chosen="c")
                return await memory.acount("u")

            assert asyncio.run(both()) == 0
            assert memory.count("u") == 0
        finally:
            memory.forget("u")


def test_nearest_and_vectors_hand_back_the_stored_vectors(indexed_memory: PreferenceMemory) -> None:
    """Every store's engine returns the vectors it stored (PostgreSQL: its binary format)."""
    from langchain_fspo.memory._engines import Nearest, Vectors
    from tests.memory_stores import INDEX_DIMS, HashingEmbeddings

    embed = HashingEmbeddings(INDEX_DIMS)
    prompts = ["alpha beta", "gamma delta alpha", "epsilon zeta"]
    added = indexed_memory.add_many("v", [{"prompt": p, "chosen": "c"} for p in prompts])
    engine = indexed_memory._driver.engine
    examples = indexed_memory.namespaces("v").examples
    target = embed.embed_query("alpha")
    rows = engine.run(Nearest(examples, "prompt", 3, vector=target, with_vectors=True))
    assert [r.value["prompt"] for r in rows][:2] == ["alpha beta", "gamma delta alpha"]
    stored = engine.run(Vectors(examples, "prompt", tuple(str(e.id) for e in added)))
    for example in added:
        expected = embed.embed_documents([example.prompt])[0]
        row = next(r for r in rows if r.key == str(example.id))
        np.testing.assert_allclose(np.asarray(row.vector, dtype=np.float64), expected, atol=1e-6)
        np.testing.assert_allclose(
            np.asarray(stored[str(example.id)], dtype=np.float64), expected, atol=1e-6
        )


def test_a_read_only_file_falls_back_to_the_exact_sql_scan(tmp_path: Path) -> None:
    """No change log can be created in a read-only file: the SQL scan answers, exactly."""
    from langgraph.store.sqlite import SqliteStore

    from langchain_fspo.memory._backends import _sqlite_driver

    path = tmp_path / "m.db"
    prompts = [f"ro {i}" for i in range(30)]
    with _open(path) as memory:
        memory.add_many("u", [{"prompt": p, "chosen": "c"} for p in prompts])
    driver = _sqlite_driver(need_extensions=True)
    conn = driver.connect(
        f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
    )
    try:
        memory = PreferenceMemory(SqliteStore(conn, index=_index()))
        for query in ("a", "ro 3"):
            assert relevant(memory, "u", query, 6) == set(brute_force(prompts, query, 6))
        with sqlite3.connect(path) as check:
            names = {r[0] for r in check.execute("SELECT name FROM sqlite_master")}
        assert LOG_TABLE not in names
    finally:
        conn.close()
