"""Ordered and vector reads that LangGraph's `BaseStore` API cannot express, per kind of store.

`BaseStore.search` promises no order (SQLite and PostgreSQL sort by `updated_at`, which ties),
cannot return stored vectors, and its semantic search is a scan LangGraph's stores do their own
way. So each kind of store gets an engine that answers a few queries from the store's own
tables and indexes:

- order: in-memory, dict insertion order; SQLite, `rowid` (commit order); PostgreSQL,
  `(created_at, stamp, key)` through an index the engine adds.
- `Newest` (k rows): O(k) on all three (a reversed dict; an index walked backwards).
- `Nearest`: a numpy scan of a cached per-user matrix (in memory; on SQLite kept in step
  with the file by a change log the database's triggers write), exact below the query's
  `VectorSearch` threshold and coarse lists, a sign-code filter and exact rerank above; pgvector
  inside PostgreSQL (exact for small users, HNSW above).
- `Forget`: one locked sweep; one DELETE transaction; one DELETE statement.

Any other store gets `GenericEngine`: the same answers from `search` scans (exact, but O(history)).
Writes always go through the store's own `batch`, so its index config embeds what it should.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import numpy as np
from langgraph.store.base import BaseStore, Item, Op, PutOp, Result, SearchOp

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "AsyncMode",
    "Count",
    "Engine",
    "Forget",
    "GenericEngine",
    "Nearest",
    "Newest",
    "Oldest",
    "Query",
    "Row",
    "Vectors",
    "Version",
]

AsyncMode = Literal["thread", "inline", "native"]
"""How async calls run: a whole plan in a worker thread; step by step, the short reads on the
loop in slices and the rest in a thread; or step by step with the store's own `abatch`."""


class Row(NamedTuple):
    """One stored item: its key, its value, and its stored vector when one was asked for.

    A vector is a sequence of floats or a 1-d numpy array.
    """

    key: str
    value: Mapping[str, Any]
    vector: Any = None


@dataclass(frozen=True, slots=True)
class Newest:
    """The newest `limit` items of a namespace, newest first."""

    namespace: tuple[str, ...]
    limit: int


@dataclass(frozen=True, slots=True)
class Oldest:
    """Every item of a namespace, oldest first."""

    namespace: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Count:
    """How many items a namespace holds."""

    namespace: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Version:
    """A value that changes whenever the set of items of a namespace changes: (count, newest)."""

    namespace: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Nearest:
    """The `limit` items whose `field` vector is nearest `vector` (or `query`'s), best first.

    Engines with `vector_search` take `vector`; the generic engine passes `query` to the store.
    """

    namespace: tuple[str, ...]
    field: str
    limit: int
    vector: Sequence[float] | None = None
    query: str | None = None
    with_vectors: bool = False
    """Also answer each row's stored vector (`Row.vector`)."""
    search: Any = None
    """The memory's `VectorSearch` (None: exact); PostgreSQL reads only its `mode`."""
    pool: bool = False
    """A candidate pool the caller ranks again (MMR): searched with less effort (in process
    `ranking`; PostgreSQL pgvector's default `ef_search`)."""

    @property
    def ranking(self) -> Any:
        """The `VectorSearch` an in-process engine ranks with: `search`, or its `pool()`."""
        return self.search.pool() if self.pool and self.search is not None else self.search


@dataclass(frozen=True, slots=True)
class Vectors:
    """The stored `field` vectors of `keys` (keys without one are left out)."""

    namespace: tuple[str, ...]
    field: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Forget:
    """Delete every item under `prefix` (the namespace and all below); answer how many went.

    Atomic on SQLite and PostgreSQL.
    """

    prefix: tuple[str, ...]


Query = Newest | Oldest | Count | Version | Nearest | Vectors | Forget


class Engine(Protocol):
    """Answers `Query` objects for one store; see the module docstring."""

    @property
    def store(self) -> BaseStore:
        """The store this engine reads."""

    async_mode: AsyncMode
    vector_search: bool
    """Whether `Nearest` takes a vector and `Vectors` works (else: `Nearest.query`, no vectors)."""

    def run(self, query: Query) -> Any:
        """Answer `query` (sync)."""

    async def arun(self, query: Query) -> Any:
        """Answer `query` (async; only called in "native" mode)."""

    def batch(self, ops: list[Op]) -> list[Result]:
        """The store's `batch`, with whatever locking this engine needs."""

    def inline(self, step: object) -> bool:
        """Whether an async call may answer `step` on the event loop ("inline" mode)."""

    def run_locked(self, query: Query) -> Any:
        """Answer `query` while the caller holds the engine's `lock` ("inline" mode)."""

    def scrub(self, prefix: tuple[str, ...]) -> None:
        """After a `Forget`: drop what the store keeps besides the items (sync)."""


_SCAN_LIMIT = 1_000


def _sort_key(item: Item) -> tuple[str, str]:
    """Oldest first for stores without an order of their own: our time stamp, then the key."""
    stamp = item.value.get("created_at") if isinstance(item.value, Mapping) else None
    if not isinstance(stamp, str):
        stamp = item.created_at.isoformat() if isinstance(item.created_at, datetime) else ""
    return (stamp, item.key)


class GenericEngine:
    """Any `BaseStore`: every query is answered from full `search` scans (exact, O(history)).

    The order is the examples' `created_at` stamps, then their keys.
    """

    async_mode: AsyncMode = "native"
    vector_search = False

    def inline(self, step: object) -> bool:
        del step
        return False

    def run_locked(self, query: Query) -> Any:
        return self.run(query)

    def __init__(self, store: BaseStore) -> None:
        self.store = store

    def batch(self, ops: list[Op]) -> list[Result]:
        return self.store.batch(ops)

    def scrub(self, prefix: tuple[str, ...]) -> None:
        del prefix  # nothing kept besides the items

    def run(self, query: Query) -> Any:
        gen = self._answer(query)
        answer: Any = None
        try:
            while True:
                answer = self.store.batch(gen.send(answer))
        except StopIteration as stop:
            return stop.value

    async def arun(self, query: Query) -> Any:
        gen = self._answer(query)
        answer: Any = None
        try:
            while True:
                answer = await self.store.abatch(gen.send(answer))
        except StopIteration as stop:
            return stop.value

    def _answer(self, query: Query) -> Any:
        if isinstance(query, Nearest):
            (items,) = yield [SearchOp(query.namespace, query=query.query, limit=query.limit)]
            return [Row(i.key, i.value) for i in items]
        if isinstance(query, Vectors):
            return {}
        prefix = query.prefix if isinstance(query, Forget) else query.namespace
        limit = _SCAN_LIMIT
        while True:
            (items,) = yield [SearchOp(prefix, limit=limit)]
            if len(items) < limit:
                break
            limit *= 4
        if isinstance(query, Forget):
            if items:
                yield [PutOp(i.namespace, i.key, None) for i in items]
            return len(items)
        mine = sorted((i for i in items if tuple(i.namespace) == prefix), key=_sort_key)
        if isinstance(query, Count):
            return len(mine)
        if isinstance(query, Version):
            return [len(mine), mine[-1].key if mine else None]
        rows = [Row(i.key, i.value) for i in mine]
        if isinstance(query, Newest):
            return rows[::-1][: query.limit]
        return rows


def distance_type(store: BaseStore) -> str:
    """The store's configured distance ("cosine" unless its index config says otherwise)."""
    config = getattr(store, "index_config", None) or {}
    kind = config.get("distance_type", "cosine")
    return kind if kind in ("cosine", "l2", "inner_product") else "cosine"


def finite(vector: Sequence[float]) -> NDArray[np.float64]:
    """`vector` as a float64 array, checked finite (a NaN would make every distance NaN)."""
    try:
        values = np.asarray(vector, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        msg = f"The query embedding must be a sequence of numbers, got {vector!r:.80}."
        raise ValueError(msg) from e
    if not np.isfinite(values).all():
        msg = "The query embedding holds a NaN or infinity."
        raise ValueError(msg)
    return values
