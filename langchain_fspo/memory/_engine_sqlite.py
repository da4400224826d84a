"""`SqliteEngine`: ordered and vector reads in SQL on LangGraph's `SqliteStore` tables.

`store (prefix, key, value, ...)` is a rowid table with an index `store_prefix_idx (prefix)`;
SQLite appends the rowid to every index, so `WHERE prefix = ? ORDER BY rowid DESC LIMIT k`
walks that index backwards: O(k), in commit order (SQLite serialises writers and gives each
new row a rowid above every live one). `store_vectors` holds one float32 BLOB per indexed
field; `Nearest` is an exact scan of a numpy matrix of the namespace's vectors that this process
keeps in step with the file through a change log the database writes (`_sqlite_vectors`): O(k)
SQL plus one linear matrix-vector product. Where the log cannot be created (a read-only file),
an exact scan with sqlite-vec's distance functions in SQL answers instead.

Reads and writes share the store's connection and its lock, as `SqliteStore` does. Async reads
of O(k) rows run on the event loop, within its slice budget (`_slices`), when that lock is free:
a thread hop would cost more than the read.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

import orjson

from langchain_fspo.memory import _engines as q
from langchain_fspo.memory._sqlite_vectors import vector_index

if TYPE_CHECKING:
    from langgraph.store.base import Op, Result
    from langgraph.store.sqlite import SqliteStore

__all__ = ["INLINE_MAX_ROWS", "SqliteEngine", "glob_literal"]

INLINE_MAX_ROWS = 512
"""Largest read an async call runs on the event loop (in a slice); larger ones use a thread."""

_DISTANCE = {"cosine": "vec_distance_cosine", "l2": "vec_distance_L2"}


def _text(namespace: tuple[str, ...]) -> str:
    return ".".join(namespace)


def glob_literal(text: str) -> str:
    """`text` with GLOB's wildcards bracketed, so that it matches itself only."""
    return text.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


def _value(raw: Any) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw) if not isinstance(raw, dict) else raw
    return value


def _values_of(conn: Any, prefix: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The stored values of `keys` in namespace `prefix` (missing keys left out)."""
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT key, value FROM store WHERE prefix = ? AND key IN ({marks})",  # noqa: S608
        (prefix, *keys),
    ).fetchall()
    return {key: _value(value) for key, value in rows}


def _floats(blob: bytes) -> Any:
    """A stored float32 BLOB as a numpy array (no copy)."""
    import numpy as np

    return np.frombuffer(blob, dtype=np.float32)


class SqliteEngine:
    """Answers queries with SQL on a `SqliteStore`'s connection (see the module docstring)."""

    async_mode: q.AsyncMode = "inline"
    vector_search = True

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.lock = store.lock
        self._held = threading.local()
        self._index = vector_index(store)

    def inline(self, step: object) -> bool:
        """Whether `step` may run on the event loop: an O(k) read (an index walk)."""
        if isinstance(step, q.Newest):
            return step.limit <= INLINE_MAX_ROWS
        return isinstance(step, q.Vectors) and len(step.keys) <= INLINE_MAX_ROWS

    def run_locked(self, query: q.Query) -> Any:
        """Answer `query`; the caller holds `self.lock`."""
        self._held.value = True
        try:
            return self.run(query)
        finally:
            self._held.value = False

    def batch(self, ops: list[Op]) -> list[Result]:
        return self.store.batch(ops)

    async def arun(self, query: q.Query) -> Any:
        return self.run(query)

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        store = self.store
        if getattr(self._held, "value", False):
            return store.conn.execute(sql, params).fetchall()
        if not store.is_setup:
            store.setup()
        with store.lock:
            return store.conn.execute(sql, params).fetchall()

    def run(self, query: q.Query) -> Any:
        if isinstance(query, q.Forget):
            return self._forget(query.prefix)
        prefix = _text(query.namespace)
        if isinstance(query, q.Newest):
            rows = self._rows(
                "SELECT key, value FROM store INDEXED BY store_prefix_idx WHERE prefix = ? "
                "ORDER BY rowid DESC LIMIT ?",
                (prefix, query.limit),
            )
            return [q.Row(key, _value(value)) for key, value in rows]
        if isinstance(query, q.Oldest):
            rows = self._rows(
                "SELECT key, value FROM store INDEXED BY store_prefix_idx WHERE prefix = ? "
                "ORDER BY rowid",
                (prefix,),
            )
            return [q.Row(key, _value(value)) for key, value in rows]
        if isinstance(query, q.Count):
            ((n,),) = self._rows("SELECT count(*) FROM store WHERE prefix = ?", (prefix,))
            return int(n)
        if isinstance(query, q.Version):
            ((n, newest),) = self._rows(
                "SELECT count(*), (SELECT key FROM store INDEXED BY store_prefix_idx "
                "WHERE prefix = ?1 ORDER BY rowid DESC LIMIT 1) FROM store WHERE prefix = ?1",
                (prefix,),
            )
            return [int(n), newest]
        if isinstance(query, q.Vectors):
            if not query.keys:
                return {}
            marks = ",".join("?" * len(query.keys))
            where = f"prefix = ? AND field_name = ? AND key IN ({marks})"
            rows = self._rows(
                f"SELECT key, embedding FROM store_vectors WHERE {where}",  # noqa: S608
                (prefix, query.field, *query.keys),
            )
            return {key: _floats(blob) for key, blob in rows}
        return self._nearest(query, prefix)

    def _nearest(self, query: q.Nearest, prefix: str) -> list[q.Row]:
        """The nearest rows, by an exact scan of the cached matrix (`_sqlite_vectors`).

        Where the vector log cannot be created, by an exact scan of `store_vectors` in SQL.
        """
        if query.vector is None or query.limit <= 0:
            return []
        target = q.finite(query.vector)
        store = self.store
        if not store.is_setup:
            store.setup()
        metric = "l2" if q.distance_type(store) == "l2" else "cosine"
        held = getattr(self._held, "value", False)
        with contextlib.nullcontext() if held else store.lock:
            if not self._index.ensure():
                return self._nearest_scan(query, prefix, target)
            conn = store.conn
            conn.execute("BEGIN")
            try:
                hits = self._index.search(
                    prefix, query.field, target, query.limit, metric, query.ranking
                )
                values = _values_of(conn, prefix, [key for key, _ in hits])
            finally:
                conn.execute("COMMIT")
        return [
            q.Row(key, values[key], vector if query.with_vectors else None)
            for key, vector in hits
            if key in values
        ]

    def _nearest_scan(self, query: q.Nearest, prefix: str, target: Any) -> list[q.Row]:
        """`_nearest` by sqlite-vec's distance functions over every stored vector (linear)."""
        import sqlite_vec

        function = _DISTANCE.get(q.distance_type(self.store), "vec_distance_cosine")
        vector = "top.embedding" if query.with_vectors else "NULL"
        rows = self.store.conn.execute(
            "WITH top AS ("  # noqa: S608 - the function name comes from _DISTANCE
            f"SELECT key, embedding, {function}(embedding, ?1) AS d FROM store_vectors "
            "WHERE prefix = ?2 AND field_name = ?3 ORDER BY d LIMIT ?4) "
            f"SELECT top.key, s.value, {vector} FROM top "
            "JOIN store AS s ON s.prefix = ?2 AND s.key = top.key ORDER BY top.d, top.key",
            (sqlite_vec.serialize_float32(target), prefix, query.field, query.limit),
        ).fetchall()
        return [
            q.Row(key, _value(value), None if blob is None else _floats(blob))
            for key, value, blob in rows
        ]

    def _forget(self, prefix: tuple[str, ...]) -> int:
        """Delete the subtree in one write transaction: all of it, or (on error) none of it."""
        store = self.store
        if not store.is_setup:
            store.setup()
        text = _text(prefix)
        where = "prefix = ? OR prefix GLOB ?"
        params = (text, glob_literal(text) + ".*")
        with store.lock:
            conn = store.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                has_vectors = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_vectors'"
                ).fetchone()
                if has_vectors:
                    # Also when the connection does not enforce foreign keys (no cascade).
                    conn.execute(f"DELETE FROM store_vectors WHERE {where}", params)  # noqa: S608
                removed = conn.execute(f"DELETE FROM store WHERE {where}", params).rowcount  # noqa: S608
                if has_vectors:
                    self._index.forget(where, params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return int(removed)

    def scrub(self, prefix: tuple[str, ...]) -> None:
        """Fold the WAL into the file and truncate it: deleted rows' old page images go too."""
        del prefix
        with self.store.lock:
            self.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
