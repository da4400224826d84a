"""Output schemas of the pipeline's prompts and the strict parsers that enforce them.

A model's answer is accepted only if it is exactly what the prompt asked for: for JSON outputs, one
JSON object (optionally inside a single Markdown code fence) that validates against the pydantic
schema with no extra keys; for text outputs, non-empty text under the record size limit. Anything
else raises `OutputParseError`, and the runner retries with a repair message, then counts a failure.
Nothing is ever guessed out of a malformed answer.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from fspo_train.synth.errors import OutputParseError
from langchain_fspo.preference import MAX_TEXT_CHARS

__all__ = [
    "JsonOutput",
    "OutputParser",
    "PairLabel",
    "PersonaAddition",
    "PersonaOut",
    "QuestionsOut",
    "TextOutput",
    "ViewsOut",
]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
_FENCE_RE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n(?P<body>.*)\n\s*```$", re.DOTALL)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonaOut(_Out):
    """A seed persona written from a combination of traits."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Text


class QuestionsOut(_Out):
    """A batch of new questions."""

    questions: list[Text] = Field(min_length=1, max_length=100)


class ViewsOut(_Out):
    """Distinct viewpoints from which a question can be answered."""

    views: list[Text] = Field(min_length=1, max_length=50)


class PairLabel(_Out):
    """A user-aware pairwise preference label."""

    preferred: Literal["A", "B"]
    description_explains_choice: bool
    rationale: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] = ""


class PersonaAddition(_Out):
    """Text appended to a persona so that it explains the user's choices."""

    addition: Text


@cache
def _schema_json(schema: type[BaseModel]) -> str:
    return json.dumps(schema.model_json_schema(), sort_keys=True)


class OutputParser(Protocol):
    """Turns a model's raw answer into the stage's output dict, or raises `OutputParseError`."""

    kind: str

    def parse(self, text: str) -> dict[str, Any]:
        """Parse `text` strictly."""
        ...


class JsonOutput:
    """Strict parser for one JSON object that validates against `schema`.

    Example:
        >>> JsonOutput(ViewsOut).parse('{"views": ["frugal"]}')
        {'views': ['frugal']}
    """

    kind = "json"

    def __init__(self, schema: type[BaseModel]) -> None:
        """Parse into `schema`."""
        self.schema = schema

    def schema_json(self) -> str:
        """The JSON schema shown to the model in the prompt."""
        return _schema_json(self.schema)

    def response_format(self) -> dict[str, Any]:
        """The OpenAI `response_format` asking the server to decode within the schema."""
        return {
            "type": "json_schema",
            "json_schema": {
                "name": self.schema.__name__,
                "schema": self.schema.model_json_schema(),
                "strict": False,
            },
        }

    def parse(self, text: str) -> dict[str, Any]:
        """Parse `text` (a JSON object, optionally in one code fence) into the schema."""
        body = text.strip()
        fenced = _FENCE_RE.match(body)
        if fenced:
            body = fenced.group("body").strip()
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as e:
            msg = f"the answer is not a JSON object ({e.msg} at character {e.pos})"
            raise OutputParseError(msg) from e
        if not isinstance(obj, dict):
            msg = f"the answer is JSON {type(obj).__name__}, expected an object"
            raise OutputParseError(msg)
        try:
            return self.schema.model_validate(obj).model_dump()
        except ValidationError as e:
            errors = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                for err in e.errors()
            )
            msg = f"the JSON does not match the {self.schema.__name__} schema ({errors})"
            raise OutputParseError(msg) from e


class TextOutput:
    """Parser for a free-text response: stripped, non-empty, under the record size limit.

    Example:
        >>> TextOutput().parse("  Tea is a drink.  ")
        {'text': 'Tea is a drink.'}
    """

    kind = "text"

    def __init__(self, max_chars: int = MAX_TEXT_CHARS) -> None:
        """Accept texts of at most `max_chars` characters."""
        self.max_chars = max_chars

    def parse(self, text: str) -> dict[str, Any]:
        """Return `{"text": stripped}` or raise `OutputParseError`."""
        body = text.strip()
        if not body:
            msg = "the answer is empty"
            raise OutputParseError(msg)
        if len(body) > self.max_chars:
            msg = f"the answer has {len(body)} characters; the limit is {self.max_chars}"
            raise OutputParseError(msg)
        return {"text": body}
