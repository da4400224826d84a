"""The values `PreferenceMemory` stores: examples, choices, the manifest, the description."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from langchain_fspo.errors import InvalidExampleError
from langchain_fspo.preference import MAX_TEXT_CHARS, PreferenceExample

__all__ = [
    "CHOICES",
    "RECORD_SCHEMA",
    "Choice",
    "ChoiceRecord",
    "Manifest",
    "check_metadata",
    "check_text",
    "example_from_value",
    "example_to_value",
]

RECORD_SCHEMA = 1
"""Version of the stored value layout; written into every value."""

Choice = Literal["a", "b", "tie", "neither"]
CHOICES: tuple[str, ...] = get_args(Choice)

RECENT_CAP = 128
"""How many of the newest example ids the manifest keeps (the `recent` fast path)."""


def check_text(name: str, value: object) -> str:
    """Return `value` if it is a usable preference text, else raise `InvalidExampleError`."""
    if not isinstance(value, str):
        msg = f"`{name}` must be a str, got {type(value).__name__}."
        raise InvalidExampleError(msg)
    if not value.strip():
        msg = f"`{name}` must be non-empty (got {value!r})."
        raise InvalidExampleError(msg)
    if len(value) > MAX_TEXT_CHARS:
        msg = (
            f"`{name}` is {len(value)} characters long; "
            f"the limit is MAX_TEXT_CHARS={MAX_TEXT_CHARS}."
        )
        raise InvalidExampleError(msg)
    return value


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return `metadata` as a plain dict if it survives a JSON round trip unchanged."""
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as e:
        msg = (
            f"Example metadata must be JSON-serialisable: {e}. "
            "Convert values to str/int/float/bool/None/list/dict."
        )
        raise InvalidExampleError(msg) from e
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
    """Rebuild the example stored under `key`."""
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


@dataclass(slots=True)
class Manifest:
    """Small per-user item kept in step with the examples: the `recent` fast path and counters.

    `recent` holds up to `RECENT_CAP` of the newest example ids, oldest first; `count` is the
    number of examples; `revision` grows on every change (it keys the description cache).
    """

    recent: list[str] = field(default_factory=list)
    count: int = 0
    revision: int = 0

    @classmethod
    def from_value(cls, value: Mapping[str, Any] | None) -> Manifest:
        """Read a stored manifest (None: the user has none yet)."""
        if value is None:
            return cls()
        return cls(
            recent=list(value.get("recent", [])),
            count=int(value.get("count", 0)),
            revision=int(value.get("revision", 0)),
        )

    def to_value(self) -> dict[str, Any]:
        """The JSON value stored for the manifest."""
        return {
            "schema": RECORD_SCHEMA,
            "recent": self.recent,
            "count": self.count,
            "revision": self.revision,
        }

    def added(self, ids: list[str]) -> Manifest:
        """The manifest after adding examples with `ids` (newer than every stored one)."""
        recent = sorted({*self.recent, *ids})[-RECENT_CAP:]
        return Manifest(recent, self.count + len(ids), self.revision + 1)

    def removed(self, example_id: str) -> Manifest:
        """The manifest after deleting one stored example."""
        recent = [i for i in self.recent if i != example_id]
        return Manifest(recent, max(self.count - 1, 0), self.revision + 1)

    @property
    def complete(self) -> bool:
        """Whether `recent` lists every example."""
        return len(self.recent) >= self.count

    def needs_refill(self) -> bool:
        """Whether deletions left `recent` too short to serve typical `k` without a full scan."""
        return not self.complete and len(self.recent) < RECENT_CAP // 2
