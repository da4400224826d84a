"""Exact nearest-neighbour search over a `SqliteStore`'s vectors, kept in sync across processes.

`SqliteStore` keeps one float32 BLOB per example and indexed field in `store_vectors`. Scanning
them in SQL costs a row visit per vector (242 ms for a 100k-example user), and sqlite-vec's
`vec0` tables were measured no better for this use (docs in bench/results/memory_select.md).
So each process keeps a user's vectors as a numpy matrix (`VectorMatrix`, one exact scan) and
follows the file's changes through a log the database itself writes:

- `fspo_vector_log (seq, prefix, key, field_name)`: three triggers on `store_vectors` (insert,
  update, delete) record which key of which namespace changed, in the writer's own transaction,
  whoever the writer is (this process, another one, a `SqliteStore` used directly); one row per
  key (a new change replaces the older one). Plain SQL: writers need no extension.
- `fspo_vector_meta (generation)`: bumped when the log cannot be trusted (it was just created or
  recreated) and by `forget`, which also deletes the user's log rows; a cache that sees another
  generation starts over.

A search reads, in one read transaction, the generation and the namespace's log rows newer
than its cache, re-reads only those keys' vectors, then scans the matrix (exact, or through
its coarse lists for a large user: `VectorSearch`; the lists follow the same in-place writes).
A namespace seen for the first time (or after a new generation) is read whole once. Caches
are per store object and bounded (`CACHE_BYTES`, least recently used first). The log and
triggers are created on first use and recreated when missing (checked whenever the schema
changes).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_fspo.memory._vector_matrix import VectorMatrix
from langchain_fspo.memory._vector_search import VectorSearch

if TYPE_CHECKING:
    from langgraph.store.sqlite import SqliteStore

__all__ = ["CACHE_BYTES", "LOG_TABLE", "META_TABLE", "SqliteVectorIndex", "vector_index"]

logger = logging.getLogger(__name__)

CACHE_BYTES = 512 * 1024 * 1024
"""Most bytes of cached matrices per store object (a 100k x 384 user takes about 154 MB)."""

LOG_TABLE = "fspo_vector_log"
META_TABLE = "fspo_vector_meta"
_TRIGGERS = ("fspo_vector_log_insert", "fspo_vector_log_update", "fspo_vector_log_delete")
_OBJECTS = (LOG_TABLE, META_TABLE, f"{LOG_TABLE}_key", f"{LOG_TABLE}_seq", *_TRIGGERS)
_KEYS_PER_QUERY = 500


_LOG_NEW = (
    "DELETE FROM fspo_vector_log WHERE prefix = NEW.prefix AND field_name = NEW.field_name "
    "AND key = NEW.key; INSERT INTO fspo_vector_log (prefix, key, field_name) "
    "VALUES (NEW.prefix, NEW.key, NEW.field_name);"
)
_LOG_OLD = _LOG_NEW.replace("NEW.", "OLD.")
_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS fspo_vector_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "prefix TEXT NOT NULL, key TEXT NOT NULL, field_name TEXT NOT NULL)"
    ),
    (
        "CREATE UNIQUE INDEX IF NOT EXISTS fspo_vector_log_key "
        "ON fspo_vector_log (prefix, field_name, key)"
    ),
    ("CREATE INDEX IF NOT EXISTS fspo_vector_log_seq ON fspo_vector_log (prefix, field_name, seq)"),
    (
        "CREATE TABLE IF NOT EXISTS fspo_vector_meta "
        "(id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL)"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS fspo_vector_log_insert AFTER INSERT ON store_vectors "
        f"BEGIN {_LOG_NEW} END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS fspo_vector_log_update AFTER UPDATE ON store_vectors "
        f"BEGIN {_LOG_OLD} {_LOG_NEW} END"
    ),
    (
        "CREATE TRIGGER IF NOT EXISTS fspo_vector_log_delete AFTER DELETE ON store_vectors "
        f"BEGIN {_LOG_OLD} END"
    ),
    "INSERT OR IGNORE INTO fspo_vector_meta (id, generation) VALUES (1, 0)",
    "UPDATE fspo_vector_meta SET generation = generation + 1",
)


class _Entry:
    """A cached matrix and the newest log position it reflects."""

    def __init__(self, matrix: VectorMatrix, seq: int) -> None:
        self.matrix = matrix
        self.seq = seq


class SqliteVectorIndex:
    """The cached matrices of one `SqliteStore` (see the module docstring).

    Every method is called with the store's lock held, on the store's connection.
    """

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        config: dict[str, Any] = dict(store.index_config or {})
        self.dims = int(config.get("dims") or 0)
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._generation: int | None = None
        self._bytes = 0
        self._schema_version: int | None = None
        self.available = self.dims > 0

    # ------------------------------------------------------------------ schema

    def ensure(self) -> bool:
        """Make sure the log, its triggers and the meta row exist; False if they cannot be."""
        if not self.available:
            return False
        conn = self.store.conn
        ((version,),) = conn.execute("PRAGMA schema_version").fetchall()
        if version == self._schema_version:
            return True
        marks = ",".join("?" * len(_OBJECTS))
        found = conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE name IN ({marks})",  # noqa: S608
            _OBJECTS,
        ).fetchone()[0]
        if found != len(_OBJECTS):
            try:
                self._create()
            except Exception:  # noqa: BLE001 - any driver's error (read-only file): scan instead
                logger.warning("No vector log in %r; relevant search scans.", self.store.conn)
                self.available = False
                return False
        ((version,),) = conn.execute("PRAGMA schema_version").fetchall()
        self._schema_version = version
        return True

    def _create(self) -> None:
        """Create (or complete) the log schema and start a new generation, atomically."""
        conn = self.store.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._clear()

    def forget(self, where: str, params: Sequence[Any]) -> None:
        """Inside `forget`'s transaction: drop the log rows of the deleted namespaces."""
        conn = self.store.conn
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (LOG_TABLE,)
        ).fetchone()
        if exists:
            conn.execute(f"DELETE FROM {LOG_TABLE} WHERE {where}", params)  # noqa: S608
            conn.execute(f"UPDATE {META_TABLE} SET generation = generation + 1")  # noqa: S608

    # ------------------------------------------------------------------ search

    def search(
        self,
        prefix: str,
        field: str,
        vector: Sequence[float] | np.ndarray,
        limit: int,
        metric: str,
        search: VectorSearch | None = None,
    ) -> list[tuple[str, np.ndarray]]:
        """The `limit` keys nearest `vector` with their vectors, best first.

        Call it in a read transaction, after `ensure`.
        """
        entry = self._current(prefix, field)
        matrix = entry.matrix
        before = matrix.nbytes
        rows = matrix.nearest(vector, limit, metric=metric, search=search)
        self._bytes += matrix.nbytes - before  # the coarse lists, built by a first search
        return [(matrix.keys[i], v) for i, v in zip(rows, matrix.vectors(rows), strict=True)]

    def _current(self, prefix: str, field: str) -> _Entry:
        conn = self.store.conn
        (generation,) = conn.execute(f"SELECT generation FROM {META_TABLE}").fetchone()  # noqa: S608
        if generation != self._generation:
            self._clear()
            self._generation = generation
        cache_key = (prefix, field)
        entry = self._entries.get(cache_key)
        if entry is None:
            entry = self._load(prefix, field)
            self._entries[cache_key] = entry
            self._bytes += entry.matrix.nbytes
        else:
            before = entry.matrix.nbytes
            self._follow(entry, prefix, field)
            self._bytes += entry.matrix.nbytes - before
            self._entries.move_to_end(cache_key)
        while self._bytes > CACHE_BYTES and len(self._entries) > 1:
            _, oldest = self._entries.popitem(last=False)
            self._bytes -= oldest.matrix.nbytes
        return entry

    def _clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _load(self, prefix: str, field: str) -> _Entry:
        conn = self.store.conn
        (seq,) = conn.execute(f"SELECT coalesce(max(seq), 0) FROM {LOG_TABLE}").fetchone()  # noqa: S608
        rows = conn.execute(
            "SELECT key, embedding FROM store_vectors WHERE prefix = ? AND field_name = ?",
            (prefix, field),
        ).fetchall()
        size = 4 * self.dims
        rows = [(key, blob) for key, blob in rows if blob is not None and len(blob) == size]
        vectors = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32)
        matrix = VectorMatrix.build(
            [key for key, _ in rows], vectors.reshape(-1, self.dims), self.dims
        )
        return _Entry(matrix, int(seq))

    def _follow(self, entry: _Entry, prefix: str, field: str) -> None:
        """Apply the namespace's log rows newer than `entry` (re-read those keys' vectors)."""
        conn = self.store.conn
        changes = conn.execute(
            f"SELECT seq, key FROM {LOG_TABLE} WHERE prefix = ? AND field_name = ? AND seq > ?",  # noqa: S608
            (prefix, field, entry.seq),
        ).fetchall()
        if not changes:
            return
        keys = list(dict.fromkeys(key for _, key in changes))
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = keys[start : start + _KEYS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            found.update(
                conn.execute(
                    "SELECT key, embedding FROM store_vectors "  # noqa: S608
                    f"WHERE prefix = ? AND field_name = ? AND key IN ({marks})",
                    (prefix, field, *chunk),
                ).fetchall()
            )
        for key in keys:
            blob = found.get(key)
            if blob is None:
                entry.matrix.remove(key)
            else:
                entry.matrix.upsert(key, np.frombuffer(blob, dtype=np.float32))
        entry.seq = max(entry.seq, *(seq for seq, _ in changes))


_indexes: weakref.WeakKeyDictionary[Any, SqliteVectorIndex] = weakref.WeakKeyDictionary()
_indexes_guard = threading.Lock()


def vector_index(store: SqliteStore) -> SqliteVectorIndex:
    """The one `SqliteVectorIndex` of `store`, shared by every engine on it."""
    with _indexes_guard:
        index = _indexes.get(store)
        if index is None:
            index = _indexes[store] = SqliteVectorIndex(store)
        return index
