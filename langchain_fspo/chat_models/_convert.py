"""Backend results -> LangChain results: `Generation` -> `ChatResult`, chunks -> message chunks.

The answer is parsed with `PromptFormat.parse_completion` (format headers removed; under RAT
the user description goes to `response_metadata["user_description"]`), also while streaming
(`CompletionStreamParser`). Response metadata says which adapter, user and examples answered.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ToolCall,
    ToolCallChunk,
    UsageMetadata,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from langchain_fspo.backends.base import Generation, GenerationChunk
from langchain_fspo.chat_models._call import PreparedCall
from langchain_fspo.chat_models._streaming import CompletionStreamParser
from langchain_fspo.prompt_format import ParsedCompletion, PromptFormat

__all__ = ["StreamConverter", "chat_result", "response_metadata", "usage_metadata"]


def usage_metadata(
    input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None = None
) -> UsageMetadata | None:
    """LangChain's usage record, or None when the backend did not report both counts.

    `cached_tokens` (prompt tokens the server read from its prefix cache, when it says)
    becomes `input_token_details["cache_read"]`.

    Example:
        >>> usage_metadata(3, 4)
        {'input_tokens': 3, 'output_tokens': 4, 'total_tokens': 7}
        >>> usage_metadata(300, 4, cached_tokens=256)["input_token_details"]
        {'cache_read': 256}
        >>> usage_metadata(None, 4) is None
        True
    """
    if input_tokens is None or output_tokens is None:
        return None
    usage = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
    if cached_tokens is not None:
        usage["input_token_details"] = {"cache_read": cached_tokens}
    return usage


def response_metadata(
    call: PreparedCall,
    parsed: ParsedCompletion,
    *,
    finish_reason: str | None,
    model_name: str | None,
    backend_name: str,
    base_model_id: str | None,
) -> dict[str, Any]:
    """What answered and with which of the user's examples (`AIMessage.response_metadata`)."""
    metadata: dict[str, Any] = {
        "model_name": call.adapter or model_name or base_model_id,
        "adapter": call.adapter,
        "user_id": call.user_id,
        "example_ids": call.prompt.example_ids,
        "num_shots": len(call.prompt.shots),
        "dropped_shots": call.prompt.dropped,
        "prompt_style": call.prompt.style,
        "finish_reason": finish_reason,
        "backend": backend_name,
    }
    if parsed.user_description is not None:
        metadata["user_description"] = parsed.user_description
    return metadata


def chat_result(
    call: PreparedCall, generation: Generation, fmt: PromptFormat, backend_name: str
) -> ChatResult:
    """The `ChatResult` of a finished generation.

    The generated token ids, when the backend reports them, are `response_metadata["token_ids"]`.
    """
    parsed = fmt.parse_completion(generation.text)
    metadata = response_metadata(
        call,
        parsed,
        finish_reason=generation.finish_reason,
        model_name=generation.model_name,
        backend_name=backend_name,
        base_model_id=fmt.base_model_id,
    )
    if generation.token_ids is not None:
        metadata["token_ids"] = generation.token_ids
    message = AIMessage(
        content=parsed.response,
        response_metadata=metadata,
        usage_metadata=usage_metadata(
            generation.input_tokens, generation.output_tokens, generation.cached_tokens
        ),
        tool_calls=[
            ToolCall(name=c["name"], args=c["args"], id=c.get("id")) for c in generation.tool_calls
        ],
    )
    return ChatResult(generations=[ChatGeneration(message=message)])


_CARRIED = ("finish_reason", "input_tokens", "output_tokens", "model_name", "cached_tokens")
"""`GenerationChunk` fields the last chunk reports (the latest value sent wins)."""


class StreamConverter:
    """Turns one call's `GenerationChunk`s into `ChatGenerationChunk`s.

    `feed` each backend chunk (None: nothing safe to emit yet), then `last()` gives the final
    chunk with the answer's tail, the response metadata and the usage.
    """

    def __init__(self, call: PreparedCall, fmt: PromptFormat, backend_name: str) -> None:
        self._call = call
        self._format = fmt
        self._backend_name = backend_name
        self._parser = CompletionStreamParser(fmt)
        self._state: dict[str, Any] = {}

    def feed(self, chunk: GenerationChunk) -> ChatGenerationChunk | None:
        """The message chunk for `chunk`'s text and tool-call pieces, if any."""
        for key in _CARRIED:
            value = getattr(chunk, key)
            if value is not None:
                self._state[key] = value
        piece = self._parser.feed(chunk.text)
        tool_chunks = [
            ToolCallChunk(
                name=c.get("name"), args=c.get("args"), id=c.get("id"), index=c.get("index")
            )
            for c in chunk.tool_call_chunks
        ]
        if not piece and not tool_chunks:
            return None
        return ChatGenerationChunk(
            message=AIMessageChunk(content=piece, tool_call_chunks=tool_chunks)
        )

    def last(self) -> ChatGenerationChunk:
        """The final chunk: the rest of the answer, metadata and usage."""
        tail, parsed = self._parser.finish()
        state = self._state
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=tail,
                response_metadata=response_metadata(
                    self._call,
                    parsed,
                    finish_reason=state.get("finish_reason"),
                    model_name=state.get("model_name"),
                    backend_name=self._backend_name,
                    base_model_id=self._format.base_model_id,
                ),
                usage_metadata=usage_metadata(
                    state.get("input_tokens"),
                    state.get("output_tokens"),
                    state.get("cached_tokens"),
                ),
                chunk_position="last",
            )
        )
