"""Validation of what callers pass to `PreferenceMemory` (before anything is written)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langchain_fspo.errors import InvalidExampleError, MemoryConfigError
from langchain_fspo.memory._layout import new_record_id
from langchain_fspo.memory._records import check_metadata, check_text, is_blank
from langchain_fspo.preference import PreferenceExample

__all__ = [
    "MAX_EXAMPLE_ID_CHARS",
    "check_k",
    "check_query",
    "check_record_id",
    "new_example",
    "new_examples",
]

MAX_EXAMPLE_ID_CHARS = 256
"""Longest example id a caller may choose, in characters."""

_EXAMPLE_FIELDS = {"prompt", "chosen", "rejected"}


def check_record_id(record_id: object) -> str:
    """Return `record_id` if it is a usable example or choice id, else raise."""
    if not isinstance(record_id, str) or is_blank(record_id):
        msg = (
            "An example id must be a non-blank str, "
            f"got {type(record_id).__name__} {record_id!r:.80}."
        )
        raise InvalidExampleError(msg)
    if len(record_id) > MAX_EXAMPLE_ID_CHARS:
        msg = f"An example id is {len(record_id)} characters; the limit is {MAX_EXAMPLE_ID_CHARS}."
        raise InvalidExampleError(msg)
    try:
        record_id.encode("utf-8")
    except UnicodeEncodeError as e:
        msg = f"An example id holds a lone surrogate at index {e.start}; it cannot be stored."
        raise InvalidExampleError(msg) from e
    return record_id


def new_example(
    prompt: object,
    chosen: object,
    rejected: object,
    metadata: Mapping[str, Any],
    example_id: object = None,
) -> PreferenceExample:
    """Validate the fields of a new example; stamp it with `example_id` (or a fresh id) and now."""
    check_text("prompt", prompt)
    check_text("chosen", chosen)
    if rejected is not None:
        check_text("rejected", rejected)
    example = PreferenceExample.create(
        prompt=prompt, chosen=chosen, rejected=rejected, metadata=check_metadata(metadata)
    )
    record_id, created_at = new_record_id()
    if example_id is not None:
        record_id = check_record_id(example_id)
    return example.stamped(record_id, created_at)


def new_examples(
    examples: Iterable[PreferenceExample | Mapping[str, Any]],
) -> tuple[list[PreferenceExample], frozenset[str]]:
    """Validate and stamp many examples, in order (the last is the newest).

    An item's `id`, when it has one, is kept: it makes the write idempotent (see
    `PreferenceMemory.add`). Returns the stamped examples and the ids callers chose.
    """
    stamped = []
    chosen_ids: set[str] = set()
    for raw in examples:
        fields = raw.model_dump() if isinstance(raw, PreferenceExample) else dict(raw)
        example_id = fields.pop("id", None)
        fields.pop("created_at", None)
        metadata = fields.pop("metadata", None) or {}
        unknown = set(fields) - _EXAMPLE_FIELDS
        if unknown:
            msg = (
                f"Unknown example fields {sorted(unknown)}; "
                "use prompt, chosen, rejected, metadata, id."
            )
            raise InvalidExampleError(msg)
        example = new_example(
            fields.get("prompt"), fields.get("chosen"), fields.get("rejected"), metadata, example_id
        )
        if example_id is not None:
            if example.id in chosen_ids:
                msg = f"Example id {example.id!r} appears twice in one write; ids must be unique."
                raise InvalidExampleError(msg)
            chosen_ids.add(str(example.id))
        stamped.append(example)
    return stamped, frozenset(chosen_ids)


def check_k(k: object) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        msg = f"`k` must be a non-negative int, got {k!r}."
        raise MemoryConfigError(msg)
    return k


def check_query(query: object) -> str | None:
    if query is not None and not isinstance(query, str):
        msg = f"`query` must be a str or None, got {type(query).__name__}."
        raise MemoryConfigError(msg)
    return query
