"""Shot selection strategies: `relevant`, `diverse`, user functions, the pure ranking helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.memory import PreferenceMemory, VectorSearch
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.selection import (
    chronological,
    cosine,
    lexical_vectors,
    mmr_select,
    normalize,
)
from tests.memory_stores import INDEX_DIMS, HashingEmbeddings

TOPICS = [
    "How should I bake sourdough bread at home?",
    "Which programming language suits data science?",
    "What is a good beginner houseplant?",
    "Explain compound interest on savings.",
    "Recommend a science fiction novel.",
    "How do I brew pour over coffee?",
    "What stretches help lower back pain?",
    "Plan a weekend hiking trip in the Alps.",
    "How can I improve my chess openings?",
    "Explain how vaccines train the immune system.",
]


def populate(memory: PreferenceMemory, user: str) -> list[PreferenceExample]:
    return [
        memory.add(user, prompt=prompt, chosen=f"answer {i}", rejected=f"worse {i}")
        for i, prompt in enumerate(TOPICS)
    ]


# ----------------------------------------------------------------------------- relevant


def test_relevant_finds_the_nearest_prompts_oldest_first(indexed_memory: PreferenceMemory) -> None:
    added = populate(indexed_memory, "reader@example.com")
    picked = indexed_memory.select(
        "reader@example.com", "best coffee brew method", k=1, strategy="relevant"
    )
    assert [e.prompt for e in picked] == ["How do I brew pour over coffee?"]

    picked = indexed_memory.select(
        "reader@example.com",
        "explain how interest and vaccines work",
        k=2,
        strategy="relevant",
    )
    assert [e.id for e in picked] == [added[3].id, added[9].id], "oldest first, not by score"


def test_relevant_only_searches_the_users_examples(indexed_memory: PreferenceMemory) -> None:
    populate(indexed_memory, "owner")
    indexed_memory.add("intruder", prompt="brew coffee brew coffee", chosen="mine")
    indexed_memory.record_choice("owner", "brew coffee now", "x", "y", "tie")
    picked = indexed_memory.select("owner", "brew coffee", k=3, strategy="relevant")
    assert all(e.chosen.startswith("answer") for e in picked)
    assert len(picked) == 3


def test_relevant_without_query_is_recent(indexed_memory: PreferenceMemory) -> None:
    added = populate(indexed_memory, "u")
    assert indexed_memory.select("u", None, k=3, strategy="relevant") == added[-3:]
    assert indexed_memory.select("nobody", "coffee", k=3, strategy="relevant") == []


def test_relevant_without_an_index_is_a_clear_error(memory: PreferenceMemory, users) -> None:
    user = users("noindex")
    memory.add(user, prompt="p", chosen="c")
    assert memory.has_index is False
    with pytest.raises(MemoryConfigError, match=r"needs a store with an embedding index.*index="):
        memory.select(user, "p", strategy="relevant")


async def test_async_relevant(indexed_memory: PreferenceMemory) -> None:
    populate(indexed_memory, "async-reader")
    picked = await indexed_memory.aselect(
        "async-reader", "houseplant for a beginner", k=1, strategy="relevant"
    )
    assert [e.prompt for e in picked] == ["What is a good beginner houseplant?"]


# ----------------------------------------------------------------------------- diverse


def duplicates_then_distinct(
    memory: PreferenceMemory, user: str
) -> tuple[list[PreferenceExample], list[PreferenceExample]]:
    dupes = [
        memory.add(user, prompt="bake sourdough bread at home", chosen=f"bread {i}")
        for i in range(6)
    ]
    distinct = [
        memory.add(user, prompt=prompt, chosen=f"other {i}") for i, prompt in enumerate(TOPICS[1:4])
    ]
    return dupes, distinct


def test_diverse_with_embeddings_avoids_near_duplicates(indexed_memory: PreferenceMemory) -> None:
    duplicates_then_distinct(indexed_memory, "d")
    recent = indexed_memory.select("d", k=4, strategy="recent")
    assert sum(e.prompt.startswith("bake") for e in recent) == 1
    diverse = indexed_memory.select("d", "bread baking", k=3, strategy="diverse", lambda_mult=0.3)
    prompts = [e.prompt for e in diverse]
    assert prompts.count("bake sourdough bread at home") == 1, prompts
    assert len(set(prompts)) == 3
    assert [e.id for e in diverse] == sorted(str(e.id) for e in diverse), "oldest first"
    # Pure relevance (lambda 1) would take only the duplicates.
    relevant = indexed_memory.select("d", "bread baking", k=3, strategy="diverse", lambda_mult=1.0)
    assert all(e.prompt.startswith("bake") for e in relevant)


def test_diverse_without_index_uses_lexical_similarity(memory: PreferenceMemory, users) -> None:
    user = users("lexical")
    duplicates_then_distinct(memory, user)
    picked = memory.select(user, k=4, strategy="diverse")
    prompts = [e.prompt for e in picked]
    assert prompts.count("bake sourdough bread at home") == 1, prompts
    assert len(picked) == 4
    # With a query, the most relevant candidate is in.
    picked = memory.select(user, "compound interest savings", k=2, strategy="diverse")
    assert "Explain compound interest on savings." in [e.prompt for e in picked]


def test_diverse_rejects_a_bad_lambda(memory: PreferenceMemory, users) -> None:
    with pytest.raises(MemoryConfigError, match="lambda_mult"):
        memory.select(users("l"), "q", strategy="diverse", lambda_mult=2.0)


def test_diverse_pool_smaller_than_k(memory: PreferenceMemory, users) -> None:
    user = users("small")
    one = memory.add(user, prompt="p", chosen="c")
    assert memory.select(user, "q", k=8, strategy="diverse") == [one]


async def test_async_diverse_uses_async_embeddings(indexed_memory: PreferenceMemory) -> None:
    duplicates_then_distinct(indexed_memory, "ad")
    picked = await indexed_memory.aselect("ad", k=4, strategy="diverse")
    assert [e.prompt for e in picked].count("bake sourdough bread at home") == 1


# ----------------------------------------------------------------------------- user functions


def test_callable_strategy_gets_all_examples_and_result_is_oldest_first(
    memory: PreferenceMemory, users
) -> None:
    user = users("fn")
    added = populate(memory, user)
    seen: dict[str, object] = {}

    def longest_prompts(
        examples: Sequence[PreferenceExample], query: str | None, k: int
    ) -> list[PreferenceExample]:
        seen.update(n=len(examples), query=query, k=k)
        return sorted(examples, key=lambda e: len(e.prompt), reverse=True)[: k + 5]

    picked = memory.select(user, "q?", k=2, strategy=longest_prompts)
    assert seen == {"n": len(TOPICS), "query": "q?", "k": 2}
    longest = sorted(added, key=lambda e: len(e.prompt), reverse=True)[:2]
    assert picked == chronological(longest)


def test_callable_strategy_must_return_examples(memory: PreferenceMemory, users) -> None:
    user = users("badfn")
    memory.add(user, prompt="p", chosen="c")
    with pytest.raises(MemoryConfigError, match="must return PreferenceExample"):
        memory.select(user, strategy=lambda ex, q, k: ["not an example"])  # type: ignore[list-item]
    with pytest.raises(MemoryConfigError, match="must return a sequence"):
        memory.select(user, strategy=lambda ex, q, k: None)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- pure helpers


def test_cosine_and_normalize() -> None:
    assert cosine([1.0, 0.0], [0.0, 1.0]) == 0.0
    assert cosine([2.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)
    assert cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
    assert normalize([3.0, 4.0]) == pytest.approx([0.6, 0.8])
    with pytest.raises(ValueError, match="dimensions"):
        cosine([1.0], [1.0, 2.0])


def test_lexical_vectors_count_shared_vocabulary() -> None:
    vectors = lexical_vectors(["The cat", "the CAT sat", "dog"])
    assert vectors[0] == [1.0, 1.0, 0.0, 0.0]
    assert vectors[1] == [1.0, 1.0, 1.0, 0.0]
    assert cosine(vectors[0], vectors[2]) == 0.0


def test_mmr_select_is_deterministic_and_validates() -> None:
    pool = [
        PreferenceExample(prompt=p, chosen="x", id=f"{i:024x}")
        for i, p in enumerate(["a a", "a a", "b", "c"])
    ]
    vectors = lexical_vectors([e.prompt for e in pool])
    first = mmr_select(pool, vectors, None, 3)
    assert [e.prompt for e in first] == ["a a", "b", "c"]
    assert first[0].id == pool[1].id, "ties go to the newer candidate"
    assert mmr_select(list(reversed(pool)), list(reversed(vectors)), None, 3) == first
    with pytest.raises(ValueError, match="vectors"):
        mmr_select(pool, vectors[:2], None, 2)
    with pytest.raises(ValueError, match="lambda_mult"):
        mmr_select(pool, vectors, None, 2, lambda_mult=1.5)


def test_hashing_embeddings_are_deterministic() -> None:
    emb = HashingEmbeddings(64)
    a = emb.embed_query("Coffee brewing")
    assert a == HashingEmbeddings(64).embed_documents(["coffee BREWING"])[0]
    assert cosine(a, emb.embed_query("brewing tea")) > 0.3
    assert cosine(a, emb.embed_query("tax law")) < 0.3


# ----------------------------------------------------------------------------- PostgreSQL


PREFIX = "fspo.u.examples"


def sql_only_engine(ann: dict[str, object] | None = None, *, large: bool = False) -> Any:
    """A `PostgresEngine` without a server: its steps are read, never run.

    `ann`: the store's `ann_index_config`; `large`: `PREFIX` already counted and estimated
    large enough for the ANN index (its next search asks no count).
    """
    from langchain_fspo.memory._engine_postgres import PostgresEngine, _Recent

    class StandInStore:  # weak-referenceable, as the engine's per-store schema facts need
        def __init__(self, index_config: dict[str, object]) -> None:
            self.index_config = index_config

    engine = PostgresEngine.__new__(PostgresEngine)
    config: dict[str, object] = {"dims": 3}
    if ann is not None:
        config["ann_index_config"] = ann
    engine.store = StandInStore(config)  # type: ignore[assignment]
    engine._estimates, engine._counts = _Recent(), _Recent()
    if large:
        engine._estimates.put(PREFIX, (None, 114_010.0))  # not in the statistics: the index
        engine._counts.put(PREFIX, 2_001)
    return engine


@pytest.mark.parametrize(
    ("count", "estimate", "total", "hnsw"),
    [
        (2_000, 2_000.0, 2_000.0, False),  # small users: always exact
        (2_001, None, 114_010.0, True),  # not in the planner's statistics: HNSW
        (2_001, 10_154.0, 114_010.0, False),  # 9 % of the table: the exact scan is cheaper
        (2_001, 99_751.0, 114_010.0, True),  # most of the table: HNSW
        (2_001, 50_000.0, 10_000_000.0, False),  # 0.5 % of a large table
    ],
)
def test_postgres_picks_hnsw_by_the_users_share_of_the_table(
    count: int, estimate: float | None, total: float, hnsw: bool
) -> None:
    from langchain_fspo.memory._engine_postgres import _approximate

    assert _approximate(count, estimate, total) is hnsw


def test_postgres_count_estimates_are_asked_once_then_cached() -> None:
    engine = sql_only_engine()
    steps = engine._estimate(PREFIX)
    sql = next(steps)
    assert "pg_stats" in sql.statements[0][0]
    assert sql.statements[0][1] == (PREFIX,)
    with pytest.raises(StopIteration) as stop:
        steps.send([{"estimate": 10_154.0, "total": 114_010.0}])
    assert stop.value.value == (10_154.0, 114_010.0)
    with pytest.raises(StopIteration) as again:  # answered from the cache: no SQL
        next(engine._estimate(PREFIX))
    assert again.value.value == (10_154.0, 114_010.0)


def test_postgres_counts_a_user_once_per_ttl() -> None:
    """A prefix counted within the TTL goes straight to its search; forget drops the count."""
    import time

    from langchain_fspo.memory._engine_postgres import ESTIMATE_TTL_S
    from langchain_fspo.memory._engines import Forget, Nearest

    engine = sql_only_engine()
    query = Nearest(("fspo", "u", "examples"), "prompt", 8, vector=[1.0, 0.0, 0.0])

    def first_sql() -> str:
        return str(next(engine._nearest(query, PREFIX)).statements[0][0])

    steps = engine._nearest(query, PREFIX)
    assert "count(*)" in next(steps).statements[0][0]  # unknown: counted
    assert "+ 0" in steps.send([{"n": 12}]).statements[0][0]  # small: the exact scan
    assert engine._counts.get(PREFIX) == 12
    assert "+ 0" in first_sql()  # counted just now: straight to the exact scan
    engine._counts.put(PREFIX, 2_001)
    engine._estimates.put(PREFIX, (99_751.0, 114_010.0))
    assert "hnsw.iterative_scan" in first_sql()  # known large: straight to HNSW
    engine._counts.held[PREFIX] = (time.monotonic() - ESTIMATE_TTL_S - 1, 2_001)
    assert "count(*)" in first_sql()  # stale: counted again
    engine._counts.put(PREFIX, 2_001)
    engine._counts.put("fspo.uv.examples", 5)
    next(engine._steps(Forget(("fspo", "u"))))  # forgetting the user drops its entries only
    assert list(engine._counts.held) == ["fspo.uv.examples"]
    assert PREFIX not in engine._estimates.held
    assert "count(*)" in first_sql()


def test_postgres_searches_read_pending_vectors_beside_the_index() -> None:
    """With the pending table (deferred indexing), both searches and the vector read union it."""
    from langchain_fspo.memory._engine_postgres import _Schema, _schemas
    from langchain_fspo.memory._engines import Nearest, Vectors

    engine = sql_only_engine(large=True)
    query = Nearest(("fspo", "u", "examples"), "prompt", 8, vector=[1.0, 0.0, 0.0])
    plain = next(engine._nearest(query, PREFIX)).statements[-1][0]
    assert "fspo_pending_vectors" not in plain
    _schemas[engine.store] = _Schema(pending=True)
    steps = engine._nearest(query, PREFIX)
    approximate = next(steps).statements[-1][0]
    index_part, pending_part = approximate.split("UNION ALL")
    assert "FROM store_vectors" in index_part
    assert "ORDER BY embedding <=>" in index_part  # the ANN index's ordering
    assert "FROM fspo_pending_vectors" in pending_part
    assert "+ 0" in pending_part  # the pending rows exactly
    exact = steps.send([]).statements[0][0]  # the index found too few: the exact scan
    assert "+ 0 AS d FROM store_vectors" in exact
    assert "+ 0 AS d FROM fspo_pending_vectors" in exact
    read = next(engine._steps(Vectors(("fspo", "u", "examples"), "prompt", ("k1",))))
    assert "UNION ALL" in read.statements[0][0]
    assert "fspo_pending_vectors" in read.statements[0][0]


def test_postgres_pool_searches_use_the_default_effort_and_exact_mode_skips_the_index() -> None:
    """`diverse`'s pool asks HNSW with `POOL_EF_SEARCH`; `VectorSearch(mode="exact")` scans."""
    from langchain_fspo.memory._engine_postgres import POOL_EF_SEARCH
    from langchain_fspo.memory._engines import Nearest

    engine = sql_only_engine(large=True)

    def first(**kwargs: object) -> tuple[tuple[str, object], ...]:
        query = Nearest(("fspo", "u", "examples"), "prompt", 32, vector=[1.0, 0, 0], **kwargs)
        return next(engine._nearest(query, PREFIX)).statements

    (settings, ef), (search, _) = first()
    assert "hnsw.ef_search" in settings
    assert ef == ("64",)
    assert "ORDER BY embedding <=>" in search
    (_, ef), _ = first(pool=True, search=VectorSearch())
    assert ef == (str(POOL_EF_SEARCH),)
    ((exact, _),) = first(search=VectorSearch(mode="exact"))
    assert "+ 0" in exact
    assert "hnsw" not in exact


@pytest.mark.parametrize(
    ("ann", "probes"),
    [({"kind": "ivfflat", "nlist": 340}, "37"), ({"kind": "ivfflat"}, "20")],
)
def test_postgres_ivfflat_stores_search_with_probes_not_hnsw_settings(
    ann: dict[str, object], probes: str
) -> None:
    """An IVFFlat index config gets `ivfflat.probes` (pgvector's default reads one list)."""
    from langchain_fspo.memory._engines import Nearest

    engine = sql_only_engine(ann, large=True)
    for pool in (False, True):
        query = Nearest(("fspo", "u", "examples"), "prompt", 32, vector=[1.0, 0, 0], pool=pool)
        (settings, asked), (search, _) = next(engine._nearest(query, PREFIX)).statements
        assert "ivfflat.iterative_scan" in settings
        assert "ivfflat.probes" in settings
        assert "hnsw" not in settings
        assert asked == (probes,)
        assert "ORDER BY embedding <=>" in search


@pytest.mark.postgres
@pytest.mark.integration
def test_postgres_count_estimate_reads_the_planners_statistics(indexed_postgres_store) -> None:
    """The estimate's SQL runs on a real server: after ANALYZE, the table's size is known."""
    from langchain_fspo.memory._engine_postgres import _ESTIMATE
    from langchain_fspo.memory._engines import Forget

    root = ("fspo-tests", "estimate")
    memory = PreferenceMemory(indexed_postgres_store, namespace=root)
    try:
        populate(memory, "big")
        engine = memory._driver.engine
        with engine._connection() as conn:
            conn.execute("ANALYZE store_vectors")
            prefix = ".".join(memory.namespaces("big").examples)
            row = conn.execute(_ESTIMATE, (prefix,)).fetchone()
        assert row["total"] >= len(TOPICS)
        assert row["estimate"] is None or 0 < row["estimate"] <= row["total"]
    finally:
        memory._driver.engine.run(Forget(root))


@pytest.mark.postgres
@pytest.mark.integration
def test_postgres_large_users_go_through_the_hnsw_index(
    indexed_postgres_store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Above `EXACT_SEARCH_MAX` vectors, `relevant` asks pgvector's HNSW index (iterative scan)."""
    from langchain_fspo.memory import _engine_postgres
    from langchain_fspo.memory._engines import Forget

    root = ("fspo-tests", "hnsw")
    memory = PreferenceMemory(indexed_postgres_store, namespace=root)
    try:
        populate(memory, "big")
        populate(memory, "other")
        query = "houseplant for a beginner"
        with caplog.at_level("DEBUG", logger=_engine_postgres.__name__):
            exact = memory.select("big", query, k=3, strategy="relevant")
            assert "exact scan" in caplog.text
            caplog.clear()
            monkeypatch.setattr(_engine_postgres, "EXACT_SEARCH_MAX", 3)
            monkeypatch.setattr(_engine_postgres, "HNSW_EXACT_RATIO", 0)  # whatever the stats say
            approximate = memory.select("big", query, k=3, strategy="relevant")
            assert "HNSW" in caplog.text
            caplog.clear()
            memory._vector_search = VectorSearch(mode="exact")  # the index is not asked
            forced = memory.select("big", query, k=3, strategy="relevant")
            assert "mode 'exact'" in caplog.text
            assert "HNSW" not in caplog.text
        assert approximate[0].prompt == "What is a good beginner houseplant?"
        assert {e.id for e in approximate} == {e.id for e in exact} == {e.id for e in forced}
        assert all(e.chosen.startswith("answer") for e in approximate)
    finally:
        memory._driver.engine.run(Forget(root))


@pytest.mark.postgres
@pytest.mark.integration
def test_postgres_ivfflat_index_config_is_searched_with_probes(
    postgres_url: str,
    indexed_postgres_store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store whose index config asks for IVFFlat: its settings run, its answers are exact's.

    In a schema of its own (the index kind is fixed when the store's tables are created),
    rebuilt once the data is in, as docs/serving.md tells users of IVFFlat to do. The engine's
    ordering index is made there too, though another schema's `store` already has one.
    """
    import uuid

    import psycopg
    from langgraph.store.postgres import PostgresStore

    from langchain_fspo.memory import _engine_postgres
    from langchain_fspo.memory._engine_postgres import ORDER_INDEX

    PreferenceMemory(indexed_postgres_store).count("nobody")  # the default schema's store
    with indexed_postgres_store._cursor() as cur:  # has its ordering index
        cur.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", (ORDER_INDEX,))
        assert cur.fetchone() is not None
    schema = f"fspo_ivfflat_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    conninfo = psycopg.conninfo.make_conninfo(
        postgres_url, options=f"-c search_path={schema},public"
    )
    index = {
        "dims": INDEX_DIMS,
        "embed": HashingEmbeddings(INDEX_DIMS),
        "fields": ["prompt"],
        "ann_index_config": {"kind": "ivfflat", "nlist": 4},
    }
    try:
        with PostgresStore.from_conn_string(conninfo, index=index) as store:
            store.setup()
            memory = PreferenceMemory(store)
            populate(memory, "big")
            with psycopg.connect(conninfo, autocommit=True) as conn:  # lists from the data
                conn.execute("REINDEX INDEX store_vectors_embedding_idx")
                (indexdef,) = conn.execute(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
                    "AND indexname = 'store_vectors_embedding_idx'",
                    (schema,),
                ).fetchone() or ("",)
            assert "ivfflat" in indexdef
            query = "houseplant for a beginner"
            exact = memory.select("big", query, k=3, strategy="relevant")
            monkeypatch.setattr(_engine_postgres, "EXACT_SEARCH_MAX", 3)
            monkeypatch.setattr(_engine_postgres, "HNSW_EXACT_RATIO", 0)
            with caplog.at_level("DEBUG", logger=_engine_postgres.__name__):
                approximate = memory.select("big", query, k=3, strategy="relevant")
            assert "IVFFlat index" in caplog.text
            assert "exact scan" not in caplog.text  # the index answered: no fallback
            pool = memory.select("big", query, k=3, strategy="diverse")
            with psycopg.connect(conninfo) as conn:  # `recent`'s index, in this schema too
                (indexes,) = conn.execute(
                    "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
                    (schema, ORDER_INDEX),
                ).fetchone() or (0,)
            assert indexes == 1
            assert [e.id for e in approximate] == [e.id for e in exact]
            assert approximate[0].prompt == "What is a good beginner houseplant?"
            assert len(pool) == 3
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.postgres
@pytest.mark.integration
async def test_postgres_async_hnsw_search_is_pipelined_like_the_sync_one(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled store runs the HNSW search natively, as one pipeline, and agrees with sync.

    The pipeline holds the settings, the search and the commit; checked for `relevant` and
    `diverse`.
    """
    from langchain_fspo.memory import _engine_postgres

    index = {"dims": INDEX_DIMS, "embed": HashingEmbeddings(INDEX_DIMS), "fields": ["prompt"]}
    monkeypatch.setattr(_engine_postgres, "EXACT_SEARCH_MAX", 3)
    monkeypatch.setattr(_engine_postgres, "HNSW_EXACT_RATIO", 0)
    async with PreferenceMemory.postgres(postgres_url, index=index, max_connections=2) as memory:
        assert memory._driver.engine.async_mode == "native"
        user = "hnsw-async"
        memory.forget(user)
        try:
            populate(memory, user)
            query = "houseplant for a beginner"
            for strategy in ("relevant", "diverse"):
                sync = memory.select(user, query, k=3, strategy=strategy)
                native = await memory.aselect(user, query, k=3, strategy=strategy)
                assert [e.id for e in native] == [e.id for e in sync]
                assert len(native) == 3
            (hit,) = await memory.aselect(user, query, k=1, strategy="relevant")
            assert hit.prompt == "What is a good beginner houseplant?"
        finally:
            memory.forget(user)
