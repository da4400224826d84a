"""Runs `_plans` generators against a store's engine, sync or async.

Async calls never block the event loop on the store:

- PostgreSQL on a connection pool (`"native"`): queries run on asyncio connections to the
  same database, writes through the store's `abatch`; on a single connection (`"thread"`),
  the whole plan runs in one worker thread (one hop per call, not one per round trip).
- In-memory and SQLite (`"inline"`): the short reads of a read-only plan (O(k) rows) run on
  the loop, in slices of at most `INLINE_BUDGET_S` of work per loop iteration (`_slices`);
  a read that finds the store locked by a thread, longer reads (vector scans, full lists)
  and every write (the store embeds inside its lock) go to a worker thread.
- Any other store (`"native"`): the store's own `abatch` (and `asearch`), step by step.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

from langgraph.store.base import BaseStore, Op

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.memory._engines import Engine, GenericEngine
from langchain_fspo.memory._plans import Embed, Plan
from langchain_fspo.memory._slices import run_in_slices

__all__ = ["StoreDriver"]

T = TypeVar("T")


class StoreDriver:
    """Feeds plans their answers from one store's engine (see the module docstring)."""

    def __init__(self, store: BaseStore) -> None:
        self.store = store
        self.engine: Engine = engine_for(store)

    @property
    def has_index(self) -> bool:
        """Whether the store embeds items (so semantic search works)."""
        return bool(getattr(self.store, "index_config", None)) and (
            getattr(self.store, "embeddings", None) is not None
        )

    def _embeddings(self) -> Any:
        embeddings = getattr(self.store, "embeddings", None)
        if embeddings is None:
            msg = f"{type(self.store).__name__} has no embeddings; configure it with `index=`."
            raise MemoryConfigError(msg)
        return embeddings

    def _answer(self, step: Any) -> Any:
        """The sync answer to one non-`Embed` step."""
        if isinstance(step, list):
            return self.engine.batch(step)
        return self.engine.run(step)

    def run(self, plan: Plan[T]) -> T:
        """Drive `plan` to completion with sync calls."""
        try:
            step = next(plan)
            while True:
                if isinstance(step, Embed):
                    emb = self._embeddings()
                    docs = emb.embed_documents(step.texts) if step.texts else []
                    query = emb.embed_query(step.query) if step.query else None
                    step = plan.send((docs, query))
                else:
                    step = plan.send(self._answer(step))
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def arun(self, plan: Plan[T], *, writes: bool = False) -> T:
        """Drive `plan` to completion without blocking the event loop (module docstring)."""
        mode = self.engine.async_mode
        if mode == "thread" or (mode == "inline" and writes):
            return await asyncio.to_thread(self.run, plan)
        try:
            step = next(plan)
            while True:
                if isinstance(step, Embed):
                    emb = self._embeddings()
                    docs = await emb.aembed_documents(step.texts) if step.texts else []
                    query = await emb.aembed_query(step.query) if step.query else None
                    step = plan.send((docs, query))
                elif mode == "inline":
                    step = plan.send(await self._inline(step))
                elif isinstance(step, list):
                    abatch = getattr(self.engine, "abatch", None) or self.store.abatch
                    step = plan.send(await abatch(step))
                else:
                    step = plan.send(await self.engine.arun(step))
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def _inline(self, step: Any) -> Any:
        """Answer a short read on the loop (a slice) if allowed and unlocked; else in a thread."""
        engine = self.engine
        lock = getattr(engine, "lock", None)
        if lock is None or not engine.inline(step):
            return await asyncio.to_thread(self._answer, step)

        def attempt() -> tuple[bool, Any]:
            if not lock.acquire(blocking=False):
                return False, None
            try:
                if isinstance(step, list):
                    return True, engine.store.batch(step)
                return True, engine.run_locked(step)
            finally:
                lock.release()

        done, answer = await run_in_slices(attempt)
        if done:
            return answer
        return await asyncio.to_thread(self._answer, step)

    def run_many(self, plans: Sequence[Plan[T]]) -> list[T]:
        """Drive several store-only plans in lockstep, one `batch` per round for all of them."""
        results: list[Any] = [None] * len(plans)
        pending: dict[int, list[Op]] = {}
        for i, plan in enumerate(plans):
            self._advance(i, plan, None, pending, results, first=True)
        while pending:
            order = list(pending)
            answers = self.engine.batch([op for i in order for op in pending[i]])
            start = 0
            current = dict(pending)
            pending.clear()
            for i in order:
                n = len(current[i])
                self._advance(i, plans[i], answers[start : start + n], pending, results)
                start += n
        return results

    @staticmethod
    def _advance(
        i: int,
        plan: Plan[Any],
        answer: list[Any] | None,
        pending: dict[int, list[Op]],
        results: list[Any],
        *,
        first: bool = False,
    ) -> None:
        try:
            step = next(plan) if first else plan.send(answer)
        except StopIteration as stop:
            results[i] = stop.value
            return
        if not isinstance(step, list):
            msg = "run_many drives store-only plans; this one asked for something else."
            raise MemoryConfigError(msg)
        pending[i] = step

    async def aclose(self) -> None:
        """Close the async connections the engine opened on the running loop, if any."""
        aclose = getattr(self.engine, "aclose", None)
        if aclose is not None:
            await aclose()

    def scrub(self, prefix: tuple[str, ...]) -> None:
        """After a `forget`: remove what the store keeps besides the items themselves."""
        self.engine.scrub(prefix)

    async def ascrub(self, prefix: tuple[str, ...]) -> None:
        """Async `scrub` (in a worker thread: a WAL checkpoint writes the file)."""
        if self.engine.async_mode == "thread":
            await asyncio.to_thread(self.engine.scrub, prefix)
        else:
            self.engine.scrub(prefix)


def engine_for(store: BaseStore) -> Engine:
    """The engine for `store`: a specialised one for LangGraph's stores, else `GenericEngine`."""
    from langgraph.store.memory import InMemoryStore

    if type(store) is InMemoryStore:
        from langchain_fspo.memory._engine_memory import InMemoryEngine

        return InMemoryEngine(store)
    # Their modules import numpy, sqlite-vec, psycopg: only look if the caller imported them.
    if "langgraph.store.sqlite.base" in sys.modules:
        from langgraph.store.sqlite import SqliteStore

        if isinstance(store, SqliteStore) and type(store) is SqliteStore:
            from langchain_fspo.memory._engine_sqlite import SqliteEngine

            return SqliteEngine(store)
    if "langgraph.store.postgres.base" in sys.modules:
        from langgraph.store.postgres import PostgresStore

        if isinstance(store, PostgresStore) and type(store) is PostgresStore:
            from langchain_fspo.memory._engine_postgres import PostgresEngine

            return PostgresEngine(store)
    return GenericEngine(store)
