"""Worker processes for the multi-process `PreferenceMemory` test (`test_memory_concurrency`).

Each worker opens its own `PreferenceMemory` on the shared SQLite file or PostgreSQL database,
waits at a barrier so that all start together, does its part, and puts a report on a queue:
what it wrote and when (monotonic clock, shared by all processes of the machine), or what it
saw. Nothing here asserts: the test compares the reports with the store afterwards.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from langchain_fspo.memory import PreferenceMemory


def open_memory(target: dict[str, str]) -> PreferenceMemory:
    """The memory a worker writes through: `{"sqlite": path}` or `{"postgres": url}`.

    With `"deferred": "1"` beside the URL: an embedding index over `prompt` whose inserts are
    deferred (`defer_indexing=True`).
    """
    if "sqlite" in target:
        return PreferenceMemory.sqlite(target["sqlite"])
    if target.get("deferred") == "1":
        from tests.memory_stores import INDEX_DIMS, HashingEmbeddings

        index: Any = {
            "dims": INDEX_DIMS,
            "embed": HashingEmbeddings(INDEX_DIMS),
            "fields": ["prompt"],
        }
        return PreferenceMemory.postgres(
            target["postgres"], index=index, max_connections=2, defer_indexing=True
        )
    return PreferenceMemory.postgres(target["postgres"], max_connections=2)


def _run(name: str, queue: Any, barrier: Any, body: Any) -> None:
    try:
        barrier.wait(timeout=60)
        queue.put((name, "ok", body()))
    except BaseException:
        queue.put((name, "error", traceback.format_exc()))


def writer(
    name: str,
    target: dict[str, str],
    user: str,
    n: int,
    queue: Any,
    barrier: Any,
    halfway: Any = None,
) -> None:
    """Add `n` examples to `user`, one call each; report (id, started, acknowledged) per add."""
    memory = open_memory(target)

    def body() -> list[tuple[str, int, int]]:
        acks = []
        for i in range(n):
            started = time.monotonic_ns()
            example = memory.add(user, prompt=f"{name} question {i}", chosen=f"{name} answer {i}")
            acks.append((str(example.id), started, time.monotonic_ns()))
            if halfway is not None and i == n // 2:
                halfway.set()
        return acks

    try:
        _run(name, queue, barrier, body)
    finally:
        memory.close()


def forgetter(
    name: str, target: dict[str, str], user: str, queue: Any, barrier: Any, halfway: Any
) -> None:
    """Forget `user` once its writer is half done; report when forget began and returned."""
    memory = open_memory(target)

    def body() -> tuple[int, int, int]:
        halfway.wait(timeout=60)
        began = time.monotonic_ns()
        removed = memory.forget(user)
        return began, time.monotonic_ns(), removed

    try:
        _run(name, queue, barrier, body)
    finally:
        memory.close()


def reader(
    name: str, target: dict[str, str], user: str, tag: str, queue: Any, barrier: Any, rounds: int
) -> None:
    """Select `user`'s shots while the writers run; report every anomaly seen.

    The newest `k`; with an index, every fifth select the 8 most relevant.
    """
    memory = open_memory(target)

    def body() -> dict[str, Any]:
        anomalies: list[str] = []
        seen: set[str] = set()
        selects = 0
        for i in range(rounds):
            k = 1 + (i * 37) % 64
            if memory.has_index and i % 5 == 4:  # vectors indexed or still pending
                shots = memory.select(user, f"{tag}{i % 4} question {i}", k=8, strategy="relevant")
                k = 8
            else:
                shots = memory.select(user, k=k)
            selects += 1
            ids = [str(e.id) for e in shots]
            seen.update(ids)
            if len(shots) > k or len(set(ids)) != len(ids):
                anomalies.append(f"k={k}: {len(shots)} shots, {len(set(ids))} distinct")
            foreign = [e.prompt for e in shots if not e.prompt.startswith(tag)]
            if foreign:
                anomalies.append(f"k={k}: shots of another user {foreign[:2]}")
        return {"selects": selects, "anomalies": anomalies, "ids_seen": sorted(seen)}

    try:
        _run(name, queue, barrier, body)
    finally:
        memory.close()
