"""The logic of every `PreferenceMemory` operation, written once for sync and async.

Each plan is a generator that yields what it needs and receives the answer: `list[Op]` for the
store's `batch`, an `Embed` request, or an engine `Query` (`_engines`); the driver answers with
sync or async calls. Plans validate before their first write, and each write is one batch of
puts under keys no other write shares: nothing is ever read, modified and written back.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from langgraph.store.base import GetOp, Item, Op, PutOp, SearchOp

from langchain_fspo.errors import ExampleConflictError, MemoryConfigError
from langchain_fspo.memory._engines import (
    Count,
    Forget,
    Newest,
    Oldest,
    Query,
    Row,
    Vectors,
    Version,
)
from langchain_fspo.memory._layout import DESCRIPTION_KEY, UserNamespaces
from langchain_fspo.memory._records import (
    RECORD_SCHEMA,
    ChoiceRecord,
    example_from_value,
    example_to_value,
)
from langchain_fspo.preference import PreferenceExample

__all__ = [
    "EXPORT_FORMAT",
    "Embed",
    "Plan",
    "add_plan",
    "count_plan",
    "delete_plan",
    "export_plan",
    "get_description_plan",
    "get_plan",
    "list_choices_plan",
    "list_plan",
    "newest_plan",
    "put_choice_plan",
    "set_description_plan",
]

T = TypeVar("T")

EXPORT_FORMAT = "langchain-fspo/preferences-export"
_SCAN_LIMIT = 1_000


@dataclass(frozen=True, slots=True)
class Embed:
    """Ask the driver to embed `texts` (and `query`) with the store's embeddings."""

    texts: list[str]
    query: str | None


Step = list[Op] | Embed | Query
Plan = Generator[Step, Any, T]
"""A generator that yields steps, is sent each step's answer, and returns the result."""


def examples_of(rows: Sequence[Row]) -> list[PreferenceExample]:
    """Rebuild examples from engine rows, in the rows' order."""
    return [example_from_value(r.key, r.value) for r in rows]


def _same(stored: PreferenceExample, new: PreferenceExample) -> bool:
    return (stored.prompt, stored.chosen, stored.rejected, stored.metadata) == (
        new.prompt,
        new.chosen,
        new.rejected,
        new.metadata,
    )


def add_plan(
    ns: UserNamespaces,
    examples: Sequence[PreferenceExample],
    index_fields: list[str] | None,
    *,
    chosen_ids: frozenset[str] = frozenset(),
    extra: Sequence[PutOp] = (),
) -> Plan[list[PreferenceExample]]:
    """Store stamped `examples` (and `extra` puts) in one batch; return them as stored.

    Examples whose id the caller chose (`chosen_ids`) are written once: an id already stored
    with the same content is returned as stored and not written again; with other content it
    raises `ExampleConflictError` before anything is written.
    """
    stored: dict[str, PreferenceExample] = {}
    if chosen_ids:
        ids = [str(e.id) for e in examples if e.id in chosen_ids]
        items = yield [GetOp(ns.examples, i) for i in ids]
        stored = {i.key: example_from_value(i.key, i.value) for i in items if i is not None}
        for example in examples:
            old = stored.get(str(example.id))
            if old is not None and not _same(old, example):
                msg = (
                    f"Example id {example.id!r} is already stored with other content "
                    f"(prompt {old.prompt[:60]!r}); pick another id, or delete it first."
                )
                raise ExampleConflictError(msg)
    puts: list[Op] = [
        PutOp(ns.examples, str(e.id), example_to_value(e), index=index_fields)
        for e in examples
        if str(e.id) not in stored
    ]
    puts.extend(extra)
    if puts:
        yield puts
    return [stored.get(str(e.id), e) for e in examples]


def put_choice_plan(ns: UserNamespaces, record: ChoiceRecord) -> Plan[ChoiceRecord]:
    """Store a tie/"neither" choice (no example)."""
    yield [PutOp(ns.choices, str(record.id), record.to_value(), index=False)]
    return record


def scan_plan(prefix: tuple[str, ...]) -> Plan[list[Item]]:
    """Every item under `prefix`, in one search (grown and retried if the limit was reached)."""
    limit = _SCAN_LIMIT
    while True:
        (items,) = yield [SearchOp(prefix, limit=limit)]
        if len(items) < limit:
            return list(items)
        limit *= 4


def list_choices_plan(ns: UserNamespaces) -> Plan[list[ChoiceRecord]]:
    """All the user's recorded choices, oldest first (their ids sort by time)."""
    items = yield from scan_plan(ns.choices)
    items = sorted((i for i in items if tuple(i.namespace) == ns.choices), key=lambda i: i.key)
    return [ChoiceRecord.from_value(i.key, i.value) for i in items]


def list_plan(ns: UserNamespaces) -> Plan[list[PreferenceExample]]:
    """All the user's examples, oldest first (in the store's order)."""
    rows: list[Row] = yield Oldest(ns.examples)
    return examples_of(rows)


def count_plan(ns: UserNamespaces) -> Plan[int]:
    """How many examples the user has (counted by the store)."""
    n: int = yield Count(ns.examples)
    return n


def get_plan(ns: UserNamespaces, example_id: str) -> Plan[PreferenceExample | None]:
    """One example by id, or None."""
    (item,) = yield [GetOp(ns.examples, example_id)]
    return None if item is None else example_from_value(item.key, item.value)


def delete_plan(ns: UserNamespaces, record_id: str) -> Plan[bool]:
    """Delete the example and/or choice record with `record_id`; False when neither exists."""
    example_item, choice_item = yield [GetOp(ns.examples, record_id), GetOp(ns.choices, record_id)]
    if example_item is None and choice_item is None:
        return False
    yield [
        PutOp(namespace, record_id, None)
        for namespace, item in ((ns.examples, example_item), (ns.choices, choice_item))
        if item is not None
    ]
    return True


def forget_plan(ns: UserNamespaces) -> Plan[int]:
    """Delete every item of the user in one engine step; return how many went."""
    removed: int = yield Forget(ns.user)
    return removed


def get_description_plan(ns: UserNamespaces) -> Plan[str | None]:
    """The cached description, if the user's examples are the ones it was written for."""
    version = yield Version(ns.examples)
    (item,) = yield [GetOp(ns.meta, DESCRIPTION_KEY)]
    return _current_text(item, version)


def _current_text(item: Item | None, version: list[Any]) -> str | None:
    if item is None or item.value.get("version") != list(version):
        return None
    text: str = item.value["text"]
    return text


def set_description_plan(ns: UserNamespaces, text: str) -> Plan[None]:
    """Cache `text` as the description of the user's current examples."""
    version = yield Version(ns.examples)
    value = {
        "schema": RECORD_SCHEMA,
        "text": text,
        "version": list(version),
        "created_at": datetime.now(UTC).isoformat(),
    }
    yield [PutOp(ns.meta, DESCRIPTION_KEY, value, index=False)]


def export_plan(ns: UserNamespaces, user_id: str) -> Plan[dict[str, Any]]:
    """Everything stored about the user, as a JSON-serialisable dict (examples oldest first)."""
    rows = yield Oldest(ns.examples)
    version = [len(rows), rows[-1].key if rows else None]
    choices = yield from list_choices_plan(ns)
    (description_item,) = yield [GetOp(ns.meta, DESCRIPTION_KEY)]
    description = None
    if description_item is not None:
        description = {
            "text": description_item.value["text"],
            "created_at": description_item.value.get("created_at"),
            "current": _current_text(description_item, version) is not None,
        }
    return {
        "format": EXPORT_FORMAT,
        "schema": RECORD_SCHEMA,
        "user_id": user_id,
        "exported_at": datetime.now(UTC).isoformat(),
        "examples": [e.model_dump(mode="json") for e in examples_of(rows)],
        "choices": [c.model_dump(mode="json") for c in choices],
        "description": description,
    }


def newest_plan(ns: UserNamespaces, k: int) -> Plan[list[PreferenceExample]]:
    """The newest `k` examples, oldest first: one O(k) engine read."""
    if k <= 0:
        return []
    rows: list[Row] = yield Newest(ns.examples, k)
    return examples_of(rows[::-1])


def vectors_plan(
    ns: UserNamespaces, field: str, keys: Sequence[str]
) -> Plan[Mapping[str, Sequence[float]]]:
    """The stored `field` vectors of `keys`."""
    vectors: Mapping[str, Sequence[float]] = yield Vectors(ns.examples, field, tuple(keys))
    return vectors


def require_index(*, has_index: bool) -> None:
    """Raise the error `strategy="relevant"` gives on a store without an embedding index."""
    if not has_index:
        msg = (
            "strategy='relevant' needs a store with an embedding index, and this store has "
            "none. Create it with `index={'dims': ..., 'embed': ..., 'fields': ['prompt']}` "
            "(e.g. `PreferenceMemory.sqlite(path, index=...)`), or use strategy='recent' or "
            "'diverse' (which falls back to lexical similarity)."
        )
        raise MemoryConfigError(msg)
