"""`InMemoryEngine`: ordered and vector reads straight from LangGraph's `InMemoryStore` dicts.

`InMemoryStore` keeps `_data[namespace][key] -> Item` and `_vectors[namespace][key][field]`
in plain dicts and guards nothing, so every call into it runs under one lock per store (shared
by all `PreferenceMemory` objects on that store). A namespace's dict keeps insertion order:
the newest `k` are the last `k` entries, read backwards in O(k). `Nearest` scans a
`VectorMatrix` cached per namespace (exact, or coarse lists and an exact rerank per the
query's `VectorSearch`): our own writes update it and its lists in place, a change made to the
store behind our back (a different count or last key) rebuilds it.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langgraph.store.base import PutOp

from langchain_fspo.memory import _engines as q
from langchain_fspo.memory._vector_matrix import VectorMatrix

if TYPE_CHECKING:
    from langgraph.store.base import Op, Result
    from langgraph.store.memory import InMemoryStore

__all__ = ["InMemoryEngine", "store_lock"]

_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def store_lock(store: object) -> threading.Lock:
    """The one lock of `store`, shared by every engine on it."""
    with _locks_guard:
        lock = _locks.get(store)
        if lock is None:
            lock = _locks[store] = threading.Lock()
        return lock


class _Cached:
    """The matrix of one namespace's `field`, with the namespace's size and last key it matches."""

    def __init__(self, size: int, last: str | None, matrix: VectorMatrix) -> None:
        self.size = size
        self.last = last
        self.matrix = matrix


class InMemoryEngine:
    """Answers queries from an `InMemoryStore`'s own dicts (O(k) newest, numpy nearest)."""

    async_mode: q.AsyncMode = "inline"
    vector_search = True

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.lock = store_lock(store)
        self._matrices: dict[tuple[str, ...], dict[str, _Cached]] = {}
        """Per namespace, per field: writes look up only the namespaces they touch."""

    def batch(self, ops: list[Op]) -> list[Result]:
        with self.lock:
            results = self.store.batch(ops)
            self._follow([op for op in ops if isinstance(op, PutOp)])
            return results

    def _follow(self, puts: list[PutOp]) -> None:
        """Apply our own writes to the cached matrices they touch (no rebuild)."""
        if not puts or not self._matrices:
            return
        vectors = self.store._vectors  # noqa: SLF001 - no API for it
        for op in puts:
            stored = vectors.get(op.namespace) or {}
            for field, cached in (self._matrices.get(op.namespace) or {}).items():
                vector = (stored.get(op.key) or {}).get(field) if op.value is not None else None
                if vector is None or not cached.matrix.upsert(op.key, vector):
                    cached.matrix.remove(op.key)
                cached.size = len(stored)
                cached.last = next(reversed(stored), None)

    def run(self, query: q.Query) -> Any:
        with self.lock:
            return self.run_locked(query)

    async def arun(self, query: q.Query) -> Any:
        return self.run(query)

    def inline(self, step: object) -> bool:
        """Whether `step` may run on the event loop: not a full read nor a vector scan."""
        return not isinstance(step, q.Oldest | q.Nearest | q.Forget)

    def run_locked(self, query: q.Query) -> Any:
        """Answer `query`; the caller holds `self.lock`."""
        if isinstance(query, q.Forget):
            return self._forget(query.prefix)
        items = self.store._data.get(query.namespace) or {}  # noqa: SLF001 - no API for it
        if isinstance(query, q.Newest):
            return [
                q.Row(i.key, i.value)
                for i in itertools.islice(reversed(items.values()), query.limit)
            ]
        if isinstance(query, q.Oldest):
            return [q.Row(i.key, i.value) for i in items.values()]
        if isinstance(query, q.Count):
            return len(items)
        if isinstance(query, q.Version):
            return [len(items), next(reversed(items), None)]
        if isinstance(query, q.Vectors):
            return self._vectors(query)
        return self._nearest(query, items)

    def _vectors(self, query: q.Vectors) -> dict[str, Any]:
        """The stored vectors of `query.keys`: rows of the cached matrix when it is in step.

        The store keeps lists of floats, which numpy converts one float at a time; the matrix
        is not built for this (a search builds it).
        """
        vectors = self.store._vectors.get(query.namespace) or {}  # noqa: SLF001
        cached = self._cached(query.namespace, query.field, vectors)
        if cached is not None:
            return cached.stored(query.keys)
        found = {key: (vectors.get(key) or {}).get(query.field) for key in query.keys}
        return {key: vector for key, vector in found.items() if vector is not None}

    def _nearest(self, query: q.Nearest, items: dict[str, Any]) -> list[q.Row]:
        if query.vector is None or query.limit <= 0:
            return []
        matrix = self._matrix(query.namespace, query.field)
        metric = "l2" if q.distance_type(self.store) == "l2" else "cosine"
        rows = []
        target = q.finite(query.vector)
        hits = matrix.nearest(target, query.limit, metric=metric, search=query.ranking)
        for i, vector in zip(hits, matrix.vectors(hits), strict=True):
            key = matrix.keys[i]
            item = items.get(key)
            if item is not None:
                rows.append(q.Row(key, item.value, vector))
        return rows

    def _matrix(self, namespace: tuple[str, ...], field: str) -> VectorMatrix:
        """The cached matrix of `namespace`, rebuilt if the namespace changed behind our back.

        Items are appended in order and re-puts keep their place, so an unchanged count and
        an unchanged last key mean an unchanged set; our own writes are applied by `_follow`.
        """
        vectors = self.store._vectors.get(namespace) or {}  # noqa: SLF001
        matrix = self._cached(namespace, field, vectors)
        if matrix is not None:
            return matrix
        keys = [key for key, fields in vectors.items() if field in fields]
        dims = int((getattr(self.store, "index_config", None) or {}).get("dims") or 1)
        matrix = VectorMatrix.build(keys, [vectors[key][field] for key in keys], dims)
        last = next(reversed(vectors), None)
        self._matrices.setdefault(namespace, {})[field] = _Cached(len(vectors), last, matrix)
        return matrix

    def _cached(
        self, namespace: tuple[str, ...], field: str, vectors: dict[str, Any]
    ) -> VectorMatrix | None:
        """The cached matrix of the field if it matches `vectors` (the namespace's), else None."""
        cached = (self._matrices.get(namespace) or {}).get(field)
        if cached is None or cached.size != len(vectors):
            return None
        return cached.matrix if cached.last == next(reversed(vectors), None) else None

    def invalidate(self, namespaces: Sequence[tuple[str, ...]]) -> None:
        """Drop the cached matrices of `namespaces` (after `forget`)."""
        for namespace in namespaces:
            self._matrices.pop(namespace, None)

    def _forget(self, prefix: tuple[str, ...]) -> int:
        n = len(prefix)
        data = self.store._data  # noqa: SLF001
        vectors = self.store._vectors  # noqa: SLF001
        removed = 0
        for namespace in [ns for ns in data if ns[:n] == prefix]:
            removed += len(data.pop(namespace))
        for namespace in [ns for ns in vectors if ns[:n] == prefix]:
            del vectors[namespace]
        self.invalidate([ns for ns in self._matrices if ns[:n] == prefix])
        return removed

    def scrub(self, prefix: tuple[str, ...]) -> None:
        """Nothing left to scrub: `Forget` removed the namespaces themselves."""
        del prefix
