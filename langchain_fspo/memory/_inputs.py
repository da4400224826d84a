"""Validation of what callers pass to `PreferenceMemory` (before anything is written)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langchain_fspo.errors import InvalidExampleError, MemoryConfigError
from langchain_fspo.memory._layout import new_record_id
from langchain_fspo.memory._records import check_metadata, check_text
from langchain_fspo.preference import PreferenceExample

__all__ = ["check_k", "check_query", "check_record_id", "new_example", "new_examples"]

_EXAMPLE_FIELDS = {"prompt", "chosen", "rejected"}


def new_example(
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


def check_record_id(record_id: object) -> str:
    if not isinstance(record_id, str) or not record_id:
        msg = (
            f"An example id must be a non-empty str, got {type(record_id).__name__} {record_id!r}."
        )
        raise InvalidExampleError(msg)
    return record_id


def new_examples(
    examples: Iterable[PreferenceExample | Mapping[str, Any]],
) -> list[PreferenceExample]:
    """Validate and stamp many examples, in order (the last is the newest)."""
    stamped = []
    for raw in examples:
        fields = raw.model_dump() if isinstance(raw, PreferenceExample) else dict(raw)
        fields.pop("id", None)
        fields.pop("created_at", None)
        metadata = fields.pop("metadata", None) or {}
        unknown = set(fields) - _EXAMPLE_FIELDS
        if unknown:
            msg = (
                f"Unknown example fields {sorted(unknown)}; use prompt, chosen, rejected, metadata."
            )
            raise InvalidExampleError(msg)
        stamped.append(
            new_example(
                fields.get("prompt"), fields.get("chosen"), fields.get("rejected"), metadata
            )
        )
    return stamped


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
