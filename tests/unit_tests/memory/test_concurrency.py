"""Several writers on one store: processes, threads, and two `PreferenceMemory` objects.

The multi-process test runs on SQLite, on PostgreSQL, and on PostgreSQL with an embedding index
whose inserts are deferred (`defer_indexing=True`: vectors pending, moved in the background; CI
starts a server, elsewhere the PostgreSQL cases skip). Its processes start together at a barrier:

- 4 writers add 200 examples each to one user (one `add` call per example);
- 1 reader selects that user's newest shots all along;
- 1 writer adds 200 examples to a second user while 1 forgetter forgets that user once the
  writer is half done.

Each process reports what it did (ids, and when each call started and was acknowledged, on
the machine's monotonic clock). The assertions hold whatever the interleaving, so the test
cannot flake: afterwards `count`, `list`, `export` and `select(k)` for every k agree with the
acknowledged writes; the reader never saw an unknown or foreign example; everything
acknowledged before `forget` began is gone, everything started after it returned is there;
with an index, each example left has one vector (indexed or pending) and is found by its prompt.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from langchain_fspo.memory import PreferenceMemory
from tests import memory_workers
from tests.memory_stores import INDEX_DIMS, HashingEmbeddings

Users = Callable[[str], str]

WRITERS = 4
PER_WRITER = 200
FORGET_RACE = 200

_postgres = pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration])


@pytest.fixture(scope="module")
def spawner() -> Any:
    """A forkserver context: children fork from a clean process that imported the memory once."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.memory_workers"])
    return ctx


_deferred = pytest.param("postgres-deferred", marks=[pytest.mark.postgres, pytest.mark.integration])


@pytest.fixture(params=["sqlite", _postgres, _deferred])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        path = tmp_path / "shared.db"
        PreferenceMemory.sqlite(path).close()  # create the tables before the race
        yield {"sqlite": str(path)}
    elif request.param == "postgres":
        yield {"postgres": request.getfixturevalue("postgres_url")}
    else:  # writers with an index whose inserts are deferred (`defer_indexing=True`)
        target = {"postgres": request.getfixturevalue("postgres_url"), "deferred": "1"}
        memory_workers.open_memory(target).close()  # migrate before the race
        yield target


def _check_vectors(memory: PreferenceMemory, user: str, ids: list[str]) -> None:
    """With an index: each listed example has one vector (indexed or pending), found by prompt."""
    if not memory.has_index:
        return
    engine: Any = memory._driver.engine
    prefix = ".".join(memory.namespaces(user).examples)
    with engine.store.conn.connection() as conn:
        keys = [
            r["key"]
            for r in conn.execute(
                "SELECT key FROM store_vectors WHERE prefix = %(p)s UNION ALL "
                "SELECT key FROM fspo_pending_vectors WHERE prefix = %(p)s",
                {"p": prefix},
            )
        ]
    assert sorted(keys) == sorted(ids), "one vector per stored example, none of another"
    for example in memory.list(user)[:: max(1, len(ids) // 8)]:
        (found,) = memory.select(user, example.prompt, k=1, strategy="relevant")
        embed = HashingEmbeddings(INDEX_DIMS).embed_query  # prompts may collide in its dims
        assert embed(found.prompt) == embed(example.prompt), (found.prompt, example.prompt)


def _check_consistent(memory: PreferenceMemory, user: str) -> list[str]:
    """count, list, export and select(k) for every k agree; return the listed ids."""
    listed = memory.list(user)
    ids = [str(e.id) for e in listed]
    assert len(set(ids)) == len(ids), "no duplicates"
    assert memory.count(user) == len(listed)
    assert [e["id"] for e in memory.export(user)["examples"]] == ids
    for k in range(len(listed) + 2):
        assert memory.select(user, k=k) == (listed[-k:] if k else []), f"k={k}"
    return ids


def test_processes_racing_on_one_user_stay_exact(
    spawner: Any, target: dict[str, str], users: Users
) -> None:
    busy, raced = users("busy"), users("raced")
    reports: Any = spawner.Queue()
    barrier = spawner.Barrier(WRITERS + 3)
    halfway = spawner.Event()
    procs = [
        spawner.Process(
            target=memory_workers.writer,
            args=(f"w{i}", target, busy, PER_WRITER, reports, barrier),
        )
        for i in range(WRITERS)
    ]
    procs += [
        spawner.Process(
            target=memory_workers.reader,
            args=("reader", target, busy, "w", reports, barrier, 150),
        ),
        spawner.Process(
            target=memory_workers.writer,
            args=("late", target, raced, FORGET_RACE, reports, barrier, halfway),
        ),
        spawner.Process(
            target=memory_workers.forgetter,
            args=("forget", target, raced, reports, barrier, halfway),
        ),
    ]
    for p in procs:
        p.start()
    got: dict[str, Any] = {}
    try:
        for _ in procs:
            name, status, body = reports.get(timeout=120)
            assert status == "ok", f"{name} failed:\n{body}"
            got[name] = body
    except queue_module.Empty:
        pytest.fail(f"workers did not report in time; got {sorted(got)}")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()

    memory = memory_workers.open_memory(target)
    try:
        acked = {ack[0] for i in range(WRITERS) for ack in got[f"w{i}"]}
        assert len(acked) == WRITERS * PER_WRITER
        assert set(_check_consistent(memory, busy)) == acked
        _check_vectors(memory, busy, sorted(acked))
        assert got["reader"]["anomalies"] == []
        assert set(got["reader"]["ids_seen"]) <= acked, "the reader saw only stored examples"

        began, returned, _ = got["forget"]
        survivors = set(_check_consistent(memory, raced))
        late = got["late"]
        before = {i for i, _, acknowledged in late if acknowledged < began}
        after = {i for i, started, _ in late if started > returned}
        assert before, "some adds finished before forget began"
        assert not survivors & before, "forget left something written before it began"
        assert after <= survivors, "an add after forget returned was lost"
        assert survivors <= {i for i, _, _ in late}
        _check_vectors(memory, raced, sorted(survivors))
    finally:
        for user in (busy, raced):
            memory.forget(user)
        memory.close()


def _hammer(memories: list[PreferenceMemory], user: str, threads: int, per_thread: int) -> set[str]:
    def work(t: int) -> list[str]:
        memory = memories[t % len(memories)]
        return [
            str(memory.add(user, prompt=f"t{t} q{i}", chosen=f"t{t} c{i}").id)
            for i in range(per_thread)
        ]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return {i for ids in pool.map(work, range(threads)) for i in ids}


def test_two_memories_and_threads_on_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "two.db"
    first, second = PreferenceMemory.sqlite(path), PreferenceMemory.sqlite(path)
    try:
        acked = _hammer([first, second], "shared", threads=6, per_thread=50)
        assert len(acked) == 300
        for memory in (first, second):
            assert set(_check_consistent(memory, "shared")) == acked
        assert first.list("shared") == second.list("shared")
    finally:
        first.close()
        second.close()


def test_two_memories_and_threads_on_one_in_memory_store() -> None:
    store = InMemoryStore()
    first, second = PreferenceMemory(store), PreferenceMemory(store)
    acked = _hammer([first, second], "shared", threads=6, per_thread=50)
    for memory in (first, second):
        assert set(_check_consistent(memory, "shared")) == acked


def test_threads_and_a_forget_on_postgres(memory: PreferenceMemory, users: Users) -> None:
    """Threads of one memory writing one user on every store (PostgreSQL's pool included)."""
    user = users("pool")
    acked = _hammer([memory], user, threads=6, per_thread=30)
    assert set(_check_consistent(memory, user)) == acked
    assert memory.forget(user) == len(acked)
    assert _check_consistent(memory, user) == []
