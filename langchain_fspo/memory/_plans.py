"""The logic of every `PreferenceMemory` operation, written once for sync and async.

Each plan is a generator that yields what it needs (`list[Op]` for the store's `batch`, or an
`Embed` request) and receives the answer; `PreferenceMemory` drives it with `store.batch` or
`await store.abatch`. Plans validate before their first write, and each write is a single
batch, so invalid input writes nothing.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from langgraph.store.base import GetOp, Item, Op, PutOp, SearchOp

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.memory._layout import DESCRIPTION_KEY, MANIFEST_KEY, UserNamespaces
from langchain_fspo.memory._records import (
    RECENT_CAP,
    RECORD_SCHEMA,
    ChoiceRecord,
    Manifest,
    example_from_value,
    example_to_value,
)
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.selection import SelectionFunction, chronological, lexical_vectors, mmr_select

__all__ = [
    "EXPORT_FORMAT",
    "Embed",
    "Plan",
    "add_plan",
    "count_plan",
    "delete_plan",
    "diverse_plan",
    "export_plan",
    "forget_plan",
    "function_plan",
    "get_description_plan",
    "get_plan",
    "list_choices_plan",
    "list_plan",
    "recent_plan",
    "reindex_plan",
    "relevant_plan",
    "set_description_plan",
]

T = TypeVar("T")

EXPORT_FORMAT = "langchain-fspo/preferences-export"
_FIRST_SCAN_LIMIT = 1_000
_MAX_FORGET_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class Embed:
    """Ask the driver to embed `texts` (and `query`) with the store's embeddings."""

    texts: list[str]
    query: str | None


Step = list[Op] | Embed
Plan = Generator[Step, Any, T]
"""A generator that yields steps, is sent each step's answer, and returns the result."""


def _value(item: Item | None) -> dict[str, Any] | None:
    return None if item is None else item.value


def scan_plan(prefix: tuple[str, ...], hint: int = 0) -> Plan[list[Item]]:
    """Every item under `prefix`, in one search (grown and retried if the limit was reached).

    One search rather than offset pages: stores order search results by update time, which
    ties at one-second resolution, so pages could skip or repeat items.
    """
    limit = max(_FIRST_SCAN_LIMIT, 2 * hint + 16)
    while True:
        (items,) = yield [SearchOp(prefix, limit=limit)]
        if len(items) < limit:
            return list(items)
        limit *= 4


def add_plan(
    ns: UserNamespaces,
    examples: Sequence[PreferenceExample],
    index_fields: list[str] | None,
    extra: Sequence[PutOp] = (),
) -> Plan[list[PreferenceExample]]:
    """Store stamped `examples` (and `extra` puts) and update the manifest, in one batch."""
    (manifest_item,) = yield [GetOp(ns.meta, MANIFEST_KEY)]
    manifest = Manifest.from_value(_value(manifest_item)).added([str(e.id) for e in examples])
    puts: list[Op] = [
        PutOp(ns.examples, str(e.id), example_to_value(e), index=index_fields) for e in examples
    ]
    puts.extend(extra)
    puts.append(PutOp(ns.meta, MANIFEST_KEY, manifest.to_value(), index=False))
    yield puts
    return list(examples)


def put_choice_plan(ns: UserNamespaces, record: ChoiceRecord) -> Plan[ChoiceRecord]:
    """Store a tie/"neither" choice: no example, so the manifest is untouched."""
    yield [PutOp(ns.choices, str(record.id), record.to_value(), index=False)]
    return record


def list_plan(ns: UserNamespaces) -> Plan[list[PreferenceExample]]:
    """All the user's examples, oldest first."""
    (manifest_item,) = yield [GetOp(ns.meta, MANIFEST_KEY)]
    manifest = Manifest.from_value(_value(manifest_item))
    items = yield from scan_plan(ns.examples, hint=manifest.count)
    items = [i for i in items if i.namespace == ns.examples]
    items.sort(key=lambda i: i.key)
    return chronological([example_from_value(i.key, i.value) for i in items])


def list_choices_plan(ns: UserNamespaces) -> Plan[list[ChoiceRecord]]:
    """All the user's recorded choices, oldest first."""
    items = yield from scan_plan(ns.choices)
    items = sorted((i for i in items if i.namespace == ns.choices), key=lambda i: i.key)
    return [ChoiceRecord.from_value(i.key, i.value) for i in items]


def count_plan(ns: UserNamespaces) -> Plan[int]:
    """How many examples the user has (from the manifest)."""
    (manifest_item,) = yield [GetOp(ns.meta, MANIFEST_KEY)]
    return Manifest.from_value(_value(manifest_item)).count


def get_plan(ns: UserNamespaces, example_id: str) -> Plan[PreferenceExample | None]:
    """One example by id, or None."""
    (item,) = yield [GetOp(ns.examples, example_id)]
    return None if item is None else example_from_value(item.key, item.value)


def delete_plan(ns: UserNamespaces, record_id: str) -> Plan[bool]:
    """Delete the example and/or choice record with `record_id`; False when neither exists."""
    manifest_item, example_item, choice_item = yield [
        GetOp(ns.meta, MANIFEST_KEY),
        GetOp(ns.examples, record_id),
        GetOp(ns.choices, record_id),
    ]
    if example_item is None and choice_item is None:
        return False
    puts: list[Op] = []
    if choice_item is not None:
        puts.append(PutOp(ns.choices, record_id, None))
    if example_item is not None:
        manifest = Manifest.from_value(_value(manifest_item)).removed(record_id)
        if manifest.needs_refill():
            items = yield from scan_plan(ns.examples, hint=manifest.count)
            ids = sorted(i.key for i in items if i.namespace == ns.examples and i.key != record_id)
            manifest = Manifest(ids[-RECENT_CAP:], len(ids), manifest.revision)
        puts.append(PutOp(ns.examples, record_id, None))
        puts.append(PutOp(ns.meta, MANIFEST_KEY, manifest.to_value(), index=False))
    yield puts
    return True


def reindex_plan(ns: UserNamespaces) -> Plan[int]:
    """Rebuild the manifest from the stored examples; return how many there are."""
    (manifest_item,) = yield [GetOp(ns.meta, MANIFEST_KEY)]
    old = Manifest.from_value(_value(manifest_item))
    items = yield from scan_plan(ns.examples, hint=old.count)
    ids = sorted(i.key for i in items if i.namespace == ns.examples)
    if ids or manifest_item is not None:
        manifest = Manifest(ids[-RECENT_CAP:], len(ids), old.revision + 1)
        yield [PutOp(ns.meta, MANIFEST_KEY, manifest.to_value(), index=False)]
    return len(ids)


def forget_plan(ns: UserNamespaces) -> Plan[int]:
    """Delete every item under the user's subtree; return how many were deleted.

    Repeats until a scan finds nothing, so items written concurrently by another process
    while forgetting are caught too.
    """
    total = 0
    for _ in range(_MAX_FORGET_ROUNDS):
        items = yield from scan_plan(ns.user)
        if not items:
            return total
        yield [PutOp(i.namespace, i.key, None) for i in items]
        total += len(items)
    msg = (
        f"Items kept appearing under {ns.user} after {_MAX_FORGET_ROUNDS} rounds of deletion; "
        "stop the writers for this user and call `forget` again."
    )
    raise MemoryConfigError(msg)


def _description(manifest_item: Item | None, description_item: Item | None) -> str | None:
    if description_item is None:
        return None
    revision = Manifest.from_value(_value(manifest_item)).revision
    if description_item.value.get("revision") != revision:
        return None
    text: str = description_item.value["text"]
    return text


def get_description_plan(ns: UserNamespaces) -> Plan[str | None]:
    """The cached description, if it was set since the user's examples last changed."""
    manifest_item, description_item = yield [
        GetOp(ns.meta, MANIFEST_KEY),
        GetOp(ns.meta, DESCRIPTION_KEY),
    ]
    return _description(manifest_item, description_item)


def set_description_plan(ns: UserNamespaces, text: str) -> Plan[None]:
    """Cache `text` as the description of the user's current examples."""
    (manifest_item,) = yield [GetOp(ns.meta, MANIFEST_KEY)]
    revision = Manifest.from_value(_value(manifest_item)).revision
    value = {
        "schema": RECORD_SCHEMA,
        "text": text,
        "revision": revision,
        "created_at": datetime.now(UTC).isoformat(),
    }
    yield [PutOp(ns.meta, DESCRIPTION_KEY, value, index=False)]


def export_plan(ns: UserNamespaces, user_id: str) -> Plan[dict[str, Any]]:
    """Everything stored about the user, as a JSON-serialisable dict."""
    items = yield from scan_plan(ns.user)
    by_ns: dict[tuple[str, ...], list[Item]] = {}
    for item in sorted(items, key=lambda i: i.key):
        by_ns.setdefault(tuple(item.namespace), []).append(item)
    meta = {i.key: i for i in by_ns.get(ns.meta, [])}
    description_item = meta.get(DESCRIPTION_KEY)
    examples = chronological(
        [example_from_value(i.key, i.value) for i in by_ns.get(ns.examples, [])]
    )
    choices = [ChoiceRecord.from_value(i.key, i.value) for i in by_ns.get(ns.choices, [])]
    description = None
    if description_item is not None:
        description = {
            "text": description_item.value["text"],
            "created_at": description_item.value.get("created_at"),
            "current": _description(meta.get(MANIFEST_KEY), description_item) is not None,
        }
    return {
        "format": EXPORT_FORMAT,
        "schema": RECORD_SCHEMA,
        "user_id": user_id,
        "exported_at": datetime.now(UTC).isoformat(),
        "examples": [e.model_dump(mode="json") for e in examples],
        "choices": [c.model_dump(mode="json") for c in choices],
        "description": description,
    }


def recent_plan(ns: UserNamespaces, k: int) -> Plan[list[PreferenceExample]]:
    """The newest `k` examples, oldest first: one manifest get and one batched get of `k` items."""
    if k <= 0:
        return []
    (manifest_item,) = yield [GetOp(ns.meta, MANIFEST_KEY)]
    manifest = Manifest.from_value(_value(manifest_item))
    if manifest.count == 0 and not manifest.recent:
        return []
    if k <= len(manifest.recent) or manifest.complete:
        ids = manifest.recent[-k:]
        items = yield [GetOp(ns.examples, i) for i in ids]
        if all(item is not None for item in items):
            return chronological([example_from_value(i.key, i.value) for i in items])
    # The manifest is short (k > RECENT_CAP) or stale (another process deleted): scan.
    examples = yield from list_plan(ns)
    return examples[-k:]


def relevant_plan(
    ns: UserNamespaces, query: str | None, k: int, *, has_index: bool
) -> Plan[list[PreferenceExample]]:
    """The `k` examples whose prompt is nearest `query` by the store's index, oldest first.

    Without a query there is nothing to be relevant to: the newest `k` are returned.
    """
    if not has_index:
        msg = (
            "strategy='relevant' needs a store with an embedding index, and this store has "
            "none. Create it with `index={'dims': ..., 'embed': ..., 'fields': ['prompt']}` "
            "(e.g. `PreferenceMemory.sqlite(path, index=...)`), or use strategy='recent' or "
            "'diverse' (which falls back to lexical similarity)."
        )
        raise MemoryConfigError(msg)
    if k <= 0:
        return []
    if not query:
        return (yield from recent_plan(ns, k))
    (items,) = yield [SearchOp(ns.examples, query=query, limit=k)]
    return chronological([example_from_value(i.key, i.value) for i in items])


def diverse_plan(
    ns: UserNamespaces,
    query: str | None,
    k: int,
    fetch_k: int,
    *,
    has_index: bool,
    lambda_mult: float,
) -> Plan[list[PreferenceExample]]:
    """MMR over a pool of `fetch_k` candidates (nearest `query`, or the newest), oldest first."""
    if k <= 0:
        return []
    pool_size = max(fetch_k, k)
    if has_index and query:
        (items,) = yield [SearchOp(ns.examples, query=query, limit=pool_size)]
        pool = [example_from_value(i.key, i.value) for i in items]
    else:
        pool = yield from recent_plan(ns, pool_size)
    if len(pool) <= k:
        return chronological(pool)
    prompts = [e.prompt for e in pool]
    if has_index:
        vectors, query_vector = yield Embed(prompts, query or None)
    else:
        lexical = lexical_vectors([*prompts, query or ""])
        vectors, query_vector = lexical[:-1], (lexical[-1] if query else None)
    return mmr_select(pool, vectors, query_vector, k, lambda_mult=lambda_mult)


def function_plan(
    ns: UserNamespaces, function: SelectionFunction, query: str | None, k: int
) -> Plan[list[PreferenceExample]]:
    """Run a user strategy over all the user's examples; keep its first `k`, oldest first."""
    if k <= 0:
        return []
    examples = yield from list_plan(ns)
    if not examples:
        return []
    name = getattr(function, "__name__", repr(function))
    returned = function(examples, query, k)
    try:
        chosen: list[object] = list(returned)
    except TypeError as e:
        msg = f"The selection strategy {name} must return a sequence, got {returned!r:.80}."
        raise MemoryConfigError(msg) from e
    picked = [e for e in chosen if isinstance(e, PreferenceExample)]
    if len(picked) != len(chosen):
        bad = next(e for e in chosen if not isinstance(e, PreferenceExample))
        msg = (
            f"The selection strategy {name} must return PreferenceExample objects (a subset "
            f"of the examples it was given), got a {type(bad).__name__}: {bad!r:.80}."
        )
        raise MemoryConfigError(msg)
    return chronological(picked[:k])
