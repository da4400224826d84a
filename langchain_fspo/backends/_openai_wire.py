"""The OpenAI wire format -> `Generation` / `GenerationChunk`, for every server that speaks it.

Both server backends read the same JSON (the OpenAI-compatible backend for vLLM and SGLang,
the TGI backend on TGI's chat route), decoded by `_json_http`. One parser for both:

- chat completions (`choices[0].message`) and text completions (`choices[0].text`), with
  `usage.prompt_tokens` / `usage.completion_tokens`, the prompt tokens read from a prefix cache
  (`usage.prompt_tokens_details.cached_tokens`: vLLM with `--enable-prompt-tokens-details`)
  and the generated token ids (`choices[0].token_ids`: vLLM when asked `return_token_ids`);
- their stream chunks (`choices[i].delta`, `choices[i].text`), an error event mid-stream, and
  the end of the stream;
- tool calls, whose `arguments` are a JSON string (OpenAI, vLLM) or an object (TGI);
- finish reasons in OpenAI's words (TGI's `eos_token` / `stop_sequence` become `stop`).

End-of-answer rule, the same for answers and streams: an answer is complete when it says how
it finished (a `finish_reason`). A body without one, or without the expected fields, raises
`MalformedResponseError`; a stream that ends (cleanly or not) before a chunk with a
`finish_reason` raises `StreamInterruptedError` (`_http` turns both into typed errors).
`data: [DONE]` ends a stream but is not required after a `finish_reason` (TGI's
`/generate_stream` never sends it, and a proxy may drop it): the text is then complete, and only
a usage chunk that would have followed may be missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from langchain_fspo.backends._http import MalformedResponseError, StreamInterruptedError
from langchain_fspo.backends.base import Generation, GenerationChunk
from langchain_fspo.errors import InferenceServerError

__all__ = [
    "CompletionStream",
    "ModelNaming",
    "error_message",
    "finish_reason",
    "parse_completion",
    "token_ids",
    "tool_calls",
    "usage",
]

ModelNaming = Literal["server", "adapter"]
"""Which names the model that answered: the server's `model` field first (TGI, which reports
what it served), or the adapter asked for first (vLLM, SGLang, where `model` is the request's
own value, `"<base>:<adapter>"` on SGLang)."""

_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def finish_reason(reason: Any) -> str | None:
    """A server's finish reason in OpenAI's words (`eos_token`, `stop_sequence` -> `stop`).

    Example:
        >>> finish_reason("eos_token"), finish_reason("tool_calls"), finish_reason(None)
        ('stop', 'tool_calls', None)
    """
    if reason is None:
        return None
    return _FINISH.get(str(reason), str(reason))


def usage(payload: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(prompt, completion, cached prompt) tokens of a body or chunk; Nones without usage.

    Example:
        >>> usage(
        ...     {
        ...         "usage": {
        ...             "prompt_tokens": 300,
        ...             "completion_tokens": 4,
        ...             "prompt_tokens_details": {"cached_tokens": 256},
        ...         }
        ...     }
        ... )
        (300, 4, 256)
        >>> usage({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}), usage({})
        ((3, 4, None), (None, None, None))
    """
    counts = payload.get("usage")
    if not isinstance(counts, Mapping):
        return None, None, None
    details = counts.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return counts.get("prompt_tokens"), counts.get("completion_tokens"), cached


def token_ids(choice: Mapping[str, Any]) -> list[int] | None:
    """The generated token ids vLLM adds to a choice when the request asks `return_token_ids`.

    Example:
        >>> token_ids({"text": "Hi", "token_ids": [13, 7]}), token_ids({"text": "Hi"})
        ([13, 7], None)
    """
    ids = choice.get("token_ids")
    return [int(i) for i in ids] if isinstance(ids, list) else None


def error_message(payload: Mapping[str, Any]) -> str | None:
    """The error message of an error event/body (OpenAI, vLLM or TGI shape), else None.

    Example:
        >>> error_message({"error": {"message": "overloaded"}}), error_message({"id": "x"})
        ('overloaded', None)
    """
    error = payload.get("error")
    if isinstance(error, Mapping):
        return str(error.get("message") or error)
    if error is not None:
        return str(error)
    if payload.get("object") == "error":
        return str(payload.get("message"))
    return None


def tool_calls(raw: Any) -> list[dict[str, Any]]:
    """A message's tool calls -> `{"id", "name", "args"}` (arguments parsed from JSON).

    Example:
        >>> tool_calls([{"id": "c1", "function": {"name": "rate", "arguments": '{"stars": 4}'}}])
        [{'id': 'c1', 'name': 'rate', 'args': {'stars': 4}}]
    """
    calls = []
    for call in raw or []:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as e:
                msg = (
                    f"tool call {function.get('name')!r} has arguments that are not JSON: "
                    f"{arguments!r:.200}"
                )
                raise MalformedResponseError(msg) from e
        calls.append({"id": call.get("id"), "name": function.get("name"), "args": arguments or {}})
    return calls


def _tool_call_chunks(raw: Any) -> list[dict[str, Any]]:
    """A delta's tool-call pieces -> `{"index", "id", "name", "args"}` (`args`: JSON text)."""
    chunks = []
    for call in raw or []:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        chunks.append(
            {
                "index": call.get("index"),
                "id": call.get("id"),
                "name": function.get("name"),
                "args": arguments,
            }
        )
    return chunks


def _model_name(served: Any, adapter: str | None, naming: ModelNaming) -> str | None:
    served_name = str(served) if served else None
    if naming == "adapter":
        return adapter if adapter is not None else served_name
    return served_name or adapter


def parse_completion(
    payload: Any, adapter: str | None, *, chat: bool, naming: ModelNaming
) -> Generation:
    """A chat completion (`chat=True`) or text completion body -> `Generation`.

    Raises:
        MalformedResponseError: The body is not a completion.
    """
    if not isinstance(payload, Mapping):
        msg = f"expected a JSON object, got {payload!r:.200}"
        raise MalformedResponseError(msg)
    try:
        choice = payload["choices"][0]
        if chat:
            message = choice["message"]
            text = message.get("content") or ""
            calls = tool_calls(message.get("tool_calls"))
        else:
            text = choice["text"]
            calls = []
        reason = finish_reason(choice.get("finish_reason"))
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        msg = f"a completion without the expected fields ({e!r}): {payload!r:.200}"
        raise MalformedResponseError(msg) from e
    if reason is None:
        msg = (
            "a completion without a finish_reason: the answer may be incomplete, so it is "
            f"not returned as if it were: {payload!r:.200}"
        )
        raise MalformedResponseError(msg)
    input_tokens, output_tokens, cached = usage(payload)
    return Generation(
        text=text,
        finish_reason=reason,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model_name=_model_name(payload.get("model"), adapter, naming),
        tool_calls=calls,
        token_ids=token_ids(choice),
        cached_tokens=cached,
    )


class CompletionStream:
    """Turns the chunks of one completion stream (chat or text) into `GenerationChunk`s.

    `feed` each chunk, set `done` when the server said the stream is over (`data: [DONE]`,
    or the client's event iterator ended), then `final()` gives the last chunk with the finish
    reason and usage, or raises if no chunk said how the answer finished (module docstring).
    """

    def __init__(self, adapter: str | None, *, chat: bool, naming: ModelNaming) -> None:
        self.adapter = adapter
        self.chat = chat
        self.naming: ModelNaming = naming
        self.done = False
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_tokens: int | None = None

    def feed(self, payload: Mapping[str, Any]) -> list[GenerationChunk]:
        """The text and tool-call pieces of one chunk (usage and finish reason are kept)."""
        error = error_message(payload)
        if error is not None:
            msg = f"the server sent an error mid-stream: {error}"
            raise InferenceServerError(msg, adapter=self.adapter, retryable=False)
        self.model = payload.get("model") or self.model
        input_tokens, output_tokens, cached = usage(payload)
        if input_tokens is not None:
            self.input_tokens, self.output_tokens = input_tokens, output_tokens
            self.cached_tokens = cached
        out = []
        try:
            for choice in payload.get("choices") or []:
                if self.chat:
                    delta = choice.get("delta") or {}
                    text = delta.get("content") or ""
                    tools = _tool_call_chunks(delta.get("tool_calls"))
                else:
                    text, tools = choice.get("text") or "", []
                if text or tools:
                    out.append(GenerationChunk(text=text, tool_call_chunks=tools))
                if choice.get("finish_reason"):
                    self.finish_reason = finish_reason(choice["finish_reason"])
        except (AttributeError, TypeError) as e:
            msg = f"a stream event without the expected fields ({e!r}): {payload!r:.200}"
            raise MalformedResponseError(msg) from e
        return out

    def final(self) -> GenerationChunk:
        """The last chunk: finish reason, usage and the model that answered.

        Raises:
            StreamInterruptedError: No chunk carried a `finish_reason`.
        """
        if self.finish_reason is None:
            ended = "after data: [DONE]" if self.done else "without data: [DONE]"
            msg = f"the stream ended before its final event (no finish_reason; {ended})"
            raise StreamInterruptedError(msg)
        return GenerationChunk(
            text="",
            finish_reason=self.finish_reason,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            model_name=_model_name(self.model, self.adapter, self.naming),
            cached_tokens=self.cached_tokens,
        )
