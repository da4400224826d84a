"""The values `PreferenceMemory` stores (examples, choices) and the checks on what goes in them."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from langchain_fspo.errors import InvalidExampleError
from langchain_fspo.preference import MAX_TEXT_CHARS, PreferenceExample

__all__ = [
    "CHOICES",
    "MAX_METADATA_BYTES",
    "RECORD_SCHEMA",
    "Choice",
    "ChoiceRecord",
    "check_metadata",
    "check_text",
    "example_from_value",
    "example_to_value",
    "is_blank",
]

RECORD_SCHEMA = 1
"""Version of the stored value layout; written into every value."""

Choice = Literal["a", "b", "tie", "neither"]
CHOICES: tuple[str, ...] = get_args(Choice)

MAX_METADATA_BYTES = 16_384
"""Largest metadata accepted: its JSON text, UTF-8 encoded, in bytes (16 KiB)."""


def is_blank(text: str) -> bool:
    r"""Whether `text` shows nothing: only whitespace and invisible format characters.

    Zero-width spaces and joiners, the byte-order mark and other Unicode "format" characters
    (category Cf) count as blank, like whitespace.

    Example:
        >>> is_blank("\u200b \ufeff"), is_blank("a\u200b")
        (True, False)
    """
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text)


def _lone_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in `text` (not encodable as UTF-8), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def check_text(name: str, value: object) -> str:
    """Return `value` if it is a usable preference text, else raise `InvalidExampleError`.

    A usable text is a str that is not blank (`is_blank`), holds no lone surrogate (it must
    encode as UTF-8, which every store needs) and has at most `MAX_TEXT_CHARS` characters.
    """
    if not isinstance(value, str):
        msg = f"`{name}` must be a str, got {type(value).__name__}."
        raise InvalidExampleError(msg)
    if is_blank(value):
        msg = f"`{name}` must show some text (got {value[:40]!r}: whitespace or invisible only)."
        raise InvalidExampleError(msg)
    if len(value) > MAX_TEXT_CHARS:
        msg = (
            f"`{name}` is {len(value)} characters long; "
            f"the limit is MAX_TEXT_CHARS={MAX_TEXT_CHARS}."
        )
        raise InvalidExampleError(msg)
    position = _lone_surrogate(value)
    if position is not None:
        msg = (
            f"`{name}` holds a lone surrogate {value[position]!r} at index {position}, which "
            "cannot be stored as UTF-8; decode the text properly (or drop that character)."
        )
        raise InvalidExampleError(msg)
    return value


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return `metadata` as a plain dict if it survives a JSON round trip unchanged.

    Its JSON text must encode as UTF-8 (no lone surrogates) within `MAX_METADATA_BYTES`.
    """
    try:
        text = json.dumps(dict(metadata), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        msg = (
            f"Example metadata must be JSON-serialisable: {e}. "
            "Convert values to str/int/float/bool/None/list/dict."
        )
        raise InvalidExampleError(msg) from e
    position = _lone_surrogate(text)
    if position is not None:
        msg = "Example metadata holds a lone surrogate, which cannot be stored as UTF-8."
        raise InvalidExampleError(msg)
    size = len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        msg = (
            f"Example metadata is {size} bytes as JSON; the limit is "
            f"MAX_METADATA_BYTES={MAX_METADATA_BYTES}. Keep provenance small (ids, tags) and "
            "store large payloads elsewhere."
        )
        raise InvalidExampleError(msg)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value)


def example_to_value(example: PreferenceExample) -> dict[str, Any]:
    """The JSON value stored for a stamped example (its id is the item key)."""
    if example.created_at is None:
        msg = "Only stamped examples (with `created_at`) can be stored."
        raise InvalidExampleError(msg)
    return {
        "schema": RECORD_SCHEMA,
        "prompt": example.prompt,
        "chosen": example.chosen,
        "rejected": example.rejected,
        "created_at": _iso(example.created_at),
        "metadata": example.metadata,
    }


def example_from_value(key: str, value: Mapping[str, Any]) -> PreferenceExample:
    """Rebuild the example stored under `key` (validated again: stores can be shared)."""
    return PreferenceExample(
        prompt=value["prompt"],
        chosen=value["chosen"],
        rejected=value.get("rejected"),
        id=key,
        created_at=_parse_time(value.get("created_at")),
        metadata=value.get("metadata") or {},
    )


class ChoiceRecord(BaseModel):
    """One choice a user made between two candidate responses (`PreferenceMemory.record_choice`).

    `choice` is `"a"` or `"b"` (a preference: also stored as an example with the same id),
    `"tie"` or `"neither"` (kept for the record and for export, never used as a shot).

    Example:
        >>> ChoiceRecord(prompt="Hi?", a="Hello.", b="Yo.", choice="tie").example is None
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str
    """The question both candidates answered."""
    a: str
    """The first candidate, as shown to the user."""
    b: str
    """The second candidate."""
    choice: Choice
    """What the user picked."""
    id: str | None = None
    """Record id; equals the id of the stored example for an "a"/"b" choice."""
    created_at: datetime | None = None
    """When the choice was recorded (UTC)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form provenance (JSON-serialisable)."""

    @property
    def example(self) -> PreferenceExample | None:
        """The preference this choice expresses: None for a tie or "neither"."""
        if self.choice == "a":
            chosen, rejected = self.a, self.b
        elif self.choice == "b":
            chosen, rejected = self.b, self.a
        else:
            return None
        return PreferenceExample(
            prompt=self.prompt,
            chosen=chosen,
            rejected=rejected,
            id=self.id,
            created_at=self.created_at,
            metadata=self.metadata,
        )

    def to_value(self) -> dict[str, Any]:
        """The JSON value stored for this record (its id is the item key)."""
        return {
            "schema": RECORD_SCHEMA,
            "prompt": self.prompt,
            "a": self.a,
            "b": self.b,
            "choice": self.choice,
            "created_at": _iso(self.created_at) if self.created_at else None,
            "metadata": self.metadata,
        }

    @classmethod
    def from_value(cls, key: str, value: Mapping[str, Any]) -> ChoiceRecord:
        """Rebuild the record stored under `key`."""
        return cls(
            prompt=value["prompt"],
            a=value["a"],
            b=value["b"],
            choice=value["choice"],
            id=key,
            created_at=_parse_time(value.get("created_at")),
            metadata=value.get("metadata") or {},
        )
