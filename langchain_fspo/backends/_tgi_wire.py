"""TGI's own wire shapes: the `/generate` answer and `/generate_stream` events, and grammars.

The TGI backend reads TGI's JSON itself (`_json_http`): the chat route with the shared OpenAI
parser (`_openai_wire`), the `/generate` route here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_fspo.backends._http import MalformedResponseError, StreamInterruptedError
from langchain_fspo.backends._openai_wire import error_message, finish_reason
from langchain_fspo.backends.base import Generation, GenerationChunk
from langchain_fspo.errors import InferenceServerError

__all__ = ["GenerateStream", "parse_text_generation", "tgi_grammar"]


def tgi_grammar(response_format: Any) -> Any:
    """OpenAI's `{"type": "json_object"}` has no schema; TGI's grammar needs one.

    Example:
        >>> tgi_grammar({"type": "json_object"})
        {'type': 'json_object', 'value': {'type': 'object'}}
    """
    if (
        isinstance(response_format, Mapping)
        and response_format.get("type") in {"json_object", "json"}
        and "value" not in response_format
    ):
        return {**response_format, "type": "json_object", "value": {"type": "object"}}
    return response_format


def parse_text_generation(payload: Any, adapter: str | None) -> Generation:
    """A `/generate` answer (with `details`) -> `Generation`.

    The answer carries no prompt length (`details.prefill` is empty unless asked for), so
    `input_tokens` is usually None here. An answer without `details.finish_reason` (the
    backend always asks for details) raises `MalformedResponseError`: it may be incomplete.
    A list of answers (some servers wrap the one answer in one) gives its first.
    """
    if isinstance(payload, list) and payload:
        payload = payload[0]
    try:
        details = payload.get("details")
        if not details or details.get("finish_reason") is None:
            msg = f"a /generate answer without details.finish_reason: {payload!r:.200}"
            raise MalformedResponseError(msg)
        prefill = len(details["prefill"]) if details and details.get("prefill") else None
        return Generation(
            text=payload["generated_text"],
            finish_reason=finish_reason(details.get("finish_reason")) if details else None,
            input_tokens=prefill,
            output_tokens=details.get("generated_tokens") if details else None,
            model_name=adapter,
        )
    except (AttributeError, KeyError, TypeError) as e:
        msg = f"a /generate answer without the expected fields ({e!r}): {payload!r:.200}"
        raise MalformedResponseError(msg) from e


class GenerateStream:
    """Turns `/generate_stream` events into `GenerationChunk`s (special tokens dropped)."""

    def __init__(self, adapter: str | None) -> None:
        self.adapter = adapter
        self.done = False
        """Set when the events ended (the final event's `details` tell whether they all came)."""
        self.details: Mapping[str, Any] | None = None

    def feed(self, event: Mapping[str, Any]) -> list[GenerationChunk]:
        """The text of one event's token; the final event's `details` are kept."""
        error = error_message(event)
        if error is not None:
            msg = f"the server sent an error mid-stream: {error}"
            raise InferenceServerError(msg, adapter=self.adapter, retryable=False)
        try:
            token = event["token"]
            if event.get("details") is not None:
                self.details = event["details"]
            if token.get("special") or not token.get("text"):
                return []
            return [GenerationChunk(text=token["text"])]
        except (AttributeError, KeyError, TypeError) as e:
            msg = f"a /generate_stream event without the expected fields ({e!r})"
            raise MalformedResponseError(msg) from e

    def final(self) -> GenerationChunk:
        """The last chunk: finish reason and usage from the final event's `details`.

        Raises:
            StreamInterruptedError: The stream ended before its final event.
        """
        if self.details is None:
            msg = "the /generate_stream stream ended before its final event (no details)"
            raise StreamInterruptedError(msg)
        return GenerationChunk(
            text="",
            finish_reason=finish_reason(self.details.get("finish_reason")),
            input_tokens=self.details.get("input_length"),
            output_tokens=self.details.get("generated_tokens"),
            model_name=self.adapter,
        )
