"""`VectorSearch`'s approximate search: exact below its threshold, bounded recall above.

Its coarse lists and their sign codes must follow every write (this process, another process,
forget).

Recall is measured against the exact scan of the same `VectorMatrix` on clustered synthetic
embeddings (fixed seeds: the same vectors and queries on every run).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from langgraph.store.memory import InMemoryStore

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.memory import PreferenceMemory, VectorSearch
from langchain_fspo.memory._sqlite_vectors import vector_index
from langchain_fspo.memory._vector_matrix import VectorMatrix
from tests.unit_tests.memory.test_vector_index import _CHILD, REPO_ROOT, _index

RECALL_AT_8_BOUND = 0.95
"""Mean recall@8 the default search must reach on 30k clustered 384-dim vectors, before and
after writes (100k: bench/results/vector_search.md and memory_select.md)."""

# Every search approximates (threshold 1), reads one list and reranks as few rows as allowed.
EAGER = VectorSearch(threshold=1, rerank=1, probe=1)


def clustered(rng: np.random.Generator, n: int, dims: int = 384) -> np.ndarray:
    """`n` vectors around 100 random centres (within-cluster cosine about 0.5)."""
    centres = rng.standard_normal((100, dims)).astype(np.float32)
    noise = rng.standard_normal((n, dims)).astype(np.float32)
    return centres[rng.integers(0, 100, n)] + noise


def assert_lists_in_step(matrix: VectorMatrix) -> None:
    """Every row is in exactly one list, its nearest centroid's, with its current code."""
    lists = matrix.lists()
    n = len(matrix)
    unit = matrix._unit[:n]
    filed = np.concatenate([lists.members[c][: lists.sizes[c]] for c in range(len(lists.sizes))])
    assert sorted(filed.tolist()) == list(range(n))
    assert (lists.home[n:] == -1).all()
    codes = lists.signs.encode(unit)
    homes = np.argmax(unit @ lists.centroids.T, axis=1)
    for row in range(n):
        home, slot = int(lists.home[row]), int(lists.slot[row])
        assert home == homes[row]
        assert lists.members[home][slot] == row
        assert np.array_equal(lists.codes[home][:, slot], codes[row])
    # The byte count kept on every array swap matches the arrays held.
    held = sum(m.nbytes for m in lists.members) + sum(c.nbytes for c in lists.codes)
    assert lists.nbytes == lists.centroids.nbytes + lists.home.nbytes + lists.slot.nbytes + held


def test_below_the_threshold_the_search_is_exact() -> None:
    rng = np.random.default_rng(0)
    vectors = clustered(rng, 2_000)
    matrix = VectorMatrix.build([str(i) for i in range(2_000)], vectors)
    for query in clustered(rng, 10):
        for metric in ("cosine", "l2"):
            exact = matrix.nearest(query, 8, metric=metric)
            assert matrix.nearest(query, 8, metric=metric, search=VectorSearch()) == exact
    assert matrix._lists is None


def test_recall_at_8_on_30k_clustered_vectors() -> None:
    rng = np.random.default_rng(1)
    vectors = clustered(rng, 30_064)
    matrix = VectorMatrix.build([str(i) for i in range(30_000)], vectors[:30_000])
    search = VectorSearch()
    assert search.candidates(len(matrix), 8) == 512
    recalls = []
    for query in vectors[30_000:]:
        exact = matrix.nearest(query, 8)
        approximate = matrix.nearest(query, 8, search=search)
        assert len(approximate) == 8
        recalls.append(len(set(exact) & set(approximate)) / 8)
    assert float(np.mean(recalls)) >= RECALL_AT_8_BOUND, recalls


def test_lists_follow_upserts_removals_and_growth() -> None:
    rng = np.random.default_rng(2)
    matrix = VectorMatrix.build([f"k{i}" for i in range(20)], clustered(rng, 20, 70))
    assert_lists_in_step(matrix)  # built from 20 rows, capacity 20
    for i, vector in enumerate(clustered(rng, 30, 70)):
        matrix.upsert(f"new{i}", vector)  # grows the capacity twice
    matrix.upsert("k3", clustered(rng, 1, 70)[0])  # replaced in place
    for key in ("k0", "new5", "new29"):
        matrix.remove(key)  # the last row moves into the gap
    assert_lists_in_step(matrix)
    for i in range(len(matrix)):  # a stored vector is its own nearest, through its list
        for metric in ("cosine", "l2"):
            assert matrix.nearest(matrix.vector(i), 1, metric=metric, search=EAGER) == [i]


def test_diverse_pool_reads_fewer_rows_and_keeps_the_picks_relevant() -> None:
    """`pool()` (what `diverse` searches with) probes `pool_probe` rows, not `probe`.

    On clustered vectors its 32 candidates are the exact ones (measured: recall@32 1.00) and
    MMR's 8 picks from them are as relevant as from the exact pool.
    """
    from langchain_fspo.selection import mmr_indices

    rng = np.random.default_rng(5)
    vectors = clustered(rng, 30_032)
    matrix = VectorMatrix.build([str(i) for i in range(30_000)], vectors[:30_000])
    pool = VectorSearch().pool()
    assert (pool.probe, VectorSearch().probe) == (2_048, 16_384)
    assert pool.candidates(len(matrix), 32) == 256  # approximate; reranks 8 per candidate

    def picks_relevance(candidates: list[int], query: np.ndarray) -> float:
        picks = [candidates[i] for i in mmr_indices(matrix.vectors(candidates), query, 8)]
        return float((matrix._unit[picks] @ (query / np.linalg.norm(query))).mean())

    recalls, ratios = [], []
    for query in vectors[30_000:]:
        exact, approximate = matrix.nearest(query, 32), matrix.nearest(query, 32, search=pool)
        recalls.append(len(set(exact) & set(approximate)) / 32)
        ratios.append(picks_relevance(approximate, query) / picks_relevance(exact, query))
    assert float(np.mean(recalls)) >= RECALL_AT_8_BOUND, recalls
    assert min(ratios) >= 0.99, ratios
    assert VectorSearch(probe=1_000).pool().probe == 1_000  # never more than `probe`
    assert VectorSearch().pool().threshold == 8_192  # 4 x its probe


def test_recall_holds_after_removals_replacements_and_moves() -> None:
    """Writes after the lists were built (removals moving rows, replacements, additions)."""
    rng = np.random.default_rng(3)
    vectors = clustered(rng, 36_064)
    matrix = VectorMatrix.build([str(i) for i in range(30_000)], vectors[:30_000])
    search = VectorSearch()
    lists = matrix.lists()
    for key in rng.choice(30_000, 3_000, replace=False).tolist():
        matrix.remove(str(key))  # each moves the last row into the gap
    for key in rng.choice(30_000, 3_000, replace=False).tolist():
        matrix.upsert(str(key), vectors[30_000 + key % 3_000])  # replaced or re-added
    for i in range(3_000):
        matrix.upsert(f"new{i}", vectors[33_000 + i])
    assert matrix.lists() is lists  # followed in place, not rebuilt
    assert_lists_in_step(matrix)
    recalls = []
    for query in vectors[36_000:]:
        exact = matrix.nearest(query, 8)
        recalls.append(len(set(exact) & set(matrix.nearest(query, 8, search=search))) / 8)
    assert float(np.mean(recalls)) >= RECALL_AT_8_BOUND, recalls


def test_lists_are_rebuilt_once_the_rows_outgrow_them() -> None:
    rng = np.random.default_rng(4)
    vectors = clustered(rng, 500, 32)
    matrix = VectorMatrix.build([str(i) for i in range(100)], vectors[:100])
    first = matrix.lists()
    assert (first.trained_rows, len(first.sizes)) == (100, 10)
    for i in range(100, 400):
        matrix.upsert(str(i), vectors[i])
    assert matrix.lists() is first  # 400 rows: at most REBUILD_GROWTH x 100
    matrix.upsert("400", vectors[400])
    rebuilt = matrix.lists()
    assert rebuilt is not first
    assert (rebuilt.trained_rows, len(rebuilt.sizes)) == (401, 20)
    assert_lists_in_step(matrix)


def test_in_memory_lists_follow_writes() -> None:
    memory = PreferenceMemory(InMemoryStore(index=_index()), vector_search=EAGER)
    prompts = [f"m{i}" for i in range(60)]
    added = memory.add_many("u", [{"prompt": p, "chosen": "c"} for p in prompts])
    assert [e.prompt for e in memory.select("u", "m7", k=1, strategy="relevant")] == ["m7"]
    memory.delete("u", str(added[0].id))
    memory.add("u", prompt="fresh", chosen="c")
    engine = memory._driver.engine
    matrix = engine._matrices[memory.namespaces("u").examples]["prompt"].matrix
    assert_lists_in_step(matrix)
    for prompt in ("fresh", "m59", "m30"):
        assert [e.prompt for e in memory.select("u", prompt, k=1, strategy="relevant")] == [prompt]


def test_sqlite_lists_follow_this_and_another_process_and_forget(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    prompts = [f"parent {i}" for i in range(20)]
    with PreferenceMemory.sqlite(path, index=_index(), vector_search=EAGER) as memory:
        added = memory.add_many("u", [{"prompt": p, "chosen": "c"} for p in prompts])
        memory.select("u", "parent 3", k=1, strategy="relevant")  # the lists are built
        memory.delete("u", str(added[4].id))
        memory.add("u", prompt="mine", chosen="c")
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(REPO_ROOT), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        for prompt in ("child 3", "mine", "parent 19", "parent 7"):
            hits = memory.select("u", prompt, k=1, strategy="relevant")
            assert [e.prompt for e in hits] == [prompt]
        index = vector_index(memory.store)
        prefix = ".".join(memory.namespaces("u").examples)
        matrix = index._entries[(prefix, "prompt")].matrix
        assert_lists_in_step(matrix)
        assert len(matrix) == memory.count("u") == 20 - 2 + 1 + 15
        # The cache's byte count includes the lists the first search built.
        assert index._bytes == sum(e.matrix.nbytes for e in index._entries.values())
        assert matrix._lists is not None
        memory.forget("u")
        memory.add("u", prompt="after", chosen="c")
        hits = memory.select("u", "parent 7", k=3, strategy="relevant")
        assert [e.prompt for e in hits] == ["after"]


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "fast"}, {"threshold": 0}, {"rerank": -1}, {"threshold": True}, {"pool_probe": 0}],
)
def test_bad_settings_raise_a_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(MemoryConfigError):
        VectorSearch(**kwargs)
    with pytest.raises(MemoryConfigError):
        PreferenceMemory(vector_search="exact")
