"""`PreferenceMemory`: every user's preference examples on a LangGraph `BaseStore`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import ExitStack
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from langgraph.store.base import BaseStore, Op, PutOp, Result
from langgraph.store.memory import InMemoryStore

from langchain_fspo.errors import InvalidExampleError, MemoryConfigError
from langchain_fspo.examples import PreferenceExample, validate_user_id
from langchain_fspo.memory import _plans as plans
from langchain_fspo.memory._layout import DEFAULT_ROOT, UserNamespaces, new_record_id
from langchain_fspo.memory._records import (
    CHOICES,
    Choice,
    ChoiceRecord,
    check_metadata,
    check_text,
)
from langchain_fspo.selection import DEFAULT_MMR_LAMBDA, STRATEGY_NAMES, Strategy

if TYPE_CHECKING:
    from langgraph.store.base import IndexConfig

__all__ = ["PreferenceMemory"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
# `PreferenceMemory.list` shadows the builtin inside the class body: annotate with these.
_Examples = list[PreferenceExample]
_Choices = list[ChoiceRecord]

_LOCK_STRIPES = 64
_DEFAULT_FETCH_K = 32


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


def _new_example(
    prompt: object, chosen: object, rejected: object, metadata: Mapping[str, Any]
) -> PreferenceExample:
    """Validate the fields of a new example and stamp it with a fresh id and time."""
    check_text("prompt", prompt)
    check_text("chosen", chosen)
    if rejected is not None:
        check_text("rejected", rejected)
    example = PreferenceExample.create(
        prompt=prompt, chosen=chosen, rejected=rejected, metadata=check_metadata(metadata)
    )
    record_id, created_at = new_record_id()
    return example.stamped(record_id, created_at)


def _check_record_id(record_id: object) -> str:
    if not isinstance(record_id, str) or not record_id:
        msg = (
            f"An example id must be a non-empty str, got {type(record_id).__name__} {record_id!r}."
        )
        raise InvalidExampleError(msg)
    return record_id


def _sqlite_driver(*, need_extensions: bool) -> Any:
    """The DB-API module to open SQLite with: the stdlib's, or pysqlite3 for extensions."""
    if not need_extensions or hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        return importlib.import_module("pysqlite3.dbapi2")
    except ImportError as e:
        msg = (
            "An embedding index on SQLite needs the sqlite-vec extension, and this Python's "
            "sqlite3 cannot load extensions. Install `langchain-fspo[sqlite-index]` "
            "(pysqlite3-binary), use a Python built with --enable-loadable-sqlite-extensions, "
            "or drop `index=`."
        )
        raise MemoryConfigError(msg) from e


def _check_k(k: object) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        msg = f"`k` must be a non-negative int, got {k!r}."
        raise MemoryConfigError(msg)
    return k


def _check_query(query: object) -> str | None:
    if query is not None and not isinstance(query, str):
        msg = f"`query` must be a str or None, got {type(query).__name__}."
        raise MemoryConfigError(msg)
    return query


class PreferenceMemory:
    """Per-user preference examples (the FSPO shots) on a LangGraph `BaseStore`.

    One store holds every user; each user's data sits in its own namespace subtree
    (`(*namespace, <encoded user id>, ...)`), so any string is a usable user id (e-mail
    addresses, dots, unicode). Every method has an async twin (`aadd`, `aselect`, ...).

    Stores:
        - `PreferenceMemory()`: in-process `InMemoryStore` (lost at exit).
        - `PreferenceMemory.sqlite(path)`: persistent, embedded, safe to share between threads.
        - `PreferenceMemory.postgres(conn_string)`: PostgreSQL (extra `langchain-fspo[postgres]`).
        - `PreferenceMemory(store=...)`: any LangGraph store you already run (call its `setup()`).

    Give the store an embedding index over `prompt` to enable `strategy="relevant"`:
    `index={"dims": 384, "embed": my_embeddings, "fields": ["prompt"]}`.

    Shot selection (`select`) returns examples oldest to newest, so a user's block renders
    identically from call to call. `recent` costs two small store round trips however many
    examples the user has (a per-user manifest keeps the newest ids).

    Example:
        >>> memory = PreferenceMemory()
        >>> ex = memory.add(
        ...     "ada@example.com", prompt="Explain DNS.", chosen="Short.", rejected="Long."
        ... )
        >>> [e.chosen for e in memory.select("ada@example.com", k=8)]
        ['Short.']
        >>> memory.forget("ada@example.com")
        2
        >>> memory.list("ada@example.com")
        []
    """

    def __init__(
        self,
        store: BaseStore | None = None,
        *,
        namespace: tuple[str, ...] = DEFAULT_ROOT,
        index_fields: Sequence[str] | None = ("prompt",),
    ) -> None:
        """Wrap `store` (default: a fresh `InMemoryStore`).

        Args:
            store: any LangGraph store, already set up.
            namespace: the prefix under which every user's subtree lives.
            index_fields: the example fields embedded when the store has an index (None: the
                store's configured fields).
        """
        if not isinstance(namespace, tuple) or not all(
            isinstance(label, str) and label and "." not in label for label in namespace
        ):
            msg = (
                f"`namespace` must be a tuple of non-empty strings without '.', got {namespace!r}."
            )
            raise MemoryConfigError(msg)
        self._store: BaseStore = store if store is not None else InMemoryStore()
        self._root = namespace
        self._index_fields = list(index_fields) if index_fields is not None else None
        self._user_locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        # InMemoryStore iterates its dicts without a lock: serialise calls into it.
        self._store_lock = threading.Lock() if isinstance(self._store, InMemoryStore) else None
        self._async_via_thread = False
        self._resources = ExitStack()

    # ----------------------------------------------------------------- construction

    @classmethod
    def sqlite(
        cls,
        path: str | PathLike[str],
        *,
        index: IndexConfig | None = None,
        namespace: tuple[str, ...] = DEFAULT_ROOT,
    ) -> PreferenceMemory:
        """A memory in the SQLite file at `path` (created, with its tables, if missing).

        The connection is shared by all threads (the store serialises access) and uses WAL
        journaling, so other processes can read while this one writes. Close it with `close()`
        or a `with` block. Foreign keys are switched on, so deleting an example deletes its
        vectors (bring your own `SqliteStore` connection? run `PRAGMA foreign_keys = ON` on it,
        or `forget` leaves the embeddings behind). An `index` needs `sqlite-vec` and a
        `sqlite3` that can load extensions: where Python's cannot, `pysqlite3-binary` is used
        (extra `langchain-fspo[sqlite-index]`).

        Example:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "prefs.db"
            >>> with PreferenceMemory.sqlite(path) as memory:
            ...     _ = memory.add("u1", prompt="Q?", chosen="A.")
            >>> with PreferenceMemory.sqlite(path) as memory:
            ...     [e.chosen for e in memory.list("u1")]
            ['A.']
        """
        from langgraph.store.sqlite import SqliteStore

        driver = _sqlite_driver(need_extensions=index is not None)
        conn = driver.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # store_vectors rows are deleted with their item by ON DELETE CASCADE, which SQLite
            # only enforces when foreign keys are on (off by default, per connection).
            conn.execute("PRAGMA foreign_keys = ON")
            store = SqliteStore(conn, index=index)
            store.setup()
        except BaseException:
            conn.close()
            raise
        memory = cls(store, namespace=namespace)
        memory._resources.callback(conn.close)
        return memory

    @classmethod
    def postgres(
        cls,
        conn_string: str,
        *,
        index: IndexConfig | None = None,
        namespace: tuple[str, ...] = DEFAULT_ROOT,
        max_connections: int = 8,
    ) -> PreferenceMemory:
        """A memory in PostgreSQL (runs the store's migrations; needs `[postgres]`).

        Uses a connection pool of up to `max_connections`; close it with `close()` or a `with`
        block. An `index` needs the `pgvector` extension in the database.

        Example:
            >>> memory = PreferenceMemory.postgres(
            ...     "postgresql://fspo:fspo@127.0.0.1:5432/fspo"
            ... )  # doctest: +SKIP
        """
        try:
            from langgraph.store.postgres import PostgresStore
        except ImportError as e:
            msg = (
                "PreferenceMemory.postgres needs langgraph-checkpoint-postgres and psycopg: "
                "pip install 'langchain-fspo[postgres]'"
            )
            raise ImportError(msg) from e
        resources = ExitStack()
        try:
            store = resources.enter_context(
                PostgresStore.from_conn_string(
                    conn_string,
                    pool_config={"min_size": 1, "max_size": max_connections},
                    index=index,  # type: ignore[arg-type]
                )
            )
            store.setup()
        except BaseException:
            resources.close()
            raise
        memory = cls(store, namespace=namespace)
        memory._resources.push(resources)
        return memory

    @property
    def store(self) -> BaseStore:
        """The underlying LangGraph store."""
        return self._store

    @property
    def has_index(self) -> bool:
        """Whether the store has an embedding index (needed by `strategy="relevant"`)."""
        return bool(getattr(self._store, "index_config", None)) and (
            getattr(self._store, "embeddings", None) is not None
        )

    def close(self) -> None:
        """Release the connections this memory opened (`sqlite`/`postgres`); idempotent."""
        self._resources.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def namespaces(self, user_id: str) -> UserNamespaces:
        """The store namespaces that hold `user_id`'s data (for inspection and tooling)."""
        return UserNamespaces.of(self._root, validate_user_id(user_id))

    # ----------------------------------------------------------------- drivers

    def _batch(self, ops: list[Op]) -> list[Result]:
        if self._store_lock is None:
            return self._store.batch(ops)
        with self._store_lock:
            return self._store.batch(ops)

    async def _abatch(self, ops: list[Op]) -> list[Result]:
        if self._store_lock is not None:
            async with _hold(self._store_lock):
                return await self._store.abatch(ops)
        if not self._async_via_thread:
            try:
                return await self._store.abatch(ops)
            except NotImplementedError:
                # Sync-only stores (SqliteStore) refuse abatch before doing anything.
                logger.debug("%s has no abatch; running it in a thread.", type(self._store))
                self._async_via_thread = True
        return await asyncio.to_thread(self._store.batch, ops)

    def _embeddings(self) -> Any:
        embeddings = getattr(self._store, "embeddings", None)
        if embeddings is None:  # pragma: no cover - plans only ask when has_index
            msg = "The store has no embeddings to embed with."
            raise MemoryConfigError(msg)
        return embeddings

    def _run(self, plan: plans.Plan[T], lock_user: str | None = None) -> T:
        lock = self._lock_for(lock_user)
        with lock if lock is not None else contextlib.nullcontext():
            try:
                step = next(plan)
                while True:
                    if isinstance(step, plans.Embed):
                        emb = self._embeddings()
                        query = emb.embed_query(step.query) if step.query else None
                        step = plan.send((emb.embed_documents(step.texts), query))
                    else:
                        step = plan.send(self._batch(step))
            except StopIteration as stop:
                result: T = stop.value
                return result

    async def _arun(self, plan: plans.Plan[T], lock_user: str | None = None) -> T:
        lock = self._lock_for(lock_user)
        async with _hold(lock) if lock is not None else contextlib.nullcontext():
            try:
                step = next(plan)
                while True:
                    if isinstance(step, plans.Embed):
                        emb = self._embeddings()
                        query = await emb.aembed_query(step.query) if step.query else None
                        step = plan.send((await emb.aembed_documents(step.texts), query))
                    else:
                        step = plan.send(await self._abatch(step))
            except StopIteration as stop:
                result: T = stop.value
                return result

    def _prune_in_memory(self, prefix: tuple[str, ...]) -> None:
        """Drop the empty namespace entries `InMemoryStore` keeps after deletes (and reads)."""
        if self._store_lock is None:
            return
        n = len(prefix)
        with self._store_lock:
            for table in (self._store._data, self._store._vectors):  # type: ignore[attr-defined]  # noqa: SLF001
                for namespace in [ns for ns, v in table.items() if ns[:n] == prefix and not v]:
                    del table[namespace]

    def _lock_for(self, user_id: str | None) -> threading.Lock | None:
        if user_id is None:
            return None
        return self._user_locks[hash(user_id) % _LOCK_STRIPES]

    # ----------------------------------------------------------------- plan builders

    def _add(
        self, user_id: str, prompt: str, chosen: str, rejected: str | None, metadata: dict[str, Any]
    ) -> plans.Plan[_Examples]:
        ns = self.namespaces(user_id)
        example = _new_example(prompt, chosen, rejected, metadata)
        return plans.add_plan(ns, [example], self._index_fields)

    def _add_many(
        self, user_id: str, examples: Iterable[PreferenceExample | Mapping[str, Any]]
    ) -> plans.Plan[_Examples]:
        ns = self.namespaces(user_id)
        stamped = []
        for raw in examples:
            fields = raw.model_dump() if isinstance(raw, PreferenceExample) else dict(raw)
            fields.pop("id", None)
            fields.pop("created_at", None)
            metadata = fields.pop("metadata", None) or {}
            unknown = set(fields) - {"prompt", "chosen", "rejected"}
            if unknown:
                msg = (
                    f"Unknown example fields {sorted(unknown)}; "
                    "use prompt, chosen, rejected, metadata."
                )
                raise InvalidExampleError(msg)
            stamped.append(
                _new_example(
                    fields.get("prompt"), fields.get("chosen"), fields.get("rejected"), metadata
                )
            )
        return plans.add_plan(ns, stamped, self._index_fields)

    def _record_choice(
        self, user_id: str, prompt: str, a: str, b: str, choice: str, metadata: dict[str, Any]
    ) -> tuple[plans.Plan[Any], ChoiceRecord]:
        ns = self.namespaces(user_id)
        if choice not in CHOICES:
            msg = f"`choice` must be one of {list(CHOICES)}, got {choice!r}."
            raise InvalidExampleError(msg)
        check_text("prompt", prompt)
        check_text("a", a)
        check_text("b", b)
        if a == b:
            msg = "Candidates `a` and `b` are identical; a choice needs two different responses."
            raise InvalidExampleError(msg)
        record_id, created_at = new_record_id()
        record = ChoiceRecord(
            prompt=prompt,
            a=a,
            b=b,
            choice=choice,
            id=record_id,
            created_at=created_at,
            metadata=check_metadata(metadata),
        )
        example = record.example
        if example is None:
            return plans.put_choice_plan(ns, record), record
        choice_put = PutOp(ns.choices, record_id, record.to_value(), index=False)
        return plans.add_plan(ns, [example], self._index_fields, extra=[choice_put]), record

    def _select(
        self,
        user_id: str,
        query: str | None,
        k: int,
        strategy: Strategy,
        fetch_k: int | None,
        lambda_mult: float,
    ) -> plans.Plan[_Examples]:
        ns = self.namespaces(user_id)
        k = _check_k(k)
        query = _check_query(query)
        if callable(strategy):
            return plans.function_plan(ns, strategy, query, k)
        name = str(strategy)  # callers without type checking pass any string
        if name == "recent":
            return plans.recent_plan(ns, k)
        if name == "relevant":
            return plans.relevant_plan(ns, query, k, has_index=self.has_index)
        if name == "diverse":
            return plans.diverse_plan(
                ns,
                query,
                k,
                fetch_k or max(_DEFAULT_FETCH_K, 4 * k),
                has_index=self.has_index,
                lambda_mult=lambda_mult,
            )
        msg = (
            f"Unknown selection strategy {strategy!r}; use one of {list(STRATEGY_NAMES)} "
            "or a callable (examples, query, k) -> examples."
        )
        raise MemoryConfigError(msg)

    def _set_description(self, user_id: str, text: str) -> plans.Plan[None]:
        ns = self.namespaces(user_id)
        return plans.set_description_plan(ns, check_text("description", text))

    # ----------------------------------------------------------------- public API (sync)

    def add(
        self,
        user_id: str,
        *,
        prompt: str,
        chosen: str,
        rejected: str | None = None,
        **metadata: Any,
    ) -> PreferenceExample:
        """Store one preference of `user_id`; return it with its id and UTC `created_at`.

        Extra keyword arguments are kept as the example's metadata (JSON-serialisable).

        Raises:
            InvalidExampleError: empty or over-long text, `chosen == rejected`, a bad user id,
                or metadata that is not JSON; nothing is written.
        """
        (example,) = self._run(self._add(user_id, prompt, chosen, rejected, metadata), user_id)
        return example

    def add_many(
        self, user_id: str, examples: Iterable[PreferenceExample | Mapping[str, Any]]
    ) -> _Examples:
        """Store many preferences of `user_id` in one batch (all valid, or nothing written).

        Each item is a `PreferenceExample` or a mapping with prompt/chosen/rejected/metadata;
        ids and times are assigned here, in the given order (the last is the newest).
        """
        return self._run(self._add_many(user_id, examples), user_id)

    def record_choice(
        self, user_id: str, prompt: str, a: str, b: str, choice: Choice, **metadata: Any
    ) -> ChoiceRecord:
        """Record which of two candidates `a`/`b` the user chose for `prompt`.

        `"a"` or `"b"` also stores the preference (chosen over the other) as an example with
        the record's id; `"tie"` and `"neither"` are kept (see `list_choices`, `export`) but
        never become shots.

        Example:
            >>> memory = PreferenceMemory()
            >>> rec = memory.record_choice("u1", "Hi?", "Hello!", "Yo.", "b")
            >>> memory.list("u1")[0].chosen, rec.example.rejected
            ('Yo.', 'Hello!')
        """
        plan, record = self._record_choice(user_id, prompt, a, b, choice, metadata)
        self._run(plan, user_id)
        return record

    def list(self, user_id: str) -> _Examples:
        """All of `user_id`'s examples, oldest first (empty for an unknown user)."""
        return self._run(plans.list_plan(self.namespaces(user_id)))

    def list_choices(self, user_id: str) -> _Choices:
        """All of `user_id`'s recorded choices (ties and "neither" included), oldest first."""
        return self._run(plans.list_choices_plan(self.namespaces(user_id)))

    def count(self, user_id: str) -> int:
        """How many examples `user_id` has."""
        return self._run(plans.count_plan(self.namespaces(user_id)))

    def get(self, user_id: str, example_id: str) -> PreferenceExample | None:
        """The example `example_id` of `user_id`, or None."""
        ns = self.namespaces(user_id)
        return self._run(plans.get_plan(ns, _check_record_id(example_id)))

    def delete(self, user_id: str, example_id: str) -> bool:
        """Delete the example (and/or choice record) `example_id`; False if there was none."""
        ns = self.namespaces(user_id)
        return self._run(plans.delete_plan(ns, _check_record_id(example_id)), user_id)

    def forget(self, user_id: str) -> int:
        """Delete everything stored about `user_id`; return the number of store items removed.

        Examples, choices, the cached description and the manifest all go: afterwards the
        store holds no namespace of this user.
        """
        ns = self.namespaces(user_id)
        removed = self._run(plans.forget_plan(ns), user_id)
        self._prune_in_memory(ns.user)
        return removed

    def export(self, user_id: str) -> dict[str, Any]:
        """Everything stored about `user_id` as a JSON-serialisable dict (data portability).

        Keys: `format`, `schema`, `user_id`, `exported_at`, `examples` (oldest first),
        `choices` (ties and "neither" included), `description` (None, or text, created_at and
        whether it is `current`).
        """
        return self._run(plans.export_plan(self.namespaces(user_id), user_id))

    def select(
        self,
        user_id: str,
        query: str | None = None,
        k: int = 8,
        strategy: Strategy = "recent",
        *,
        fetch_k: int | None = None,
        lambda_mult: float = DEFAULT_MMR_LAMBDA,
    ) -> _Examples:
        """Pick up to `k` of `user_id`'s examples as shots for `query`, oldest to newest.

        Args:
            user_id: whose examples.
            query: the question being answered (used by `relevant` and `diverse`).
            k: how many shots at most.
            strategy: `"recent"` (newest `k`), `"relevant"` (nearest `query` by the store's
                index; `MemoryConfigError` without one; newest `k` when `query` is None),
                `"diverse"` (MMR over the `fetch_k` nearest or newest; lexical similarity
                when the store has no index), or a callable `(examples, query, k) -> examples`.
            fetch_k: candidate pool for `diverse` (default `max(32, 4 * k)`).
            lambda_mult: relevance weight for `diverse` (0 = diversity only).

        Returns:
            Examples oldest first; empty for an unknown user or one without examples.
        """
        plan = self._select(user_id, query, k, strategy, fetch_k, lambda_mult)
        return self._run(plan)

    def get_description(self, user_id: str) -> str | None:
        """The cached RAT description of `user_id`, or None if unset or stale.

        A description goes stale as soon as the user's examples change (add, delete,
        record_choice "a"/"b").
        """
        return self._run(plans.get_description_plan(self.namespaces(user_id)))

    def set_description(self, user_id: str, text: str) -> None:
        """Cache `text` as the description of `user_id`'s current examples."""
        self._run(self._set_description(user_id, text), user_id)

    # ----------------------------------------------------------------- public API (async)

    async def aadd(
        self,
        user_id: str,
        *,
        prompt: str,
        chosen: str,
        rejected: str | None = None,
        **metadata: Any,
    ) -> PreferenceExample:
        """Async `add`."""
        plan = self._add(user_id, prompt, chosen, rejected, metadata)
        (example,) = await self._arun(plan, user_id)
        return example

    async def aadd_many(
        self, user_id: str, examples: Iterable[PreferenceExample | Mapping[str, Any]]
    ) -> _Examples:
        """Async `add_many`."""
        return await self._arun(self._add_many(user_id, examples), user_id)

    async def arecord_choice(
        self, user_id: str, prompt: str, a: str, b: str, choice: Choice, **metadata: Any
    ) -> ChoiceRecord:
        """Async `record_choice`."""
        plan, record = self._record_choice(user_id, prompt, a, b, choice, metadata)
        await self._arun(plan, user_id)
        return record

    async def alist(self, user_id: str) -> _Examples:
        """Async `list`."""
        return await self._arun(plans.list_plan(self.namespaces(user_id)))

    async def alist_choices(self, user_id: str) -> _Choices:
        """Async `list_choices`."""
        return await self._arun(plans.list_choices_plan(self.namespaces(user_id)))

    async def acount(self, user_id: str) -> int:
        """Async `count`."""
        return await self._arun(plans.count_plan(self.namespaces(user_id)))

    async def aget(self, user_id: str, example_id: str) -> PreferenceExample | None:
        """Async `get`."""
        ns = self.namespaces(user_id)
        return await self._arun(plans.get_plan(ns, _check_record_id(example_id)))

    async def adelete(self, user_id: str, example_id: str) -> bool:
        """Async `delete`."""
        ns = self.namespaces(user_id)
        return await self._arun(plans.delete_plan(ns, _check_record_id(example_id)), user_id)

    async def aforget(self, user_id: str) -> int:
        """Async `forget`."""
        ns = self.namespaces(user_id)
        removed = await self._arun(plans.forget_plan(ns), user_id)
        self._prune_in_memory(ns.user)
        return removed

    async def aexport(self, user_id: str) -> dict[str, Any]:
        """Async `export`."""
        return await self._arun(plans.export_plan(self.namespaces(user_id), user_id))

    async def aselect(
        self,
        user_id: str,
        query: str | None = None,
        k: int = 8,
        strategy: Strategy = "recent",
        *,
        fetch_k: int | None = None,
        lambda_mult: float = DEFAULT_MMR_LAMBDA,
    ) -> _Examples:
        """Async `select`."""
        plan = self._select(user_id, query, k, strategy, fetch_k, lambda_mult)
        return await self._arun(plan)

    async def aget_description(self, user_id: str) -> str | None:
        """Async `get_description`."""
        return await self._arun(plans.get_description_plan(self.namespaces(user_id)))

    async def aset_description(self, user_id: str, text: str) -> None:
        """Async `set_description`."""
        await self._arun(self._set_description(user_id, text), user_id)
