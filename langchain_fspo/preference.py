"""`PreferenceExample`: one preference a user expressed, the unit every other part exchanges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from langchain_fspo.errors import InvalidExampleError

__all__ = ["MAX_TEXT_CHARS", "PreferenceExample", "check_text", "validate_user_id"]

MAX_TEXT_CHARS = 32_000
"""Longest prompt, chosen or rejected text accepted, in characters (about 8k tokens)."""

MAX_USER_ID_CHARS = 512
"""Longest user id accepted, in characters."""


def validate_user_id(user_id: object) -> str:
    """Return `user_id` if it is a usable user id, else raise `InvalidExampleError`.

    Any non-empty string is valid (e-mail addresses and dots included); the memory encodes
    it before it reaches the store.

    Example:
        >>> validate_user_id("ada@example.com")
        'ada@example.com'
    """
    if not isinstance(user_id, str):
        msg = f"`user_id` must be a str, got {type(user_id).__name__} {user_id!r}."
        raise InvalidExampleError(msg)
    if not user_id:
        msg = "`user_id` must be a non-empty string, got ''."
        raise InvalidExampleError(msg)
    if len(user_id) > MAX_USER_ID_CHARS:
        msg = f"`user_id` is {len(user_id)} characters long; the limit is {MAX_USER_ID_CHARS}."
        raise InvalidExampleError(msg)
    return user_id


def check_text(value: str) -> str:
    """Return `value` if it is a usable preference text, else raise `ValueError`.

    Shared by serving (`PreferenceExample`) and training (`PreferenceRecord`) so that both
    accept exactly the same texts.
    """
    if not value.strip():
        msg = "Preference texts must be non-empty (got only whitespace)."
        raise ValueError(msg)
    if len(value) > MAX_TEXT_CHARS:
        msg = f"A preference text is {len(value)} characters; the limit is {MAX_TEXT_CHARS}."
        raise ValueError(msg)
    return value


class PreferenceExample(BaseModel):
    """One labelled preference: a prompt, the response the user preferred and the one they did not.

    Texts must be non-empty, at most `MAX_TEXT_CHARS` characters, and `chosen` must differ
    from `rejected`. `rejected` may be omitted (a "preferred only" shot).

    Example:
        >>> ex = PreferenceExample(prompt="Review 'Dune'.", chosen="Epic.", rejected="Slow.")
        >>> ex.chosen
        'Epic.'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str
    """The question or instruction the user saw."""
    chosen: str
    """The response the user preferred."""
    rejected: str | None = None
    """The response the user did not prefer, if there was one."""
    id: str | None = None
    """Stable id, set by the memory when the example is stored."""
    created_at: datetime | None = None
    """When the example was stored (UTC), set by the memory."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form provenance: source, domain, annotator, ... (JSON-serialisable)."""

    @field_validator("prompt", "chosen", "rejected")
    @classmethod
    def _check_text(cls, value: str | None) -> str | None:
        return value if value is None else check_text(value)

    @model_validator(mode="after")
    def _check_pair(self) -> PreferenceExample:
        if self.rejected is not None and self.chosen == self.rejected:
            msg = (
                "`chosen` and `rejected` are identical; a preference needs two different responses."
            )
            raise ValueError(msg)
        return self

    @classmethod
    def create(cls, **fields: Any) -> PreferenceExample:
        """Validate `fields` into an example, raising `InvalidExampleError` (not pydantic's)."""
        try:
            return cls(**fields)
        except ValueError as e:
            raise InvalidExampleError(str(e)) from e

    def stamped(self, example_id: str, created_at: datetime | None = None) -> PreferenceExample:
        """Return a copy carrying its storage id and creation time."""
        return self.model_copy(
            update={"id": example_id, "created_at": created_at or datetime.now(UTC)}
        )
