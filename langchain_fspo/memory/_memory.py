"""`PreferenceMemory`: every user's preference examples on a LangGraph `BaseStore`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from langchain_fspo.errors import MemoryConfigError, MemoryWriteError
from langchain_fspo.memory import _plans as plans
from langchain_fspo.memory._amemory import AsyncMemoryAPI
from langchain_fspo.memory._backends import open_postgres_store, open_sqlite_store
from langchain_fspo.memory._layout import DEFAULT_ROOT
from langchain_fspo.memory._records import Choice, ChoiceRecord
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.selection import DEFAULT_MMR_LAMBDA, Strategy

if TYPE_CHECKING:
    from langgraph.store.base import IndexConfig

    from langchain_fspo.memory._vector_search import VectorSearch

__all__ = ["PreferenceMemory"]

# `PreferenceMemory.list` shadows the builtin inside the class body: annotate with these.
_Examples = list[PreferenceExample]
_Choices = list[ChoiceRecord]


class PreferenceMemory(AsyncMemoryAPI):
    """Per-user preference examples (the FSPO shots) on a LangGraph `BaseStore`.

    One store holds every user; each user's data sits in its own namespace subtree
    (`(*namespace, <encoded user id>, ...)`), so any string is a usable user id (e-mail
    addresses, dots, unicode). Every method has an async twin (`aadd`, `aselect`, ...) that
    never blocks the event loop on the store.

    Stores:
        - `PreferenceMemory()`: in-process `InMemoryStore` (lost at exit).
        - `PreferenceMemory.sqlite(path)`: persistent, embedded; threads and processes share it.
        - `PreferenceMemory.postgres(conn_string)`: PostgreSQL (extra `langchain-fspo[postgres]`).
        - `PreferenceMemory(store=...)`: any LangGraph store you already run (call its `setup()`).

    Give the store an embedding index over `prompt` to enable `strategy="relevant"`:
    `index={"dims": 384, "embed": my_embeddings, "fields": ["prompt"]}`.

    Guarantees, on the in-memory, SQLite and PostgreSQL stores alike:

    - Exact with any number of writers (threads, processes, `PreferenceMemory` objects): no
      write reads, modifies and writes back a shared record, so every acknowledged write is seen
      by `count`, `list`, `export` and `select`, with no repair step.
    - Order is the store's own commit order (SQLite rowid, dict order in memory, creation time
      then id on PostgreSQL): `list` is oldest first and `select(strategy="recent", k=k)` equals
      `list(...)[-k:]`.
    - Selection reads a bounded amount, whatever the history: see `select`.
    - Invalid input raises `InvalidExampleError` (or a subclass) before anything is written.

    Example:
        >>> memory = PreferenceMemory()
        >>> ex = memory.add(
        ...     "ada@example.com", prompt="Explain DNS.", chosen="Short.", rejected="Long."
        ... )
        >>> [e.chosen for e in memory.select("ada@example.com", k=8)]
        ['Short.']
        >>> memory.forget("ada@example.com")
        1
        >>> memory.list("ada@example.com")
        []
    """

    @classmethod
    def sqlite(
        cls,
        path: str | PathLike[str],
        *,
        index: IndexConfig | None = None,
        namespace: tuple[str, ...] = DEFAULT_ROOT,
        vector_search: VectorSearch | None = None,
    ) -> PreferenceMemory:
        """A memory in the SQLite file at `path` (created, with its tables, if missing).

        The connection is shared by all threads (the store serialises access) and uses WAL
        journaling, so other processes can read while this one writes. Close it with `close()`
        or a `with` block. Foreign keys are switched on, so deleting an example deletes its
        vectors (bring your own `SqliteStore` connection? run `PRAGMA foreign_keys = ON` on it,
        or `forget` leaves the embeddings behind). An `index` needs `sqlite-vec` and a
        `sqlite3` that can load extensions: where Python's cannot, `pysqlite3-binary` is used
        (extra `langchain-fspo[sqlite-index]`). `vector_search` sets how large histories are
        searched (see `VectorSearch`; default: exact below 20,000 vectors per user).

        Example:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "prefs.db"
            >>> with PreferenceMemory.sqlite(path) as memory:
            ...     _ = memory.add("u1", prompt="Q?", chosen="A.")
            >>> with PreferenceMemory.sqlite(path) as memory:
            ...     [e.chosen for e in memory.list("u1")]
            ['A.']
        """
        store, resources = open_sqlite_store(path, index)
        memory = cls(store, namespace=namespace, vector_search=vector_search)
        memory._resources.push(resources)
        return memory

    @classmethod
    def postgres(
        cls,
        conn_string: str,
        *,
        index: IndexConfig | None = None,
        namespace: tuple[str, ...] = DEFAULT_ROOT,
        max_connections: int = 8,
        defer_indexing: bool = False,
    ) -> PreferenceMemory:
        """A memory in PostgreSQL (runs the store's migrations; needs `[postgres]`).

        Uses a connection pool of up to `max_connections`; close it with `close()` or a `with`
        block. An `index` needs the `pgvector` extension in the database.

        With `defer_indexing=True` (needs `index`) an `add` writes its vector beside the ANN
        index and a background thread inserts it there: the index's insert (most of an `add`'s
        time) leaves the request's path; searches find the example at once either way.
        docs/serving.md has the trade-offs.

        Example:
            >>> memory = PreferenceMemory.postgres(
            ...     "postgresql://fspo:fspo@127.0.0.1:5432/fspo"
            ... )  # doctest: +SKIP
        """
        if defer_indexing and index is None:
            msg = "`defer_indexing=True` defers the embedding index's inserts: it needs `index=`."
            raise MemoryConfigError(msg)
        store, resources = open_postgres_store(conn_string, index, max_connections)
        memory = cls(store, namespace=namespace)
        memory._resources.push(resources)
        if defer_indexing:
            from langchain_fspo.memory._engine_postgres import PostgresEngine

            engine = memory._driver.engine
            assert isinstance(engine, PostgresEngine)  # noqa: S101 - PostgresStore's engine
            try:
                mover = engine.defer_indexing()
            except BaseException:
                memory.close()
                raise
            memory._resources.callback(mover.close)  # before the pool closes
        return memory

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- writes

    def add(
        self,
        user_id: str,
        *,
        prompt: str,
        chosen: str,
        rejected: str | None = None,
        example_id: str | None = None,
        **metadata: Any,
    ) -> PreferenceExample:
        """Store one preference of `user_id`; return it with its id and UTC `created_at`.

        Extra keyword arguments are kept as the example's metadata (JSON, at most
        `MAX_METADATA_BYTES` as UTF-8 JSON).

        Give an `example_id` of your own to write the example exactly once: when that id is
        already stored with the same content, nothing is written and the stored example comes
        back (re-running a script, retrying a request); two writers racing with one id leave
        one example.

        Example:
            >>> memory = PreferenceMemory()
            >>> for _ in range(2):
            ...     _ = memory.add("u1", prompt="Q?", chosen="A.", example_id="q1")
            >>> memory.count("u1")
            1

        Raises:
            InvalidExampleError: blank (whitespace or zero-width only), over-long or
                non-UTF-8 text (a lone surrogate), `chosen == rejected`, a bad user id or
                example id, metadata that is not JSON or too large; nothing is written.
            ExampleConflictError: `example_id` is stored with other content; nothing is written.
        """
        plan = self._add(user_id, prompt, chosen, rejected, example_id, metadata)
        (example,) = self._driver.run(plan)
        return example

    def add_many(
        self, user_id: str, examples: Iterable[PreferenceExample | Mapping[str, Any]]
    ) -> _Examples:
        """Store many preferences of `user_id` in one batch (all valid, or nothing written).

        Each item is a `PreferenceExample` or a mapping with prompt/chosen/rejected/metadata
        and optionally `id` (written once, as `add(..., example_id=...)`). New ids and times are
        assigned here, in the given order (the last is the newest). On SQLite and PostgreSQL
        the batch is one transaction.
        """
        return self._driver.run(self._add_many(user_id, examples))

    def add_many_users(
        self,
        examples_by_user: Mapping[str, Iterable[PreferenceExample | Mapping[str, Any]]],
        *,
        users_per_batch: int = 500,
    ) -> dict[str, list[PreferenceExample]]:
        """Bulk-load examples for many users, `users_per_batch` users per store batch.

        For imports (a dataset of users, a migration). Atomicity: every example of every user
        is validated before the first write, so invalid input raises `InvalidExampleError`
        with nothing written. Each batch is then one transaction on SQLite and PostgreSQL;
        should the store fail part way (a lost connection), the batches before the failure
        stay written and `MemoryWriteError.written` names their users. Items with an `id`
        are written once, so re-running the import after such a failure is safe.

        Example:
            >>> memory = PreferenceMemory()
            >>> added = memory.add_many_users({"u1": [{"prompt": "Q", "chosen": "A"}], "u2": []})
            >>> memory.count("u1"), memory.count("u2")
            (1, 0)
        """
        user_plans = self._add_many_users(examples_by_user)
        added: dict[str, list[PreferenceExample]] = {}
        users = list(user_plans)
        step = max(users_per_batch, 1)
        for start in range(0, len(users), step):
            chunk = users[start : start + step]
            try:
                results = self._driver.run_many([user_plans[u] for u in chunk])
            except Exception as e:
                written = [u for u in users[:start] if added.get(u)]
                msg = (
                    f"Writing users {start + 1}-{start + len(chunk)} of {len(users)} failed "
                    f"({type(e).__name__}: {e}); the {start} users before were written."
                )
                raise MemoryWriteError(msg, written=written) from e
            added.update(zip(chunk, results, strict=True))
        return added

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
        self._driver.run(plan)
        return record

    def delete(self, user_id: str, example_id: str) -> bool:
        """Delete the example (and/or choice record) `example_id`; False if there was none."""
        return self._driver.run(self._delete(user_id, example_id))

    def forget(self, user_id: str) -> int:
        """Delete everything stored about `user_id`; return the number of store items removed.

        Examples, choices and the cached description all go, in one atomic step on SQLite
        and PostgreSQL: once `forget` returns, nothing written before it began remains.
        On a memory opened with `sqlite()` the deleted text is also overwritten in the file
        (`secure_delete`, WAL checkpointed).
        """
        ns = self.namespaces(user_id)
        removed = self._driver.run(plans.forget_plan(ns))
        self._driver.scrub(ns.user)
        return removed

    def set_description(self, user_id: str, text: str) -> None:
        """Cache `text` as the description of `user_id`'s current examples."""
        self._driver.run(self._set_description(user_id, text))

    # ----------------------------------------------------------------- reads

    def list(self, user_id: str) -> _Examples:
        """All of `user_id`'s examples, oldest first (empty for an unknown user)."""
        return self._driver.run(plans.list_plan(self.namespaces(user_id)))

    def list_choices(self, user_id: str) -> _Choices:
        """All of `user_id`'s recorded choices (ties and "neither" included), oldest first."""
        return self._driver.run(plans.list_choices_plan(self.namespaces(user_id)))

    def count(self, user_id: str) -> int:
        """How many examples `user_id` has (counted by the store, one indexed query)."""
        return self._driver.run(plans.count_plan(self.namespaces(user_id)))

    def get(self, user_id: str, example_id: str) -> PreferenceExample | None:
        """The example `example_id` of `user_id`, or None."""
        return self._driver.run(self._get(user_id, example_id))

    def export(self, user_id: str) -> dict[str, Any]:
        """Everything stored about `user_id` as a JSON-serialisable dict (data portability).

        Keys: `format`, `schema`, `user_id`, `exported_at`, `examples` (oldest first, as
        `list`), `choices` (ties and "neither" included), `description` (None, or text,
        created_at and whether it is `current`).
        """
        return self._driver.run(plans.export_plan(self.namespaces(user_id), user_id))

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

        Every strategy reads a bounded number of examples, however long the user's history.

        Args:
            user_id: whose examples.
            query: the question being answered (used by `relevant` and `diverse`).
            k: how many shots at most.
            strategy: `"recent"` (the newest `k`, equal to `list(user_id)[-k:]`),
                `"relevant"` (the `k` nearest `query` by the store's own vector search;
                `MemoryConfigError` without an index; the newest `k` when `query` is None),
                `"diverse"` (MMR over `fetch_k` candidates, the nearest `query` or the
                newest, with their stored vectors; lexical similarity without an index), or
                a callable `(examples, query, k) -> examples`, given the newest `fetch_k`
                examples (default `DEFAULT_WINDOW` = 256), oldest first.
            fetch_k: candidate pool for `diverse` (default `max(32, 4 * k)`) or window for
                a callable.
            lambda_mult: relevance weight for `diverse` (0 = diversity only).

        Returns:
            Examples oldest first; empty for an unknown user or one without examples.
        """
        plan = self._select(user_id, query, k, strategy, fetch_k, lambda_mult)
        return self._driver.run(plan)

    def get_description(self, user_id: str) -> str | None:
        """The cached RAT description of `user_id`, or None if unset or stale.

        A description goes stale as soon as the user's examples change (add, delete,
        record_choice "a"/"b").
        """
        return self._driver.run(plans.get_description_plan(self.namespaces(user_id)))
