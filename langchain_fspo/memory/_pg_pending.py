"""Deferred vector indexing on PostgreSQL: an `add` without the ANN index's insert on its path.

The insert into pgvector's HNSW graph is most of a PostgreSQL `add`
(bench/results/memory_pg_add_fsync_off.md). With `PreferenceMemory.postgres(...,
defer_indexing=True)` an `add` writes its vector to `PENDING_TABLE` (the columns of LangGraph's
`store_vectors`, no ANN index) in the transaction that writes the example, and a thread of the
writing process (`PendingMover`) moves pending vectors into `store_vectors`, so into the index,
`MOVE_BATCH` at a time. Searches read both tables (the pending rows by an exact scan): an
acknowledged example is never missing from `relevant` or `diverse`. `close()` lets the mover
finish the backlog (for up to 10 s); a crash leaves rows pending, where searches still find them,
and the next deferring memory on the database moves them when it starts.

At every commit an example's field has its vector in at most one of the two tables. The
statements' order keeps it without deadlocks (each waits at most for the other's commit):

- a deferred write: the example row (LangGraph's upsert), the pending upsert, then the delete of
  the field's vector from `store_vectors`;
- a direct write (an engine without deferral): the example row, the delete of the pending row,
  then LangGraph's `store_vectors` upsert;
- the mover, one statement: locks up to `MOVE_BATCH` pending rows and their examples' rows
  (`FOR KEY SHARE`; both `SKIP LOCKED`: rows a writer or a delete holds wait for the next
  batch), deletes them from the pending table and upserts them into `store_vectors`.

Deleting an example (or `forget`) cascades to its pending row as it does to `store_vectors`.
LangGraph's own `PostgresStore.search` reads `store_vectors` alone: it sees a deferred vector
once it has been moved.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

__all__ = [
    "CREATE_PENDING",
    "MOVE_BATCH",
    "PENDING_TABLE",
    "PendingMover",
    "VectorRow",
    "move_pending",
    "pending_upsert",
    "retry_delay",
    "without_vectors",
]

logger = logging.getLogger(__name__)

PENDING_TABLE = "fspo_pending_vectors"

CREATE_PENDING = (
    (
        f"CREATE TABLE IF NOT EXISTS {PENDING_TABLE} (LIKE store_vectors INCLUDING DEFAULTS, "
        "PRIMARY KEY (prefix, key, field_name), "
        "FOREIGN KEY (prefix, key) REFERENCES store (prefix, key) ON DELETE CASCADE)"
    ),
    f"CREATE INDEX IF NOT EXISTS {PENDING_TABLE}_updated_at_idx ON {PENDING_TABLE} (updated_at)",
)
"""The pending table: `store_vectors`' columns (its vector type and dimensions), no ANN index;
ordered by age for the mover (without it each batch would sort the whole backlog: 110 ms a
batch of 8 at a 20k backlog, against 30 with it, ad hoc on bench/memory_select.py's database)."""

MOVE_BATCH = 8
"""Vectors moved per statement: small, so that a writer re-putting one of them waits little
(each costs an HNSW insert, about 4-5 ms at 100k vectors)."""

RETRY_S = 1.0
"""How long the mover waits after a first failed batch before it tries again."""

RETRY_MAX_S = 30.0
"""The longest wait between tries while batches keep failing (the database down, say)."""

VectorRow = tuple[str, str, str, str]
"""(prefix, key, field name, vector in pgvector's text form)."""

_MOVE = f"""
WITH batch AS (
    SELECT p.prefix, p.key, p.field_name FROM {PENDING_TABLE} AS p
    JOIN store AS s ON s.prefix = p.prefix AND s.key = p.key
    ORDER BY p.updated_at LIMIT %s
    FOR UPDATE OF p SKIP LOCKED FOR KEY SHARE OF s SKIP LOCKED
), moved AS (
    DELETE FROM {PENDING_TABLE} AS p USING batch AS b
    WHERE p.prefix = b.prefix AND p.key = b.key AND p.field_name = b.field_name
    RETURNING p.prefix, p.key, p.field_name, p.embedding, p.created_at
)
INSERT INTO store_vectors (prefix, key, field_name, embedding, created_at, updated_at)
SELECT prefix, key, field_name, embedding, created_at, clock_timestamp() FROM moved
ON CONFLICT (prefix, key, field_name) DO UPDATE
SET embedding = EXCLUDED.embedding, updated_at = EXCLUDED.updated_at
"""  # noqa: S608 - constant table name


def _triples(rows: list[VectorRow]) -> tuple[str, list[str]]:
    """`(prefix, key, field_name) IN (...)` for `rows`, and its parameters."""
    marks = ",".join(["(%s, %s, %s)"] * len(rows))
    return f"(prefix, key, field_name) IN ({marks})", [v for r in rows for v in r[:3]]


def pending_upsert(rows: list[VectorRow]) -> tuple[str, list[str]]:
    """The statement that writes `rows` to the pending table (a re-put replaces the vector)."""
    marks = ",".join(["(%s, %s, %s, %s, clock_timestamp(), clock_timestamp())"] * len(rows))
    sql = (
        f"INSERT INTO {PENDING_TABLE} "  # noqa: S608 - constant table name
        f"(prefix, key, field_name, embedding, created_at, updated_at) VALUES {marks} "
        "ON CONFLICT (prefix, key, field_name) DO UPDATE "
        "SET embedding = EXCLUDED.embedding, updated_at = EXCLUDED.updated_at"
    )
    return sql, [v for r in rows for v in r]


def without_vectors(table: str, rows: list[VectorRow]) -> tuple[str, list[str]]:
    """The statement that deletes the vectors of `rows`' fields from `table`."""
    where, params = _triples(rows)
    return f"DELETE FROM {table} WHERE {where}", params  # noqa: S608 - our table names


def retry_delay(failures: int) -> float:
    """Seconds to wait after `failures` failed batches in a row: doubling from `RETRY_S`, capped.

    Example:
        >>> [retry_delay(n) for n in (1, 2, 3, 6, 50)]
        [1.0, 2.0, 4.0, 30.0, 30.0]
    """
    return min(RETRY_MAX_S, RETRY_S * 2.0 ** min(failures - 1, 32))


def move_pending(pool: ConnectionPool[Any], batch: int = MOVE_BATCH) -> int:
    """Move up to `batch` pending vectors into `store_vectors`; how many moved."""
    with pool.connection() as conn:
        return int(conn.execute(_MOVE, (batch,)).rowcount)


class PendingMover:
    """A daemon thread that moves pending vectors whenever it is woken (after each write).

    `close` lets it finish the backlog for up to `timeout` seconds, then stops it between
    batches; what is left stays pending (searched) until a deferring memory moves it.
    """

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool
        self.moved = 0
        """Vectors this mover has moved (for tests and logs)."""
        self.failures = 0
        """Failed batches in a row (0 after a batch that worked)."""
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        """Set by `close`: drain, then stop (it also cuts a wait between failed tries short)."""
        self._closed = False
        """Stop after the batch in flight."""
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Ask for a pass over the pending table.

        Starts the thread on first use, and again if it is gone: a forked child holds none, and
        an unexpected error ends it (the vectors stay pending until the next pass).
        """
        with self._lock:
            if self.stopping:
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="fspo-pending-vectors", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            self.move_all()
            if self.stopping:
                return

    def move_all(self) -> int:
        """Move batches until none is left (or the mover is closed); how many moved."""
        total = 0
        while not self._closed:
            try:
                n = move_pending(self.pool)
            except psycopg.Error as e:  # the pool's closed and timeout errors too: retried
                if self.stopping:
                    break
                self.failures += 1
                delay = retry_delay(self.failures)
                logger.warning(
                    "Moving pending vectors failed (%s; %d in a row); retrying in %.0f s.",
                    e,
                    self.failures,
                    delay,
                )
                self._closing.wait(delay)  # `close` ends the wait: one more try, then stop
                self._wake.set()
                break
            self.failures = 0
            if n == 0:
                break
            total += n
            self.moved += n
        return total

    @property
    def stopping(self) -> bool:
        """Whether `close` was called (a failed batch is then not retried)."""
        return self._closing.is_set()

    def close(self, timeout: float = 10.0) -> None:
        """Finish the backlog for up to `timeout` seconds, then stop; idempotent."""
        with self._lock:
            self._closing.set()
            thread = self._thread
        self._wake.set()
        if thread is None:
            self._closed = True
            return
        thread.join(timeout)
        self._closed = True  # past the timeout: stop after the batch in flight
        thread.join()
