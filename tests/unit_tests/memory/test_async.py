"""Async memory calls never hold the event loop on the store.

Structural checks, no timings: which thread touches a SQLite connection, and whether many
selects share the loop with other callbacks (`_slices`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.memory._slices import INLINE_BUDGET_S, run_in_slices


async def test_sqlite_short_reads_run_on_the_loop_and_the_rest_in_threads(tmp_path: Path) -> None:
    with PreferenceMemory.sqlite(tmp_path / "a.db") as memory:
        await memory.aadd("u", prompt="q", chosen="c")
        threads: dict[str, set[int]] = {}
        current: list[str] = ["none"]

        def trace(_sql: str) -> None:
            threads.setdefault(current[0], set()).add(threading.get_ident())

        memory.store.conn.set_trace_callback(trace)
        try:
            current[0] = "select"
            assert [e.chosen for e in await memory.aselect("u", k=4)] == ["c"]
            current[0] = "count"
            assert await memory.acount("u") == 1
            current[0] = "add"
            await memory.aadd("u", prompt="q2", chosen="c2")
        finally:
            memory.store.conn.set_trace_callback(None)
        loop_thread = threading.get_ident()
        assert threads["select"] == {loop_thread}, "an O(k) index walk: on the loop"
        assert loop_thread not in threads["count"], "a count scans: in a worker thread"
        assert loop_thread not in threads["add"], "a write waits for the file lock: in a thread"


async def test_a_lone_in_memory_select_runs_inline() -> None:
    memory = PreferenceMemory()
    memory.add("u", prompt="q", chosen="c")
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1

    asyncio.get_running_loop().call_soon(tick)
    assert [e.chosen for e in await memory.aselect("u", k=2)] == ["c"]
    assert ticks == 0, "answered without giving the loop an iteration"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_many_selects_leave_room_for_the_loop(kind: str, tmp_path: Path) -> None:
    memory = PreferenceMemory() if kind == "memory" else PreferenceMemory.sqlite(tmp_path / "m.db")
    memory.add_many("u", [{"prompt": f"q{i}", "chosen": f"c{i}"} for i in range(50)])
    expected = memory.select("u", k=8)
    ticks = 0
    done = asyncio.Event()

    def tick() -> None:  # a callback chain: one tick per loop iteration
        nonlocal ticks
        ticks += 1
        if not done.is_set():
            asyncio.get_running_loop().call_soon(tick)

    seen: set[int] = set()

    async def one() -> list[object]:
        shots = await memory.aselect("u", k=8)
        seen.add(ticks)  # the loop iteration this select was answered in
        return list(shots)

    asyncio.get_running_loop().call_soon(tick)
    results = await asyncio.gather(*(one() for _ in range(2_000)))
    done.set()
    assert all(r == expected for r in results)
    assert len(seen) > 1, "the selects were spread over several loop iterations"
    memory.close()


async def test_slices_spread_work_over_iterations_and_keep_errors() -> None:
    per_job = INLINE_BUDGET_S / 2
    iterations = 0
    stop = False

    def tick() -> None:
        nonlocal iterations
        iterations += 1
        if not stop:
            asyncio.get_running_loop().call_soon(tick)

    def job(i: int) -> int:
        time.sleep(per_job)  # at least per_job of work
        if i == 3:
            msg = "boom"
            raise ValueError(msg)
        return i

    async def one(i: int) -> object:
        try:
            return await run_in_slices(lambda: job(i))
        except ValueError as e:
            return str(e)

    asyncio.get_running_loop().call_soon(tick)
    results = await asyncio.gather(*(one(i) for i in range(20)))
    stop = True
    assert results == [*range(3), "boom", *range(4, 20)]
    # 20 jobs of half a budget each cannot fit in fewer than 10 / 2 budgets' worth of slices.
    assert iterations >= 5


@pytest.mark.postgres
@pytest.mark.integration
async def test_postgres_async_reads_wait_on_the_socket_not_a_thread(postgres_url: str) -> None:
    """On a pooled store, async reads use asyncio connections; results match the sync ones."""
    async with PreferenceMemory.postgres(postgres_url, max_connections=2) as memory:
        engine = memory._driver.engine
        assert engine.async_mode == "native"
        user = f"async-{threading.get_ident()}-{time.monotonic_ns()}"
        try:
            await memory.aadd_many(
                user, [{"prompt": f"q{i}", "chosen": f"c{i}"} for i in range(30)]
            )
            used: list[int] = []
            real = engine._steps

            def spy(query):  # runs where the SQL is sent: on the loop's thread when native
                used.append(threading.get_ident())
                return real(query)

            engine._steps = spy
            results = await asyncio.gather(*(memory.aselect(user, k=k) for k in range(12)))
            assert await memory.acount(user) == 30
            assert set(used) == {threading.get_ident()}
            listed = memory.list(user)
            assert results == [listed[-k:] if k else [] for k in range(12)]
            assert await memory.aforget(user) == 30
            assert memory.count(user) == 0
        finally:
            engine._steps = real
            memory.forget(user)
