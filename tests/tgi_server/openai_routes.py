"""The TGI test server's OpenAI-compatible routes (`/v1/models`, chat and completions).

The adapter rules are TGI's or, by `flavor`, vLLM's and SGLang's (see `server.py`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.prompt_format import RenderedPrompt
from tests.tgi_server.engine import DEFAULT_MAX_TOKENS, Engine, Outcome
from tests.tgi_server.faults import Fault
from tests.tgi_server.wire import LoggedRequest

Flavor = Literal["tgi", "vllm", "sglang"]


class OpenAIRoutes(Engine):
    """The `/v1` routes (see the module docstring)."""

    model_id: str
    adapters: set[str]
    flavor: Flavor

    def _models(
        self, handler: BaseHTTPRequestHandler, entry: LoggedRequest, body: Any, fault: Fault | None
    ) -> None:
        created = int(time.time())
        if self.flavor == "tgi":
            model = {
                "id": self.model_id,
                "object": "model",
                "created": created,
                "owned_by": self.model_id,
            }
            self._send_json(handler, entry, 200, model, schema="ModelInfo", fault=fault)
            return
        owner = self.flavor
        data = [
            {
                "id": self.model_id,
                "object": "model",
                "created": created,
                "owned_by": owner,
                "root": self.model_id,
                "parent": None,
            }
        ]
        for name in sorted(self.adapters):
            served = f"{self.model_id}:{name}" if self.flavor == "sglang" else name
            data.append(
                {
                    "id": served,
                    "object": "model",
                    "created": created,
                    "owned_by": owner,
                    "root": name,
                    "parent": self.model_id,
                }
            )
        self._send_json(
            handler, entry, 200, {"object": "list", "data": data}, schema=None, fault=fault
        )

    # ------------------------------------------------------------------ adapters

    def _adapter_from_model(self, model: str | None) -> tuple[str | None, str | None]:
        """(adapter to run, error message) for a `/v1` request's `model`."""
        if self.flavor == "tgi":
            if model is None or model == "tgi" or model not in self.adapters:
                return None, None  # TGI: unknown adapter ids silently run the base model
            return model, None
        if model is None or model == self.model_id:
            return None, None
        name = model
        if self.flavor == "sglang":
            base, sep, name = model.partition(":")
            if not sep or base != self.model_id:
                return (
                    None,
                    f"The model `{model}` does not exist (SGLang expects '<base>:<adapter>').",
                )
        if name not in self.adapters:
            return None, f"The model `{model}` does not exist."
        return name, None

    def _openai_error(
        self, handler: BaseHTTPRequestHandler, entry: LoggedRequest, message: str
    ) -> None:
        if self.flavor == "vllm":
            payload: dict[str, Any] = {
                "object": "error",
                "message": message,
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            }
            self._send_json(handler, entry, 404, payload, schema=None)
        else:
            payload = {"error": {"message": message, "type": "BadRequestError", "code": 400}}
            self._send_json(handler, entry, 400, payload, schema=None)

    def _openai_params(self, body: dict[str, Any]) -> GenerationParams:
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        return GenerationParams(
            temperature=body.get("temperature"),
            max_tokens=body.get("max_tokens") or DEFAULT_MAX_TOKENS,
            top_p=body.get("top_p"),
            top_k=body.get("top_k"),  # vLLM / SGLang extension; TGI ignores it
            seed=body.get("seed"),
            stop=stop or None,
            frequency_penalty=body.get("frequency_penalty"),
            presence_penalty=body.get("presence_penalty"),
            repetition_penalty=body.get("repetition_penalty"),
        )

    def _serve_adapter(
        self, handler: BaseHTTPRequestHandler, entry: LoggedRequest, body: dict[str, Any]
    ) -> tuple[bool, str | None]:
        """(False, None) after answering an unknown `model`'s error; else (True, adapter)."""
        adapter, error = self._adapter_from_model(body.get("model"))
        if error is not None:
            self._openai_error(handler, entry, error)
            return False, None
        entry.served_adapter = adapter
        return True, adapter

    def _echo_model(self, body: dict[str, Any]) -> str:
        model = body.get("model")
        return model if model and model != "tgi" else self.model_id

    def _chat(
        self,
        handler: BaseHTTPRequestHandler,
        entry: LoggedRequest,
        body: dict[str, Any],
        fault: Fault | None,
    ) -> None:
        served, adapter = self._serve_adapter(handler, entry, body)
        if not served:
            return
        messages = [
            {"role": m.get("role", "user"), "content": _content_text(m.get("content"))}
            for m in body["messages"]
        ]
        prompt = RenderedPrompt(
            text="\n".join(m["content"] for m in messages),
            messages=messages,
            shots=[],
            style="chat",
        )
        if self._too_long(handler, entry, prompt):
            return
        params = self._openai_params(body)
        model = self._echo_model(body)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "3.3.7-tgi-test-server",
        }
        if fault is not None and fault.kind == "tool_call":
            self._tool_call(
                handler, entry, body, base, self._run_all(prompt, adapter, params), fault
            )
            return
        if not body.get("stream"):
            outcome = self._run_all(prompt, adapter, params)
            response = {
                **base,
                "object": "chat.completion",
                "choices": [_final_choice(outcome, message=_assistant("".join(outcome.pieces)))],
                "usage": _usage(outcome),
            }
            self._send_json(handler, entry, 200, response, schema="ChatCompletion", fault=fault)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[dict[str, Any]]:
            for piece, outcome in self._run(prompt, adapter, params):
                yield {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": piece},
                            "logprobs": None,
                            "finish_reason": _openai_finish(outcome.finish_reason)
                            if outcome
                            else None,
                        }
                    ],
                    "usage": None,
                }
                if outcome is not None and include_usage:
                    yield _usage_chunk(base, outcome)

        self._send_sse(
            handler, entry, events(), schema="ChatCompletionChunk", done=True, fault=fault
        )

    def _tool_call(
        self,
        handler: BaseHTTPRequestHandler,
        entry: LoggedRequest,
        body: dict[str, Any],
        base: dict[str, Any],
        outcome: Outcome,
        fault: Fault,
    ) -> None:
        call_id = f"call_{uuid.uuid4().hex[:8]}"
        if not body.get("stream"):
            function = {
                "name": fault.tool_name,
                "arguments": fault.tool_arguments,
                "description": None,
            }
            message = {
                "role": "assistant",
                "tool_calls": [{"id": call_id, "type": "function", "function": function}],
            }
            response = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": _usage(outcome),
            }
            self._send_json(handler, entry, 200, response, schema="ChatCompletion")
            return
        text = json.dumps(fault.tool_arguments)
        pieces = [text[: len(text) // 2], text[len(text) // 2 :]]
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[dict[str, Any]]:
            for i, piece in enumerate(["", *pieces]):
                function = {"name": fault.tool_name if i == 0 else None, "arguments": piece}
                delta = {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call_id if i == 0 else "",
                            "type": "function",
                            "function": function,
                        }
                    ],
                }
                yield {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
                    ],
                    "usage": None,
                }
            final = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
            yield {**base, "object": "chat.completion.chunk", "choices": [final], "usage": None}
            if include_usage:
                yield _usage_chunk(base, outcome)

        self._send_sse(
            handler, entry, events(), schema="ChatCompletionChunk", done=True, fault=None
        )

    def _completions(
        self,
        handler: BaseHTTPRequestHandler,
        entry: LoggedRequest,
        body: dict[str, Any],
        fault: Fault | None,
    ) -> None:
        served, adapter = self._serve_adapter(handler, entry, body)
        if not served:
            return
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        if len(prompts) != 1:
            message = "This test server takes one prompt per request."
            self._send_error(handler, entry, 422, message)
            return
        prompt = RenderedPrompt(
            text=prompts[0],
            messages=[{"role": "user", "content": prompts[0]}],
            shots=[],
            style="paper",
        )
        if self._too_long(handler, entry, prompt):
            return
        params = self._openai_params(body)
        base = {
            "id": f"cmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": self._echo_model(body),
            "system_fingerprint": "3.3.7-tgi-test-server",
            "object": "text_completion",
        }
        if not body.get("stream"):
            outcome = self._run_all(prompt, adapter, params)
            response = {
                **base,
                "choices": [_final_choice(outcome, text="".join(outcome.pieces))],
                "usage": _usage(outcome),
            }
            self._send_json(handler, entry, 200, response, schema="CompletionFinal", fault=fault)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[dict[str, Any]]:
            for piece, outcome in self._run(prompt, adapter, params):
                yield {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "text": piece,
                            "logprobs": None,
                            "finish_reason": _openai_finish(outcome.finish_reason)
                            if outcome
                            else "",
                        }
                    ],
                }
                if outcome is not None and include_usage:  # vLLM's extension (TGI sends none)
                    yield {**base, "choices": [], "usage": _usage(outcome)}

        self._send_sse(handler, entry, events(), schema="Chunk", done=True, fault=fault)


def _openai_finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _usage(outcome: Outcome) -> dict[str, int]:
    return {
        "prompt_tokens": outcome.input_tokens,
        "completion_tokens": outcome.output_tokens,
        "total_tokens": outcome.input_tokens + outcome.output_tokens,
    }


def _assistant(content: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def _final_choice(outcome: Outcome, **content: Any) -> dict[str, Any]:
    """The one choice of a non-streamed answer (`message=` for chat, `text=` for completions)."""
    finish = _openai_finish(outcome.finish_reason)
    return {"index": 0, **content, "logprobs": None, "finish_reason": finish}


def _usage_chunk(base: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The last chat chunk of a stream with `stream_options.include_usage`: usage, no choices."""
    return {**base, "object": "chat.completion.chunk", "choices": [], "usage": _usage(outcome)}


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))
