"""Deferred vector indexing on a real PostgreSQL (`PreferenceMemory.postgres(defer_indexing=True)`).

A deferred `add` writes its vector to the pending table; a background thread moves it into
`store_vectors` (under the ANN index). These tests hold the mover where they need vectors to
stay pending, and check the invariant the module `_pg_pending` states: one vector per example
field across the two tables, the newest, found by the searches wherever it is.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langgraph.store.base import PutOp

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.memory import PreferenceMemory
from tests.memory_stores import INDEX_DIMS, RUN_PREFIX, HashingEmbeddings

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

EMBED = HashingEmbeddings(INDEX_DIMS)


def _index() -> Any:
    return {"dims": INDEX_DIMS, "embed": HashingEmbeddings(INDEX_DIMS), "fields": ["prompt"]}


@pytest.fixture
def root() -> tuple[str, ...]:
    return ("fspo-tests", RUN_PREFIX, f"deferred-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def deferred(postgres_url: str, root: tuple[str, ...]) -> Iterator[PreferenceMemory]:
    memory = PreferenceMemory.postgres(
        postgres_url, index=_index(), namespace=root, defer_indexing=True
    )
    try:
        yield memory
    finally:
        memory.forget("u")
        memory.close()


def _engine(memory: PreferenceMemory) -> Any:
    return memory._driver.engine


def _vectors(memory: PreferenceMemory, user: str = "u") -> dict[str, list[tuple[str, Any]]]:
    """Per table, the (key, vector) rows of `user`'s examples."""
    prefix = ".".join(memory.namespaces(user).examples)
    found: dict[str, list[tuple[str, Any]]] = {}
    with _engine(memory).store.conn.connection() as conn:
        for table in ("store_vectors", "fspo_pending_vectors"):
            rows = conn.execute(
                f"SELECT key, embedding::text AS v FROM {table} WHERE prefix = %s",
                (prefix,),
            ).fetchall()
            found[table] = [(r["key"], [float(x) for x in r["v"][1:-1].split(",")]) for r in rows]
    return found


def _hold_mover(memory: PreferenceMemory) -> Any:
    """Stop the memory's mover: its writes stay pending until the test moves them."""
    mover = _engine(memory)._mover
    mover.close()
    return mover


def _move_all(memory: PreferenceMemory) -> int:
    from langchain_fspo.memory._pg_pending import PendingMover

    return PendingMover(_engine(memory).store.conn).move_all()


def _close(a: list[float], b: list[float]) -> bool:
    return all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


def test_defer_indexing_needs_an_index() -> None:
    with pytest.raises(MemoryConfigError, match="needs `index=`"):
        PreferenceMemory.postgres("postgresql://nobody@127.0.0.1:1/none", defer_indexing=True)


def test_pending_vectors_are_searched_then_moved(deferred: PreferenceMemory) -> None:
    _hold_mover(deferred)
    prompts = [f"topic{i} about {animal}" for i, animal in enumerate(["cats", "dogs", "owls"] * 4)]
    for p in prompts:
        deferred.add("u", prompt=p, chosen="yes")
    held = _vectors(deferred)
    assert held["store_vectors"] == []
    assert len(held["fspo_pending_vectors"]) == len(prompts)
    (best,) = deferred.select("u", "topic4 dogs", k=1, strategy="relevant")
    assert best.prompt == "topic4 about dogs"  # the only prompt with both words
    picks = deferred.select("u", "owls", k=4, strategy="diverse")
    assert len(picks) == 4
    assert {e.prompt for e in picks} <= set(prompts)

    assert _move_all(deferred) == len(prompts)
    moved = _vectors(deferred)
    assert moved["fspo_pending_vectors"] == []
    assert sorted(k for k, _ in moved["store_vectors"]) == sorted(
        k for k, _ in held["fspo_pending_vectors"]
    )
    assert deferred.select("u", "topic4 dogs", k=1, strategy="relevant") == [best]


def test_the_mover_moves_in_the_background(deferred: PreferenceMemory) -> None:
    examples = [deferred.add("u", prompt=f"question {i}", chosen="a") for i in range(20)]
    deadline = time.monotonic() + 60  # liveness, not speed: it moves within a second here
    while _vectors(deferred)["fspo_pending_vectors"] and time.monotonic() < deadline:
        time.sleep(0.05)
    moved = _vectors(deferred)
    assert moved["fspo_pending_vectors"] == []
    assert sorted(k for k, _ in moved["store_vectors"]) == sorted(str(e.id) for e in examples)
    assert _engine(deferred)._mover.moved >= 20  # it moves any pending vector, not only ours


def _put(memory: PreferenceMemory, key: str, prompt: str) -> None:
    """A re-put of `key` with a new prompt, through the memory's engine (as `add` writes)."""
    ns = memory.namespaces("u").examples
    value = {"prompt": prompt, "chosen": "yes", "created_at": "2026-01-01T00:00:00+00:00"}
    _engine(memory).batch([PutOp(ns, key, value)])


def test_a_re_put_keeps_one_vector_the_newest(
    deferred: PreferenceMemory, postgres_url: str, root: tuple[str, ...]
) -> None:
    _hold_mover(deferred)
    _put(deferred, "k1", "first words")
    _put(deferred, "k1", "second words")  # pending replaced
    assert _vectors(deferred)["store_vectors"] == []
    ((key, vector),) = _vectors(deferred)["fspo_pending_vectors"]
    assert key == "k1"
    assert _close(vector, EMBED.embed_query("second words"))
    _move_all(deferred)
    _put(deferred, "k1", "third words")  # pending again, the indexed one deleted
    held = _vectors(deferred)
    assert held["store_vectors"] == []
    assert _close(held["fspo_pending_vectors"][0][1], EMBED.embed_query("third words"))
    # A memory that does not defer writes store_vectors and clears the pending vector.
    with PreferenceMemory.postgres(postgres_url, index=_index(), namespace=root) as direct:
        _put(direct, "k1", "fourth words")
    held = _vectors(deferred)
    assert held["fspo_pending_vectors"] == []
    ((_, vector),) = held["store_vectors"]
    assert _close(vector, EMBED.embed_query("fourth words"))
    (found,) = deferred.select("u", "fourth words", k=1, strategy="relevant")
    assert found.prompt == "fourth words"


def test_writers_the_mover_and_deletes_racing_keep_one_vector_per_example(
    deferred: PreferenceMemory, postgres_url: str, root: tuple[str, ...]
) -> None:
    """Deferred and direct writers re-put keys while the mover runs and keys are deleted.

    No deadlock or error; afterwards each stored key has one vector, its own.
    """
    keys = [f"k{i}" for i in range(6)]
    with PreferenceMemory.postgres(postgres_url, index=_index(), namespace=root) as direct:

        def work(t: int) -> None:
            memory = deferred if t % 2 else direct
            for i in range(40):
                key = keys[(t + i) % len(keys)]
                if i % 13 == 12:
                    memory.delete("u", key)
                else:
                    _put(memory, key, f"writer {t} round {i} {key}")

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(work, range(4)))
        _engine(deferred)._mover.close()
        _move_all(deferred)
        stored = {str(e.id): e.prompt for e in deferred.list("u")}
        vectors = _vectors(deferred)
        assert vectors["fspo_pending_vectors"] == []
        assert sorted(k for k, _ in vectors["store_vectors"]) == sorted(stored)
        for key, vector in vectors["store_vectors"]:
            assert _close(vector, EMBED.embed_query(stored[key])), key


async def test_async_adds_defer_too(postgres_url: str, root: tuple[str, ...]) -> None:
    memory = PreferenceMemory.postgres(
        postgres_url, index=_index(), namespace=root, defer_indexing=True
    )
    try:
        _hold_mover(memory)
        await memory.aadd("u", prompt="an async question on rivers", chosen="yes")
        await memory.aadd("u", prompt="an async question on mountains", chosen="yes")
        assert len(_vectors(memory)["fspo_pending_vectors"]) == 2
        (found,) = await memory.aselect("u", "mountains", k=1, strategy="relevant")
        assert found.prompt == "an async question on mountains"
        await memory.aforget("u")
        assert _vectors(memory) == {"store_vectors": [], "fspo_pending_vectors": []}
    finally:
        await memory.aclose()


def test_close_moves_the_backlog(postgres_url: str, root: tuple[str, ...]) -> None:
    memory = PreferenceMemory.postgres(
        postgres_url, index=_index(), namespace=root, defer_indexing=True
    )
    try:
        ids = sorted(str(memory.add("u", prompt=f"q {i}", chosen="a").id) for i in range(30))
    finally:
        memory.close()  # lets the mover finish (up to 10 s; 30 vectors take well under one)
    with PreferenceMemory.postgres(postgres_url, index=_index(), namespace=root) as reader:
        left = _vectors(reader)
        assert left["fspo_pending_vectors"] == []
        assert sorted(k for k, _ in left["store_vectors"]) == ids
        reader.forget("u")


def test_vectors_a_stopped_writer_left_are_moved_by_the_next(deferred: PreferenceMemory) -> None:
    """Vectors a writer left pending (stopped, as after a crash) are searched, then moved.

    The next deferring memory moves them when it starts.
    """
    _hold_mover(deferred)
    for i in range(5):
        deferred.add("u", prompt=f"left behind {i}", chosen="a")
    assert len(_vectors(deferred)["fspo_pending_vectors"]) == 5
    (found,) = deferred.select("u", "left behind 3", k=1, strategy="relevant")
    assert found.prompt == "left behind 3"
    url = _engine(deferred).store.conn.conninfo
    with PreferenceMemory.postgres(
        url, index=_index(), namespace=deferred._root, defer_indexing=True
    ) as successor:
        deadline = time.monotonic() + 60  # liveness, not speed
        while _vectors(successor)["fspo_pending_vectors"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _vectors(successor)["fspo_pending_vectors"] == []
        assert len(_vectors(successor)["store_vectors"]) == 5


def test_a_memory_that_does_not_defer_finds_the_pending_table_later(
    postgres_url: str, root: tuple[str, ...]
) -> None:
    """An engine that saw no pending table looks again after `PENDING_RECHECK_S`."""
    from langchain_fspo.memory._engine_postgres import PENDING_RECHECK_S, _Schema, _schemas

    with PreferenceMemory.postgres(postgres_url, index=_index(), namespace=root) as memory:
        engine = _engine(memory)
        memory.count("u")  # the engine checks the schema on first use
        _schemas[engine.store] = _Schema(pending=False, checked=time.monotonic())
        PreferenceMemory.postgres(  # another memory turns deferral on: the table exists
            postgres_url, index=_index(), namespace=root, defer_indexing=True
        ).close()
        memory.count("u")
        assert not engine._has_pending()  # checked just now: not looked up again
        _schemas[engine.store].checked = time.monotonic() - PENDING_RECHECK_S - 1
        memory.count("u")
        assert engine._has_pending()


def test_a_mover_whose_thread_is_gone_starts_another(deferred: PreferenceMemory) -> None:
    """As in a forked child (threads do not survive a fork) or after an unexpected error."""
    import threading

    mover = _engine(deferred)._mover
    gone = threading.Thread(target=lambda: None)
    gone.start()
    gone.join()
    mover._thread = gone
    deferred.add("u", prompt="after the fork", chosen="a")
    assert mover._thread is not gone
    deadline = time.monotonic() + 60  # liveness, not speed
    while _vectors(deferred)["fspo_pending_vectors"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [k for k, _ in _vectors(deferred)["store_vectors"]]
    assert _vectors(deferred)["fspo_pending_vectors"] == []


def test_a_failing_mover_backs_off_and_close_cuts_its_wait_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database unreachable: waits double between tries; `close` ends a wait at once."""
    import socket
    import threading

    from psycopg_pool import ConnectionPool

    from langchain_fspo.memory import _pg_pending
    from langchain_fspo.memory._pg_pending import PendingMover, retry_delay

    assert [retry_delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    with socket.socket() as probe:  # a port nothing listens on once this socket is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(_pg_pending, "RETRY_S", 600.0)
    monkeypatch.setattr(_pg_pending, "RETRY_MAX_S", 600.0)
    pool: ConnectionPool[Any] = ConnectionPool(
        f"postgresql://nobody@127.0.0.1:{port}/nothing", min_size=1, timeout=0.2, open=False
    )
    pool.open(wait=False)
    try:
        mover = PendingMover(pool)
        mover.wake()
        deadline = time.monotonic() + 60  # liveness, not speed
        while mover.failures < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mover.failures == 1  # one failed try, now in a 600 s wait
        closing = threading.Thread(target=mover.close)
        closing.start()
        closing.join(120)  # far below the wait it cut short
        assert not closing.is_alive()
        assert mover._thread is not None
        assert not mover._thread.is_alive()
        assert mover.failures == 1  # the last try, while closing, is not counted nor retried
    finally:
        pool.close()


def test_a_batch_that_works_resets_the_failure_count(deferred: PreferenceMemory) -> None:
    mover = _engine(deferred)._mover
    mover.failures = 3  # as after an outage
    deferred.add("u", prompt="the database is back", chosen="a")
    deadline = time.monotonic() + 60  # liveness, not speed
    while mover.failures and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mover.failures == 0
