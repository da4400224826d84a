"""The per-user preference record: one JSONL line per labelled pair.

Schema (JSON object per line; `fspo_train.data.records.PreferenceRecord`):

| field              | type            | required | meaning                                        |
|--------------------|-----------------|----------|------------------------------------------------|
| `user_id`          | string          | yes      | who labelled the pair                          |
| `question`         | string          | yes      | the prompt both responses answer               |
| `chosen`           | string          | yes      | the response the user preferred                |
| `rejected`         | string          | yes      | the response the user did not prefer           |
| `user_description` | string or null  | no       | natural-language description of the user (RAT) |
| `question_id`      | string or null  | no       | groups the same question across users (splits) |
| `provenance`       | object          | no       | source, generator, labeller, dataset row, ...  |
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from langchain_fspo.preference import PreferenceExample, check_text

__all__ = ["PreferenceRecord"]


class PreferenceRecord(BaseModel):
    """One labelled preference of one user, as stored in the training JSONL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: str = Field(min_length=1)
    question: str
    chosen: str
    rejected: str
    user_description: str | None = None
    question_id: str | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)

    @field_validator("question", "chosen", "rejected")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        return check_text(value)

    @model_validator(mode="after")
    def _distinct(self) -> PreferenceRecord:
        if self.chosen == self.rejected:
            msg = "`chosen` equals `rejected`; a preference needs two different responses"
            raise ValueError(msg)
        return self

    def to_example(self) -> PreferenceExample:
        """The record as a serving-side `PreferenceExample` (a shot)."""
        return PreferenceExample(prompt=self.question, chosen=self.chosen, rejected=self.rejected)
