"""`PreferenceMemory`: every user's preference examples on a LangGraph `BaseStore`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from langgraph.store.base import BaseStore, PutOp
from langgraph.store.memory import InMemoryStore

from langchain_fspo.errors import InvalidExampleError, MemoryConfigError
from langchain_fspo.memory import _plans as plans
from langchain_fspo.memory._backends import open_postgres_store, open_sqlite_store
from langchain_fspo.memory._driver import StoreDriver
from langchain_fspo.memory._inputs import (
    check_k,
    check_query,
    check_record_id,
    new_example,
    new_examples,
)
from langchain_fspo.memory._layout import DEFAULT_ROOT, UserNamespaces, new_record_id
from langchain_fspo.memory._records import (
    CHOICES,
    Choice,
    ChoiceRecord,
    check_metadata,
    check_text,
)
from langchain_fspo.preference import PreferenceExample, validate_user_id
from langchain_fspo.selection import DEFAULT_MMR_LAMBDA, STRATEGY_NAMES, Strategy

if TYPE_CHECKING:
    from langgraph.store.base import IndexConfig

__all__ = ["PreferenceMemory"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
# `PreferenceMemory.list` shadows the builtin inside the class body: annotate with these.
_Examples = list[PreferenceExample]
_Choices = list[ChoiceRecord]

_DEFAULT_FETCH_K = 32


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
        self._driver = StoreDriver(self._store)
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
        store, resources = open_sqlite_store(path, index)
        memory = cls(store, namespace=namespace)
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
    ) -> PreferenceMemory:
        """A memory in PostgreSQL (runs the store's migrations; needs `[postgres]`).

        Uses a connection pool of up to `max_connections`; close it with `close()` or a `with`
        block. An `index` needs the `pgvector` extension in the database.

        Example:
            >>> memory = PreferenceMemory.postgres(
            ...     "postgresql://fspo:fspo@127.0.0.1:5432/fspo"
            ... )  # doctest: +SKIP
        """
        store, resources = open_postgres_store(conn_string, index, max_connections)
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
        return self._driver.has_index

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

    # ----------------------------------------------------------------- plan builders

    def _add(
        self, user_id: str, prompt: str, chosen: str, rejected: str | None, metadata: dict[str, Any]
    ) -> plans.Plan[_Examples]:
        ns = self.namespaces(user_id)
        example = new_example(prompt, chosen, rejected, metadata)
        return plans.add_plan(ns, [example], self._index_fields)

    def _add_many(
        self, user_id: str, examples: Iterable[PreferenceExample | Mapping[str, Any]]
    ) -> plans.Plan[_Examples]:
        ns = self.namespaces(user_id)
        return plans.add_plan(ns, new_examples(examples), self._index_fields)

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
        k = check_k(k)
        query = check_query(query)
        if not 0.0 <= lambda_mult <= 1.0:
            msg = f"`lambda_mult` must lie in [0, 1], got {lambda_mult!r}."
            raise MemoryConfigError(msg)
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
        (example,) = self._driver.run(
            self._add(user_id, prompt, chosen, rejected, metadata), [user_id]
        )
        return example

    def add_many(
        self, user_id: str, examples: Iterable[PreferenceExample | Mapping[str, Any]]
    ) -> _Examples:
        """Store many preferences of `user_id` in one batch (all valid, or nothing written).

        Each item is a `PreferenceExample` or a mapping with prompt/chosen/rejected/metadata;
        ids and times are assigned here, in the given order (the last is the newest).
        """
        return self._driver.run(self._add_many(user_id, examples), [user_id])

    def add_many_users(
        self,
        examples_by_user: Mapping[str, Iterable[PreferenceExample | Mapping[str, Any]]],
        *,
        users_per_batch: int = 500,
    ) -> dict[str, list[PreferenceExample]]:
        """Bulk-load examples for many users: two store round trips per `users_per_batch` users.

        For imports (a dataset of users, a migration). Every example of every user is validated
        before anything is written; then each chunk of users is written in one batch.

        Example:
            >>> memory = PreferenceMemory()
            >>> added = memory.add_many_users({"u1": [{"prompt": "Q", "chosen": "A"}], "u2": []})
            >>> memory.count("u1"), memory.count("u2")
            (1, 0)
        """
        staged = {user: new_examples(items) for user, items in examples_by_user.items()}
        namespaces = {user: self.namespaces(user) for user in staged}
        added: dict[str, list[PreferenceExample]] = {}
        users = [user for user, items in staged.items() if items]
        step = max(users_per_batch, 1)
        for start in range(0, len(users), step):
            chunk = users[start : start + step]
            chunk_plans = [
                plans.add_plan(namespaces[u], staged[u], self._index_fields) for u in chunk
            ]
            added.update(zip(chunk, self._driver.run_many(chunk_plans, chunk), strict=True))
        return {user: added.get(user, []) for user in staged}

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
        self._driver.run(plan, [user_id])
        return record

    def list(self, user_id: str) -> _Examples:
        """All of `user_id`'s examples, oldest first (empty for an unknown user)."""
        return self._driver.run(plans.list_plan(self.namespaces(user_id)))

    def list_choices(self, user_id: str) -> _Choices:
        """All of `user_id`'s recorded choices (ties and "neither" included), oldest first."""
        return self._driver.run(plans.list_choices_plan(self.namespaces(user_id)))

    def count(self, user_id: str) -> int:
        """How many examples `user_id` has."""
        return self._driver.run(plans.count_plan(self.namespaces(user_id)))

    def get(self, user_id: str, example_id: str) -> PreferenceExample | None:
        """The example `example_id` of `user_id`, or None."""
        ns = self.namespaces(user_id)
        return self._driver.run(plans.get_plan(ns, check_record_id(example_id)))

    def delete(self, user_id: str, example_id: str) -> bool:
        """Delete the example (and/or choice record) `example_id`; False if there was none."""
        ns = self.namespaces(user_id)
        return self._driver.run(plans.delete_plan(ns, check_record_id(example_id)), [user_id])

    def reindex(self, user_id: str) -> int:
        """Rebuild `user_id`'s manifest from the stored examples; return their number.

        The manifest (newest ids, count) is kept in step by this process's per-user lock.
        Processes writing the same user at the same instant can race on it; `select` notices
        ids that vanished, but not an add the manifest missed: run this to repair.
        """
        return self._driver.run(plans.reindex_plan(self.namespaces(user_id)), [user_id])

    def forget(self, user_id: str) -> int:
        """Delete everything stored about `user_id`; return the number of store items removed.

        Examples, choices, the cached description and the manifest all go: afterwards the
        store holds no namespace of this user. On a memory opened with `sqlite()` the deleted
        text is also overwritten in the file (`secure_delete`, WAL checkpointed).
        """
        ns = self.namespaces(user_id)
        removed = self._driver.run(plans.forget_plan(ns), [user_id])
        self._driver.scrub(ns.user)
        return removed

    def export(self, user_id: str) -> dict[str, Any]:
        """Everything stored about `user_id` as a JSON-serialisable dict (data portability).

        Keys: `format`, `schema`, `user_id`, `exported_at`, `examples` (oldest first),
        `choices` (ties and "neither" included), `description` (None, or text, created_at and
        whether it is `current`).
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
        return self._driver.run(plan)

    def get_description(self, user_id: str) -> str | None:
        """The cached RAT description of `user_id`, or None if unset or stale.

        A description goes stale as soon as the user's examples change (add, delete,
        record_choice "a"/"b").
        """
        return self._driver.run(plans.get_description_plan(self.namespaces(user_id)))

    def set_description(self, user_id: str, text: str) -> None:
        """Cache `text` as the description of `user_id`'s current examples."""
        self._driver.run(self._set_description(user_id, text), [user_id])

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
        (example,) = await self._driver.arun(plan, [user_id])
        return example

    async def aadd_many(
        self, user_id: str, examples: Iterable[PreferenceExample | Mapping[str, Any]]
    ) -> _Examples:
        """Async `add_many`."""
        return await self._driver.arun(self._add_many(user_id, examples), [user_id])

    async def arecord_choice(
        self, user_id: str, prompt: str, a: str, b: str, choice: Choice, **metadata: Any
    ) -> ChoiceRecord:
        """Async `record_choice`."""
        plan, record = self._record_choice(user_id, prompt, a, b, choice, metadata)
        await self._driver.arun(plan, [user_id])
        return record

    async def alist(self, user_id: str) -> _Examples:
        """Async `list`."""
        return await self._driver.arun(plans.list_plan(self.namespaces(user_id)))

    async def alist_choices(self, user_id: str) -> _Choices:
        """Async `list_choices`."""
        return await self._driver.arun(plans.list_choices_plan(self.namespaces(user_id)))

    async def acount(self, user_id: str) -> int:
        """Async `count`."""
        return await self._driver.arun(plans.count_plan(self.namespaces(user_id)))

    async def aget(self, user_id: str, example_id: str) -> PreferenceExample | None:
        """Async `get`."""
        ns = self.namespaces(user_id)
        return await self._driver.arun(plans.get_plan(ns, check_record_id(example_id)))

    async def adelete(self, user_id: str, example_id: str) -> bool:
        """Async `delete`."""
        ns = self.namespaces(user_id)
        return await self._driver.arun(
            plans.delete_plan(ns, check_record_id(example_id)), [user_id]
        )

    async def areindex(self, user_id: str) -> int:
        """Async `reindex`."""
        return await self._driver.arun(plans.reindex_plan(self.namespaces(user_id)), [user_id])

    async def aforget(self, user_id: str) -> int:
        """Async `forget`."""
        ns = self.namespaces(user_id)
        removed = await self._driver.arun(plans.forget_plan(ns), [user_id])
        await self._driver.ascrub(ns.user)
        return removed

    async def aexport(self, user_id: str) -> dict[str, Any]:
        """Async `export`."""
        return await self._driver.arun(plans.export_plan(self.namespaces(user_id), user_id))

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
        return await self._driver.arun(plan)

    async def aget_description(self, user_id: str) -> str | None:
        """Async `get_description`."""
        return await self._driver.arun(plans.get_description_plan(self.namespaces(user_id)))

    async def aset_description(self, user_id: str, text: str) -> None:
        """Async `set_description`."""
        await self._driver.arun(self._set_description(user_id, text), [user_id])
