"""`PostgresEngine`: ordered and vector reads in SQL on LangGraph's `PostgresStore` tables.

Order is `created_at` (set by PostgreSQL when a row is first inserted; an upsert keeps it), then
the example's own `created_at` stamp (rows of one transaction share the first), then the key.
The engine adds one index for it, `store_prefix_created_at_key_idx ON store (prefix, created_at,
(value ->> 'created_at'), key)` (created once, concurrently, if missing), so the newest `k` of a
user are an O(k) index walk.

`Nearest` on `store_vectors` (pgvector): a user with at most `EXACT_SEARCH_MAX` vectors gets an
exact scan of their own rows (found through the primary key); a larger one gets pgvector's ANN index
(the store's `ann_index_config`: HNSW by default, or IVFFlat, searched with `ivfflat_probes` of its
lists) with iterative scans, so that the filter on the user cannot starve the result: approximate
and sub-linear. Were that to return fewer than asked, the exact scan answers instead. The HNSW index
holds every user's vectors, so its filtered scan costs about its unfiltered cost divided by the
user's share of the table (EXPLAIN ANALYZE on bench/memory_select.py's database: a 10k-vector user
in a 114k-vector table 24 ms, against 6 ms for the exact scan of those 10k; the 100k user 3 ms
against 100 ms). So a user the planner's statistics show to hold n of the table's N vectors gets the
exact scan while n^2 <= `HNSW_EXACT_RATIO` * N (its cost n * c_exact below c_hnsw * N / n); a user
absent from the statistics gets HNSW. The search and its settings go in one pipelined round trip. A
user's count (up to `EXACT_SEARCH_MAX + 1`) and estimate are remembered for `ESTIMATE_TTL_S`, so a
repeated search is one round trip; `diverse`'s candidate pool (`Nearest.pool`) asks HNSW with
`POOL_EF_SEARCH`; `VectorSearch(mode="exact")` always takes the exact scan.

With deferred indexing (`defer_indexing`, module `_pg_pending`) vectors wait in a table of their
own before they reach `store_vectors`; once that table exists every search and vector read also
scans it (exactly), and writes keep one vector per example field across the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import threading
import time
import weakref
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import orjson
import psycopg
from langgraph.store.base import PutOp
from psycopg.rows import dict_row

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.memory import _engines as q
from langchain_fspo.memory._pg_async import AsyncConnections
from langchain_fspo.memory._pg_pending import (
    CREATE_PENDING,
    PENDING_TABLE,
    PendingMover,
    VectorRow,
    pending_upsert,
    without_vectors,
)

if TYPE_CHECKING:
    from langgraph.store.base import Op, Result
    from langgraph.store.postgres import PostgresStore
    from psycopg import AsyncCursor, Connection, Cursor

__all__ = [
    "EXACT_SEARCH_MAX",
    "HNSW_EXACT_RATIO",
    "IVFFLAT_DEFAULT_LISTS",
    "ORDER_INDEX",
    "POOL_EF_SEARCH",
    "PostgresEngine",
    "ivfflat_probes",
]

logger = logging.getLogger(__name__)

_V = TypeVar("_V")

EXACT_SEARCH_MAX = 2_000
"""Users with at most this many vectors get an exact nearest-neighbour scan."""

ESTIMATE_TTL_S = 60.0
"""How long a user's count estimate from the planner's statistics is reused (ANALYZE changes it
seldom; a stale one only picks the slower of two correct searches)."""

POOL_EF_SEARCH = 40
"""`hnsw.ef_search` for a candidate pool (`Nearest.pool`: `diverse`'s 32), pgvector's default
(a plain search asks twice its limit). MMR weighs every candidate again: on
bench/memory_select.py's 100k-vector user the 8 picks' mean cosine to the query is 0.751
against 0.752 from an exact pool (bench/results/memory_select.md)."""

IVFFLAT_DEFAULT_LISTS = 100
"""pgvector's `lists` when the index config names none."""

HNSW_EXACT_RATIO = 4_000
"""An unfiltered HNSW search costs about as much as an exact scan of this many vectors (pgvector
0.8.2, 384 dims, measured: about 2.5 ms against 0.6 us per vector)."""

_SETTINGS = (
    "SELECT set_config('{index}.iterative_scan', 'relaxed_order', true), "
    "set_config('{index}.{effort}', %s, true)"
)
ORDER_INDEX = "store_prefix_created_at_key_idx"
_ORDER = "created_at {d}, (value ->> 'created_at') {d}, key {d}"
_NEWEST_FIRST = _ORDER.format(d="DESC")
_OLDEST_FIRST = _ORDER.format(d="ASC")
_OPERATOR = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
PENDING_RECHECK_S = 60.0
"""How often an indexed store without the pending vector table looks for it again (another
process may turn deferred indexing on; until this one sees the table, its searches miss the
vectors still pending there, and nothing else)."""


@dataclasses.dataclass
class _Schema:
    """What this process knows of a store's schema (after `_ensure_schema`)."""

    pending: bool = False
    """Whether the pending vector table exists (searches read it; writes keep it in step)."""
    checked: float = 0.0
    """When `pending` was last looked up (`time.monotonic`)."""

    def stale(self, indexed: bool) -> bool:
        return indexed and not self.pending and time.monotonic() - self.checked >= PENDING_RECHECK_S


_schemas: weakref.WeakKeyDictionary[Any, _Schema] = weakref.WeakKeyDictionary()
_ensure_lock = threading.Lock()


def _text(namespace: tuple[str, ...]) -> str:
    return ".".join(namespace)


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _value(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    value: dict[str, Any] = orjson.loads(raw)
    return value


LITERAL_DIGITS = 9
"""Significant digits of a vector's largest component in `_vector_literal` (float32 holds about
7.2, so pgvector stores the value a full-precision literal gives, to within one float32 step)."""


_FLOAT64_MAX_POWER = 300  # 10.0 ** 309 overflows


def _vector_literal(vector: Any) -> str:
    """Pgvector's text form `[x,y,...]` (sent as text: far cheaper than a float8[] parameter).

    Each component is written as an integer times one power of ten (`6385672e-9`): formatting
    integers takes a third of the time of `repr` of floats, and the text is 40 % shorter
    (about 50 us and 4.8 kB for 384 dimensions, against 160 us and 8 kB).

    >>> _vector_literal([0.5, -0.25, 0.0])
    '[500000000e-9,-250000000e-9,0e-9]'
    >>> _vector_literal([1500.0, 2.0])
    '[150000000e-5,200000e-5]'
    >>> _vector_literal([0.0, 0.0])
    '[0,0]'
    """
    import numpy as np

    values = q.finite(vector)
    top = float(np.max(np.abs(values))) if values.size else 0.0
    if top == 0.0:
        return "[" + ",".join(["0"] * values.size) + "]"
    exponent = LITERAL_DIGITS - math.ceil(math.log10(top))
    if abs(exponent) >= _FLOAT64_MAX_POWER:  # no such power of ten: the slow, exact form
        return "[" + ",".join(map(repr, values.tolist())) + "]"
    scaled = np.rint(values * 10.0**exponent).astype(np.int64).tolist()
    suffix = f"e{-exponent}"
    return "[" + (suffix + ",").join(map(str, scaled)) + suffix + "]"


def _vector_from_binary(data: bytes) -> Any:
    """A vector in pgvector's binary output (two int16 headers, then big-endian floats).

    `vector` sends float4, `halfvec` float2: told apart by the length. Parsing the text form
    instead costs about 0.25 ms per 384-dim vector (8 ms for `diverse`'s 32 candidates).
    """
    import numpy as np

    dims = int.from_bytes(data[:2], "big")
    dtype = ">f4" if len(data) == 4 + 4 * dims else ">f2"
    return np.frombuffer(data, dtype=dtype, count=dims, offset=4).astype(np.float32)


class _Sql(NamedTuple):
    """Statements to run in one transaction (one alone: autocommit).

    Answered with the last statement's rows, or its row count when it returns none.
    """

    statements: tuple[tuple[str, Any], ...]
    binary: bool = False
    """Ask for binary results (vectors come as bytes: `_vector_from_binary`)."""


_Steps = Generator[_Sql, Any, Any]


class PostgresEngine:
    """Answers queries with SQL on a `PostgresStore`'s database (module docstring)."""

    vector_search = True

    def __init__(self, store: PostgresStore) -> None:
        from psycopg_pool import ConnectionPool

        self.store = store
        pool = store.conn if isinstance(store.conn, ConnectionPool) else None
        # Async needs its own connections, opened from the pool's settings: a store on a
        # single connection (whose password psycopg no longer shows) runs async in a thread.
        conninfo = pool.conninfo if pool is not None else None
        self._async = (
            AsyncConnections(conninfo, pool.max_size)
            if pool is not None and isinstance(conninfo, str)
            else None
        )
        self.async_mode: q.AsyncMode = "native" if self._async else "thread"
        self._estimates = _Recent[tuple[float | None, float | None]]()
        """Per prefix: the planner's estimates of its and the table's vector counts."""
        self._counts = _Recent[int]()
        """Per prefix: its vector count, up to `EXACT_SEARCH_MAX + 1`."""
        self._mover: PendingMover | None = None
        """Set by `defer_indexing`: writes go to the pending table, this moves them."""

    def batch(self, ops: list[Op]) -> list[Result]:
        """The store's `batch`; writes to an indexed store as one pipelined transaction."""
        if not self._own_write(ops):
            return self.store.batch(ops)
        self._ensure_schema()
        queries, request = self._put_queries(ops)
        if request is not None:
            embed = self._embeddings()
            queries += self._vector_writes(request, embed.embed_documents(_texts(request)))
        sql, params = _one_message(queries)
        with self._connection() as conn, psycopg.ClientCursor(conn) as cur:
            cur.execute(sql, params)
        if request is not None and self._mover is not None:
            self._mover.wake()
        return [None] * len(ops)

    async def abatch(self, ops: list[Op]) -> list[Result]:
        """Async `batch` (on this loop's connections when the store has a pool)."""
        if self._async is None or not self._own_write(ops):
            return await self.store.abatch(ops)
        if self._schema_stale():
            await asyncio.to_thread(self._ensure_schema)
        queries, request = self._put_queries(ops)
        if request is not None:
            embed = self._embeddings()
            vectors = await embed.aembed_documents(_texts(request))
            queries += self._vector_writes(request, vectors)
        sql, params = _one_message(queries)
        async with self._async.connection() as conn, psycopg.AsyncClientCursor(conn) as cur:
            await cur.execute(sql, params)
        if request is not None and self._mover is not None:
            self._mover.wake()
        return [None] * len(ops)

    def _vector_writes(self, request: Any, vectors: list[list[float]]) -> list[tuple[str, Any]]:
        """The statements that write `request`'s vectors (`_pg_pending` explains the order)."""
        rows = _vector_rows(request, vectors)
        if self._mover is not None:  # deferred: pending, then out of the indexed table
            return [pending_upsert(rows), without_vectors("store_vectors", rows)]
        direct = (request[0], [v for row in rows for v in row])
        if not self._has_pending():
            return [direct]
        return [without_vectors(PENDING_TABLE, rows), direct]

    def defer_indexing(self) -> PendingMover:
        """Write vectors to the pending table from now on, moved in the background (`_pg_pending`).

        Returns the mover: close it before the store's pool.
        """
        from psycopg_pool import ConnectionPool

        if not (self.store.index_config and isinstance(self.store.conn, ConnectionPool)):
            msg = (
                "Deferred indexing needs a PostgresStore with an embedding index on a "
                "connection pool: PreferenceMemory.postgres(url, index=..., defer_indexing=True)."
            )
            raise MemoryConfigError(msg)
        self._ensure_schema()
        try:
            with self._connection() as conn:
                for statement in CREATE_PENDING:  # a concurrent engine may create either first
                    with contextlib.suppress(psycopg.errors.UniqueViolation):
                        conn.execute(statement)
        except psycopg.Error as e:
            msg = (
                f"Deferred indexing needs the table {PENDING_TABLE}, which could not be created "
                f"({e}); create it as the store's owner, or drop defer_indexing=True."
            )
            raise MemoryConfigError(msg) from e
        _schemas[self.store].pending = True
        self._mover = PendingMover(self.store.conn)
        self._mover.wake()  # vectors a crashed writer left pending
        return self._mover

    def _own_write(self, ops: list[Op]) -> bool:
        """Whether `ops` are puts to a store with an embedding index (written by `batch`)."""
        return (
            bool(ops)
            and all(isinstance(op, PutOp) for op in ops)
            and bool(self.store.index_config)
            and self.store.embeddings is not None
        )

    def _embeddings(self) -> Any:
        return self.store.embeddings

    def _put_queries(self, ops: list[Op]) -> tuple[list[tuple[str, Any]], Any]:
        """The store's own statements for `ops` (its semantics: upserts, TTL, index paths)."""
        puts = [(i, op) for i, op in enumerate(ops) if isinstance(op, PutOp)]
        queries, request = self.store._prepare_batch_PUT_queries(puts)  # noqa: SLF001
        return list(queries), request

    def inline(self, step: object) -> bool:
        del step
        return False

    def run_locked(self, query: q.Query) -> Any:
        return self.run(query)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection[Any]]:
        """A connection of the store: from its pool, or its only one (under its lock)."""
        from psycopg_pool import ConnectionPool

        conn = self.store.conn
        if isinstance(conn, ConnectionPool):
            with conn.connection() as pooled:
                yield pooled
        else:
            with self.store.lock:
                yield conn

    def run(self, query: q.Query) -> Any:
        """Answer `query` on the store's connections."""
        self._ensure_schema()
        steps = self._steps(query)
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            answer: Any = None
            try:
                while True:
                    sql = steps.send(answer)
                    if len(sql.statements) == 1:
                        answer = _result(cur, *sql.statements[0], binary=sql.binary)
                        continue
                    # One round trip: BEGIN, the statements and COMMIT pipelined.
                    with conn.pipeline(), conn.transaction():
                        for text, params in sql.statements[:-1]:
                            conn.execute(text, params, prepare=False)
                        last, params = sql.statements[-1]
                        cur.execute(last, params, prepare=False, binary=sql.binary)
                    answer = cur.fetchall() if cur.description is not None else cur.rowcount
            except StopIteration as stop:
                return stop.value

    async def arun(self, query: q.Query) -> Any:
        """Answer `query` on asyncio connections (the loop waits on the socket, no thread)."""
        assert self._async is not None  # noqa: S101 - only "native" engines are asked
        if self._schema_stale():
            await asyncio.to_thread(self._ensure_schema)
        steps = self._steps(query)
        async with self._async.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            answer: Any = None
            try:
                while True:
                    sql = steps.send(answer)
                    if len(sql.statements) == 1:
                        answer = await _aresult(cur, *sql.statements[0], binary=sql.binary)
                        continue
                    async with conn.pipeline(), conn.transaction():  # one round trip
                        for text, params in sql.statements[:-1]:
                            await conn.execute(text, params, prepare=False)
                        last, params = sql.statements[-1]
                        await cur.execute(last, params, prepare=False, binary=sql.binary)
                    answer = await cur.fetchall() if cur.description is not None else cur.rowcount
            except StopIteration as stop:
                return stop.value

    async def aclose(self) -> None:
        """Close this loop's async connections."""
        if self._async is not None:
            await self._async.aclose()

    def _schema_stale(self) -> bool:
        schema = _schemas.get(self.store)
        return schema is None or schema.stale(bool(self.store.index_config))

    def _has_pending(self) -> bool:
        schema = _schemas.get(self.store)
        return schema is not None and schema.pending

    def _ensure_schema(self) -> None:
        """Check the store's schema: once, the ordering index; while absent, the pending table.

        An indexed store looks for the pending table again every `PENDING_RECHECK_S`.
        """
        if not self._schema_stale():
            return
        with _ensure_lock:
            schema = _schemas.get(self.store)
            if schema is None:
                self._ensure_order_index()
                schema = _schemas[self.store] = _Schema()
            if schema.stale(bool(self.store.index_config)):
                schema.pending = self._pending_table_exists()
                schema.checked = time.monotonic()

    def _ensure_order_index(self) -> None:
        """Create the ordering index (no-op if present)."""
        try:
            with self._connection() as conn:
                # The index of this store's table (`store` as the search path finds it),
                # not one of that name on a `store` in another schema.
                exists = conn.execute(
                    "SELECT 1 FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid "
                    "WHERE x.indrelid = 'store'::regclass AND i.relname = %s",
                    (ORDER_INDEX,),
                ).fetchone()
                if not exists:
                    conn.execute(
                        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {ORDER_INDEX} "
                        "ON store (prefix, created_at, (value ->> 'created_at'), key)"
                    )
        except psycopg.Error:  # a concurrent creator, or no rights: reads stay correct
            logger.warning("Could not create index %s; reads by age scan.", ORDER_INDEX)

    def _pending_table_exists(self) -> bool:
        try:
            with self._connection() as conn:
                found = conn.execute("SELECT 1 WHERE to_regclass(%s) IS NOT NULL", (PENDING_TABLE,))
                return found.fetchone() is not None
        except psycopg.Error:
            return False

    def _steps(self, query: q.Query) -> _Steps:
        """The SQL of `query`, step by step; returns its answer."""
        if isinstance(query, q.Forget):
            text = _text(query.prefix)
            self._estimates.drop(text)
            self._counts.drop(text)
            removed = yield _one(
                "DELETE FROM store WHERE prefix = %s OR prefix LIKE %s ESCAPE '\\'",
                (text, _like_literal(text) + ".%"),
            )
            return int(removed)
        prefix = _text(query.namespace)
        if isinstance(query, q.Newest | q.Oldest):
            order = _NEWEST_FIRST if isinstance(query, q.Newest) else _OLDEST_FIRST
            limit = query.limit if isinstance(query, q.Newest) else None
            rows = yield _one(
                f"SELECT key, value::text AS value FROM store WHERE prefix = %s "  # noqa: S608
                f"ORDER BY {order} LIMIT %s",
                (prefix, limit),
            )
            return [q.Row(r["key"], _value(r["value"])) for r in rows]
        if isinstance(query, q.Count):
            (row,) = yield _one("SELECT count(*) AS n FROM store WHERE prefix = %s", (prefix,))
            return int(row["n"])
        if isinstance(query, q.Version):
            newest = f"SELECT key FROM store WHERE prefix = %(p)s ORDER BY {_NEWEST_FIRST} LIMIT 1"  # noqa: S608
            count = "SELECT count(*) FROM store WHERE prefix = %(p)s"
            (row,) = yield _one(f"SELECT ({count}) AS n, ({newest}) AS newest", {"p": prefix})
            return [int(row["n"]), row["newest"]]
        if isinstance(query, q.Vectors):
            tables = self._vector_tables()
            rows = yield _one(
                " UNION ALL ".join(
                    f"SELECT key, embedding AS vector FROM {t} "  # noqa: S608
                    "WHERE prefix = %(p)s AND field_name = %(f)s AND key = ANY(%(k)s)"
                    for t in tables
                ),
                {"p": prefix, "f": query.field, "k": list(query.keys)},
                binary=True,
            )
            return {r["key"]: _vector_from_binary(r["vector"]) for r in rows}
        return (yield from self._nearest(query, prefix))

    def _vector_tables(self) -> tuple[str, ...]:
        """The tables holding this store's vectors: `store_vectors` and, if made, the pending."""
        return ("store_vectors", PENDING_TABLE) if self._has_pending() else ("store_vectors",)

    def _ann_config(self) -> dict[str, Any]:
        """The store's `ann_index_config` (empty: LangGraph's default, HNSW over `vector`)."""
        return dict((self.store.index_config or {}).get("ann_index_config") or {})

    def _vector_cast(self) -> str:
        kind = self._ann_config().get("vector_type", "vector")
        return "halfvec" if kind == "halfvec" else "vector"

    def _estimate(self, prefix: str) -> _Steps:
        """The planner's estimates of `prefix`'s and the table's vector counts (`_ESTIMATE`)."""
        cached = self._estimates.get(prefix)
        if cached is not None:
            return cached
        (row,) = yield _one(_ESTIMATE, (prefix,))
        estimate = (row["estimate"], row["total"])
        self._estimates.put(prefix, estimate)
        return estimate

    def _nearest(self, query: q.Nearest, prefix: str) -> _Steps:
        if query.vector is None or query.limit <= 0:
            return []
        op = _OPERATOR[q.distance_type(self.store)]
        params = {
            "p": prefix,
            "f": query.field,
            "q": _vector_literal(query.vector),
            "k": query.limit,
            "cap": EXACT_SEARCH_MAX + 1,
        }
        target = f"%(q)s::text::{self._vector_cast()}"
        vector = "top.embedding" if query.with_vectors else "NULL"
        select = (
            f"SELECT s.key, s.value::text AS value, {vector} AS vector "  # noqa: S608
            "FROM ({inner}) AS top JOIN store AS s ON s.prefix = %(p)s AND s.key = top.key "
            "ORDER BY top.d, top.key"
        )
        mine = "WHERE prefix = %(p)s AND field_name = %(f)s"
        where = f"FROM store_vectors {mine}"
        # `+ 0` keeps the planner off the ANN index: this scan is exact.
        scans = [
            f"SELECT key, embedding, (embedding {op} {target}) + 0 AS d FROM {t} {mine}"  # noqa: S608
            for t in self._vector_tables()
        ]
        exact = select.format(inner=" UNION ALL ".join(scans) + " ORDER BY d LIMIT %(k)s")
        ann = (
            f"SELECT key, embedding, embedding {op} {target} AS d {where} "
            f"ORDER BY embedding {op} {target} LIMIT %(k)s"
        )
        if len(scans) > 1:  # the pending vectors, exactly, beside the index's
            ann = f"({ann}) UNION ALL ({scans[1]} ORDER BY d LIMIT %(k)s) ORDER BY d LIMIT %(k)s"
        approximate = select.format(inner=ann)
        if getattr(query.search, "mode", "auto") == "exact":  # VectorSearch(mode="exact")
            logger.debug("q.Nearest: exact scan of the vectors of %s (mode 'exact').", prefix)
            return _rows((yield _one(exact, params, binary=True)))
        count = f"SELECT count(*) AS n FROM (SELECT 1 {where} LIMIT %(cap)s) AS mine"  # noqa: S608
        # A count remembered from an earlier search saves this round trip; one gone stale
        # still gives a correct search (the exact scan for any size; the index, with the exact
        # scan where it returns too few).
        size = self._counts.get(prefix)
        if size is None:
            (row,) = yield _one(count, params)
            size = int(row["n"])
            self._counts.put(prefix, size)
        estimate: tuple[float | None, float | None] = (None, None)
        if size > EXACT_SEARCH_MAX:
            estimate = yield from self._estimate(prefix)
        rows: list[Any] = []
        if _approximate(size, *estimate):
            settings = self._search_settings(query, prefix)
            rows = yield _Sql((settings, (approximate, params)), binary=True)
        if len(rows) < query.limit:
            logger.debug("q.Nearest: exact scan of the vectors of %s.", prefix)
            rows = yield _one(exact, params, binary=True)
        return _rows(rows)

    def _search_settings(self, query: q.Nearest, prefix: str) -> tuple[str, tuple[str, ...]]:
        """The statement that sets the store's ANN index's search effort for this transaction.

        HNSW: `ef_search` twice the limit (at least 40; `POOL_EF_SEARCH` for a pool). IVFFlat:
        `ivfflat_probes` of its lists. Both with iterative scans, so the filter on the user
        cannot starve the result.
        """
        ann = self._ann_config()
        kind = "IVFFlat" if ann.get("kind") == "ivfflat" else "HNSW"
        logger.debug("q.Nearest: %s index with iterative scan for %s.", kind, prefix)
        if kind == "IVFFlat":
            lists = int(ann.get("lists") or ann.get("nlist") or IVFFLAT_DEFAULT_LISTS)
            return _SETTINGS.format(index="ivfflat", effort="probes"), (str(ivfflat_probes(lists)),)
        effort = POOL_EF_SEARCH if query.pool else min(max(40, 2 * query.limit), 1000)
        return _SETTINGS.format(index="hnsw", effort="ef_search"), (str(effort),)

    def scrub(self, prefix: tuple[str, ...]) -> None:
        """Nothing to scrub: PostgreSQL's VACUUM reclaims the deleted rows' space."""
        del prefix


_ESTIMATES_MAX = 10_000


class _Recent(Generic[_V]):
    """Values per prefix, each good for `ESTIMATE_TTL_S`; past `_ESTIMATES_MAX`, all dropped."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[float, _V]] = {}
        """Per prefix: when the value was put, and the value."""

    def get(self, prefix: str) -> _V | None:
        """The value of `prefix` if put within the TTL, else None."""
        cached = self.held.get(prefix)
        if cached is None or time.monotonic() - cached[0] >= ESTIMATE_TTL_S:
            return None
        return cached[1]

    def put(self, prefix: str, value: _V) -> None:
        if len(self.held) >= _ESTIMATES_MAX:
            self.held.clear()
        self.held[prefix] = (time.monotonic(), value)

    def drop(self, root: str) -> None:
        """Forget `root` and the prefixes under it (`forget` of a user or namespace)."""
        for prefix in list(self.held):  # a copy: other threads may add meanwhile
            if prefix == root or prefix.startswith(root + "."):
                self.held.pop(prefix, None)


_ESTIMATE = (
    "SELECT (SELECT u.f * c.reltuples FROM pg_class AS c, pg_stats AS s, "
    "unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS u(v, f) "
    "WHERE c.oid = 'store_vectors'::regclass AND s.schemaname = current_schema() "
    "AND s.tablename = 'store_vectors' AND s.attname = 'prefix' AND u.v = %s) AS estimate, "
    "(SELECT reltuples FROM pg_class WHERE oid = 'store_vectors'::regclass) AS total"
)
"""The planner's estimate of a prefix's vector count (None: not among the most common prefixes)
and of the table's (planning the `pg_stats` view alone takes about 0.5 ms: asked only for users
above `EXACT_SEARCH_MAX`, and cached for `ESTIMATE_TTL_S`)."""


def _rows(rows: list[Any]) -> list[q.Row]:
    """Engine rows from a nearest query's result (vectors in pgvector's binary format).

    A key appears once, at its nearest: only a write that bypassed the engine (LangGraph's own
    `put` of a key with a pending vector) can leave it in both vector tables.
    """
    found: dict[str, q.Row] = {}
    for r in rows:
        if r["key"] not in found:
            vector = r["vector"] and _vector_from_binary(r["vector"])
            found[r["key"]] = q.Row(r["key"], _value(r["value"]), vector)
    return list(found.values())


def ivfflat_probes(lists: int) -> int:
    """How many of an IVFFlat index's `lists` a search reads: twice pgvector's sqrt(lists).

    On bench/memory_select.py's database (340 lists, a 100k-vector user) 40 probes give
    recall@8 0.957 and 20 give 0.869 (bench/results/memory_pg_index_kinds.md). A search reads
    2 sqrt(lists) x rows / lists vectors: sub-linear while the lists grow with the table
    (pgvector suggests rows / 1000 lists up to 1M rows, sqrt(rows) above).

    >>> ivfflat_probes(340), ivfflat_probes(100), ivfflat_probes(1)
    (37, 20, 1)
    """
    return min(lists, math.ceil(2 * math.sqrt(lists)))


def _approximate(count: int, estimate: float | None, total: float | None) -> bool:
    """Whether a user's nearest search goes through the HNSW index (module docstring)."""
    if count <= EXACT_SEARCH_MAX:
        return False
    if estimate is None or total is None or total <= 0:
        return True
    return float(estimate) ** 2 > HNSW_EXACT_RATIO * float(total)


def _one_message(queries: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """`queries` as one multi-statement string, bound client side: one round trip.

    PostgreSQL runs the statements of one simple-query message as one transaction.
    """
    sql = ";\n".join(query for query, _ in queries)
    return sql, [value for _, params in queries for value in params]


def _texts(request: Any) -> list[str]:
    """The texts an embedding request of `_prepare_batch_PUT_queries` asks to embed."""
    return [str(row[-1]) for row in request[1]]


def _vector_rows(request: Any, vectors: list[list[float]]) -> list[VectorRow]:
    """`request`'s rows with `vectors` as pgvector text (cheaper to send than a list)."""
    return [
        (namespace, key, path, _vector_literal(vector))
        for (namespace, key, path, _), vector in zip(request[1], vectors, strict=True)
    ]


def _one(sql: str, params: Any, *, binary: bool = False) -> _Sql:
    return _Sql(((sql, params),), binary)


def _result(cur: Cursor[Any], sql: str, params: Any, *, binary: bool = False) -> Any:
    # Never a prepared statement: a generic plan cannot see how few rows one user has, and may
    # pick a scan of every user's vectors.
    cur.execute(sql, params, prepare=False, binary=binary)
    return cur.fetchall() if cur.description is not None else cur.rowcount


async def _aresult(cur: AsyncCursor[Any], sql: str, params: Any, *, binary: bool = False) -> Any:
    await cur.execute(sql, params, prepare=False, binary=binary)
    return await cur.fetchall() if cur.description is not None else cur.rowcount
