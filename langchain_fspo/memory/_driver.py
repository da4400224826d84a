"""Runs `_plans` generators against a LangGraph store, sync or async, with per-user locks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, TypeVar

from langgraph.store.base import BaseStore, Op, Result
from langgraph.store.memory import InMemoryStore

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.memory._plans import Embed, Plan

__all__ = ["StoreDriver"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_LOCK_STRIPES = 64


@contextlib.asynccontextmanager
async def _hold(lock: threading.Lock) -> AsyncIterator[None]:
    """Hold a threading lock from async code without blocking the event loop."""
    delay = 0.0005
    while not lock.acquire(blocking=False):
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)
    try:
        yield
    finally:
        lock.release()


class StoreDriver:
    """Feeds plans their answers from `store.batch` / `store.abatch`.

    Writes for one user run under that user's lock (striped), so concurrent read-modify-write
    of the user's manifest in this process cannot lose an update. Calls into an
    `InMemoryStore`, which iterates its dicts unguarded, are serialised.
    """

    def __init__(self, store: BaseStore) -> None:
        self.store = store
        self._user_locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._store_lock = threading.Lock() if isinstance(store, InMemoryStore) else None
        self._async_via_thread = False

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

    def _stripes(self, user_ids: Sequence[str]) -> list[threading.Lock]:
        """The distinct lock stripes of `user_ids`, in a fixed order (no lock-order deadlock)."""
        indices = sorted({hash(u) % _LOCK_STRIPES for u in user_ids})
        return [self._user_locks[i] for i in indices]

    @contextlib.contextmanager
    def _locked(self, user_ids: Sequence[str]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for lock in self._stripes(user_ids):
                stack.enter_context(lock)
            yield

    @contextlib.asynccontextmanager
    async def _alocked(self, user_ids: Sequence[str]) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for lock in self._stripes(user_ids):
                await stack.enter_async_context(_hold(lock))
            yield

    def batch(self, ops: list[Op]) -> list[Result]:
        """`store.batch`, serialised for stores that need it."""
        if self._store_lock is None:
            return self.store.batch(ops)
        with self._store_lock:
            return self.store.batch(ops)

    async def abatch(self, ops: list[Op]) -> list[Result]:
        """`store.abatch`, or `store.batch` in a thread for sync-only stores (SqliteStore)."""
        if self._store_lock is not None:
            async with _hold(self._store_lock):
                return await self.store.abatch(ops)
        if not self._async_via_thread:
            try:
                return await self.store.abatch(ops)
            except NotImplementedError:
                # Sync-only stores refuse abatch before doing anything.
                logger.debug("%s has no abatch; running batch in a thread.", type(self.store))
                self._async_via_thread = True
        return await asyncio.to_thread(self.store.batch, ops)

    def run(self, plan: Plan[T], lock_users: Sequence[str] = ()) -> T:
        """Drive `plan` to completion with sync calls; hold `lock_users`' locks throughout."""
        with self._locked(lock_users):
            try:
                step = next(plan)
                while True:
                    if isinstance(step, Embed):
                        emb = self._embeddings()
                        query = emb.embed_query(step.query) if step.query else None
                        step = plan.send((emb.embed_documents(step.texts), query))
                    else:
                        step = plan.send(self.batch(step))
            except StopIteration as stop:
                result: T = stop.value
                return result

    async def arun(self, plan: Plan[T], lock_users: Sequence[str] = ()) -> T:
        """Drive `plan` to completion with async calls; hold `lock_users`' locks throughout."""
        async with self._alocked(lock_users):
            try:
                step = next(plan)
                while True:
                    if isinstance(step, Embed):
                        emb = self._embeddings()
                        query = await emb.aembed_query(step.query) if step.query else None
                        step = plan.send((await emb.aembed_documents(step.texts), query))
                    else:
                        step = plan.send(await self.abatch(step))
            except StopIteration as stop:
                result: T = stop.value
                return result

    def run_many(self, plans: Sequence[Plan[T]], lock_users: Sequence[str] = ()) -> list[T]:
        """Drive several store-only plans in lockstep, one `batch` per round for all of them."""
        results: list[Any] = [None] * len(plans)
        with self._locked(lock_users):
            pending: dict[int, list[Op]] = {}
            for i, plan in enumerate(plans):
                self._advance(i, plan, None, pending, results, first=True)
            while pending:
                order = list(pending)
                ops = [op for i in order for op in pending[i]]
                answers = self.batch(ops)
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
        answer: list[Result] | None,
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
        if isinstance(step, Embed):
            msg = "run_many drives store-only plans; this one asked for embeddings."
            raise MemoryConfigError(msg)
        pending[i] = step

    def _prune(self, prefix: tuple[str, ...]) -> None:
        n = len(prefix)
        store: Any = self.store
        for table in (store._data, store._vectors):  # noqa: SLF001 - no public API for it
            for namespace in [ns for ns, v in table.items() if ns[:n] == prefix and not v]:
                del table[namespace]

    def _checkpoint_sqlite(self) -> None:
        store: Any = self.store
        with store.lock:
            # Fold the WAL into the database and truncate it: the deleted rows' old page
            # images must not linger in the -wal file.
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def scrub(self, prefix: tuple[str, ...]) -> None:
        """After a `forget`: remove what the store keeps besides the items themselves.

        `InMemoryStore` keeps empty namespace entries (after deletes, and after reads of
        unknown namespaces); a WAL-mode SQLite file keeps old page images in its -wal file.
        """
        if self._store_lock is not None:
            with self._store_lock:
                self._prune(prefix)
        elif _is_sqlite_store(self.store):
            self._checkpoint_sqlite()

    async def ascrub(self, prefix: tuple[str, ...]) -> None:
        """Async `scrub` (never blocks the event loop on a lock)."""
        if self._store_lock is not None:
            async with _hold(self._store_lock):
                self._prune(prefix)
        elif _is_sqlite_store(self.store):
            await asyncio.to_thread(self._checkpoint_sqlite)


def _is_sqlite_store(store: BaseStore) -> bool:
    """Whether `store` is LangGraph's `SqliteStore`, without importing it (numpy, sqlite-vec).

    A store can only be a `SqliteStore` once its module has been imported by whoever made it.
    """
    module = sys.modules.get("langgraph.store.sqlite")
    return module is not None and isinstance(store, module.SqliteStore)
