"""`MemoryCore`: what the sync and async halves of `PreferenceMemory` share.

Construction, the store and its driver, and one builder per operation that validates the
caller's input and returns the plan (`_plans`, `_select_plans`) both halves drive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from langgraph.store.base import BaseStore, PutOp
from langgraph.store.memory import InMemoryStore

from langchain_fspo.errors import InvalidExampleError, MemoryConfigError
from langchain_fspo.memory import _plans as plans
from langchain_fspo.memory import _select_plans as select_plans
from langchain_fspo.memory._driver import StoreDriver
from langchain_fspo.memory._inputs import (
    check_k,
    check_query,
    check_record_id,
    new_example,
    new_examples,
)
from langchain_fspo.memory._layout import DEFAULT_ROOT, UserNamespaces, new_record_id
from langchain_fspo.memory._records import CHOICES, ChoiceRecord, check_metadata, check_text
from langchain_fspo.memory._vector_search import VectorSearch
from langchain_fspo.preference import PreferenceExample, validate_user_id
from langchain_fspo.selection import STRATEGY_NAMES, Strategy

__all__ = ["DEFAULT_FETCH_K", "DEFAULT_WINDOW", "MemoryCore"]

DEFAULT_FETCH_K = 32
"""Candidate pool of `diverse`: `max(DEFAULT_FETCH_K, 4 * k)` unless `fetch_k` is given."""

DEFAULT_WINDOW = 256
"""Candidate window of a callable strategy: the newest `max(DEFAULT_WINDOW, k)` examples."""

_Examples = list[PreferenceExample]


class MemoryCore:
    """Construction and plan builders of `PreferenceMemory` (see there)."""

    def __init__(
        self,
        store: BaseStore | None = None,
        *,
        namespace: tuple[str, ...] = DEFAULT_ROOT,
        index_fields: Sequence[str] | None = ("prompt",),
        vector_search: VectorSearch | None = None,
    ) -> None:
        """Wrap `store` (default: a fresh `InMemoryStore`).

        Args:
            store: any LangGraph store, already set up.
            namespace: the prefix under which every user's subtree lives.
            index_fields: the example fields embedded when the store has an index (None: the
                store's configured fields). `relevant` and `diverse` search the first one.
            vector_search: how the in-memory and SQLite stores search large histories
                (default `VectorSearch()`: exact below 20,000 vectors per user; above, an IVF
                index probed for 16,384 rows, a sign-code filter to 512 and an exact rerank).
                PostgreSQL uses pgvector and ignores it.
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
        search: object = vector_search
        if search is not None and not isinstance(search, VectorSearch):
            msg = f"`vector_search` must be a VectorSearch, got {search!r:.80}."
            raise MemoryConfigError(msg)
        self._vector_search = vector_search or VectorSearch()
        self._driver = StoreDriver(self._store)
        self._resources = ExitStack()

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

    def namespaces(self, user_id: str) -> UserNamespaces:
        """The store namespaces that hold `user_id`'s data (for inspection and tooling)."""
        return UserNamespaces.of(self._root, validate_user_id(user_id))

    def _search_field(self) -> str:
        if self._index_fields:
            return self._index_fields[0]
        config = getattr(self._store, "index_config", None) or {}
        fields = config.get("fields") or ["$"]
        return str(fields[0])

    # ----------------------------------------------------------------- plan builders

    def _add(
        self,
        user_id: str,
        prompt: str,
        chosen: str,
        rejected: str | None,
        example_id: str | None,
        metadata: dict[str, Any],
    ) -> plans.Plan[_Examples]:
        ns = self.namespaces(user_id)
        example = new_example(prompt, chosen, rejected, metadata, example_id)
        chosen_ids = frozenset({str(example.id)}) if example_id is not None else frozenset()
        return plans.add_plan(ns, [example], self._index_fields, chosen_ids=chosen_ids)

    def _add_many(
        self, user_id: str, examples: Iterable[PreferenceExample | Mapping[str, Any]]
    ) -> plans.Plan[_Examples]:
        ns = self.namespaces(user_id)
        stamped, chosen_ids = new_examples(examples)
        return plans.add_plan(ns, stamped, self._index_fields, chosen_ids=chosen_ids)

    def _add_many_users(
        self, examples_by_user: Mapping[str, Iterable[PreferenceExample | Mapping[str, Any]]]
    ) -> dict[str, plans.Plan[_Examples]]:
        """One plan per user with examples, every input validated before any plan exists."""
        staged = {}
        for user, items in examples_by_user.items():
            ns = self.namespaces(user)
            staged[user] = (ns, *new_examples(items))
        return {
            user: plans.add_plan(ns, stamped, self._index_fields, chosen_ids=chosen_ids)
            for user, (ns, stamped, chosen_ids) in staged.items()
        }

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

    def _get(self, user_id: str, example_id: str) -> plans.Plan[PreferenceExample | None]:
        return plans.get_plan(self.namespaces(user_id), check_record_id(example_id))

    def _delete(self, user_id: str, example_id: str) -> plans.Plan[bool]:
        return plans.delete_plan(self.namespaces(user_id), check_record_id(example_id))

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
        if fetch_k is not None:
            check_k(fetch_k)
        if not 0.0 <= lambda_mult <= 1.0:
            msg = f"`lambda_mult` must lie in [0, 1], got {lambda_mult!r}."
            raise MemoryConfigError(msg)
        by_vector = self._driver.engine.vector_search
        if callable(strategy):
            window = fetch_k or DEFAULT_WINDOW
            return select_plans.function_plan(ns, strategy, query, k, window)
        name = str(strategy)  # callers without type checking pass any string
        if name == "recent":
            return plans.newest_plan(ns, k)
        if name == "relevant":
            return select_plans.relevant_plan(
                ns,
                query,
                k,
                self._search_field(),
                has_index=self.has_index,
                by_vector=by_vector,
                search=self._vector_search,
            )
        if name == "diverse":
            return select_plans.diverse_plan(
                ns,
                query,
                k,
                fetch_k or max(DEFAULT_FETCH_K, 4 * k),
                self._search_field(),
                has_index=self.has_index,
                by_vector=by_vector,
                lambda_mult=lambda_mult,
                search=self._vector_search,
            )
        msg = (
            f"Unknown selection strategy {strategy!r}; use one of {list(STRATEGY_NAMES)} "
            "or a callable (examples, query, k) -> examples."
        )
        raise MemoryConfigError(msg)

    def _set_description(self, user_id: str, text: str) -> plans.Plan[None]:
        ns = self.namespaces(user_id)
        return plans.set_description_plan(ns, check_text("description", text))
