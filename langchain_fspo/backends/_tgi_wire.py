"""TGI's wire shapes -> `Generation` / `GenerationChunk` (chat and `/generate` streams)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_fspo.backends._http import MalformedResponseError, StreamInterruptedError
from langchain_fspo.backends.base import GenerationChunk

_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def finish_reason(reason: Any) -> str | None:
    """TGI's finish reasons (`eos_token`, `stop_sequence`) in OpenAI's words (`stop`)."""
    if reason is None:
        return None
    return _FINISH.get(str(reason), str(reason))


def tool_calls(raw: Any) -> list[dict[str, Any]]:
    """OpenAI/TGI tool calls -> `{"id", "name", "args"}` (TGI sends arguments as an object)."""
    calls = []
    for call in raw or []:
        function = call.function
        arguments = function.arguments
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as e:
                msg = f"tool call {function.name!r} has arguments that are not JSON: {arguments!r}"
                raise MalformedResponseError(msg) from e
        calls.append({"id": call.id, "name": function.name, "args": arguments or {}})
    return calls


def tgi_grammar(response_format: Any) -> Any:
    """OpenAI's `{"type": "json_object"}` has no schema; TGI's grammar needs one."""
    if (
        isinstance(response_format, Mapping)
        and response_format.get("type") in {"json_object", "json"}
        and "value" not in response_format
    ):
        return {**response_format, "type": "json_object", "value": {"type": "object"}}
    return response_format


class ChatStreamState:
    """Turns `ChatCompletionStreamOutput` events into `GenerationChunk`s."""

    def __init__(self, adapter: str | None) -> None:
        self.adapter = adapter
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def feed(self, event: Any) -> Sequence[GenerationChunk]:
        try:
            self.model = event.model or self.model
            if event.usage is not None:
                self.input_tokens = event.usage.prompt_tokens
                self.output_tokens = event.usage.completion_tokens
            out = []
            for choice in event.choices or []:
                delta = choice.delta
                tool_chunks = [
                    {
                        "index": call.index,
                        "id": call.id,
                        "name": call.function.name,
                        "args": call.function.arguments
                        if isinstance(call.function.arguments, str)
                        else json.dumps(call.function.arguments),
                    }
                    for call in (delta.tool_calls or [])
                ]
                if delta.content or tool_chunks:
                    out.append(
                        GenerationChunk(text=delta.content or "", tool_call_chunks=tool_chunks)
                    )
                if choice.finish_reason:
                    self.finish_reason = finish_reason(choice.finish_reason)
        except (AttributeError, TypeError) as e:
            msg = f"a chat stream event without the expected fields ({e!r})"
            raise MalformedResponseError(msg) from e
        return out

    def final(self) -> GenerationChunk:
        if self.finish_reason is None:
            msg = "the chat stream ended before its final event (no finish_reason)"
            raise StreamInterruptedError(msg)
        return GenerationChunk(
            text="",
            finish_reason=self.finish_reason,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            model_name=self.model or self.adapter,
        )


class GenerateStreamState:
    """Turns `/generate_stream` events into `GenerationChunk`s (special tokens dropped)."""

    def __init__(self, adapter: str | None) -> None:
        self.adapter = adapter
        self.details: Any = None

    def feed(self, event: Any) -> Sequence[GenerationChunk]:
        try:
            token = event.token
            if event.details is not None:
                self.details = event.details
            if token.special or not token.text:
                return []
            return [GenerationChunk(text=token.text)]
        except AttributeError as e:
            msg = f"a /generate_stream event without the expected fields ({e!r})"
            raise MalformedResponseError(msg) from e

    def final(self) -> GenerationChunk:
        if self.details is None:
            msg = "the /generate_stream stream ended before its final event (no details)"
            raise StreamInterruptedError(msg)
        return GenerationChunk(
            text="",
            finish_reason=finish_reason(self.details.finish_reason),
            input_tokens=self.details.input_length,
            output_tokens=self.details.generated_tokens,
            model_name=self.adapter,
        )
