"""A prompt and its `GenerationParams` -> the JSON body of a call on one of TGI's two routes.

Chat prompts go to `/v1/chat/completions` (the OpenAI body, with the adapter as `model`),
paper prompts to `/generate` / `/generate_stream` (`{"inputs", "parameters", "stream"}`, the
adapter as `parameters.adapter_id`), as TGI's OpenAPI spec defines them. Every parameter set
is sent, none that is unset (no nulls); a parameter the route would drop silently raises
`UnsupportedParameterError` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_fspo.backends._tgi_wire import tgi_grammar
from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.errors import UnsupportedParameterError

__all__ = ["chat_body", "generate_body"]

_GENERATE_ARGS = frozenset(
    {
        "grammar",
        "truncate",
        "typical_p",
        "watermark",
        "top_n_tokens",
        "best_of",
        "do_sample",
        "decoder_input_details",
        "return_full_text",
    }
)
"""`extra` keys TGI's `/generate` understands (`GenerateParameters`)."""


def _without_none(value: Any) -> Any:
    """`value` with the None entries of its dicts left out, at every depth."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _chat_format(response_format: Any) -> Any:
    """OpenAI's `json_schema` response format as TGI's grammar (`json_object` + `value`)."""
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema") or {}
        return {"type": "json_object", "value": schema.get("schema", {"type": "object"})}
    return tgi_grammar(response_format)


def chat_body(
    messages: list[dict[str, Any]], adapter: str | None, params: GenerationParams, *, stream: bool
) -> dict[str, Any]:
    """The `/v1/chat/completions` body: `model` is the adapter id (`"tgi"`: the base model).

    Example:
        >>> chat_body([], "org/a", GenerationParams(max_tokens=5), stream=False)
        {'model': 'org/a', 'messages': [], 'max_tokens': 5, 'stream': False}
    """
    if params.top_k is not None or params.repetition_penalty is not None:
        unsupported = [n for n in ("top_k", "repetition_penalty") if getattr(params, n) is not None]
        msg = (
            f"TGI's /v1/chat/completions has no {', '.join(unsupported)} and would ignore "
            "it silently. Remove it, or use a prompt format with style='paper' (sent to "
            "/generate, which takes top_k and repetition_penalty)."
        )
        raise UnsupportedParameterError(msg)
    body: dict[str, Any] = {"model": adapter if adapter is not None else "tgi"}
    body["messages"] = messages
    body.update(params.set_fields())
    if params.extra:
        body.update(_without_none(params.extra))
        if "response_format" in body:
            body["response_format"] = _chat_format(body["response_format"])
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def generate_body(
    text: str, adapter: str | None, params: GenerationParams, *, stream: bool
) -> dict[str, Any]:
    """The `/generate` (`/generate_stream`) body; `details` are always asked for.

    Example:
        >>> body = generate_body("Hi", "org/a", GenerationParams(temperature=0), stream=False)
        >>> body["inputs"], body["parameters"], body["stream"]
        ('Hi', {'adapter_id': 'org/a', 'details': True, 'do_sample': False}, False)
    """
    if params.presence_penalty is not None:
        msg = (
            "TGI's /generate has no presence_penalty. Remove it, use frequency_penalty or "
            "repetition_penalty, or a prompt format with style='chat' (sent to "
            "/v1/chat/completions, which takes it)."
        )
        raise UnsupportedParameterError(msg)
    args: dict[str, Any] = {
        "adapter_id": adapter,
        "details": True,
        "max_new_tokens": params.max_tokens,
        "top_k": params.top_k,
        "seed": params.seed,
        "stop": params.stop,
        "frequency_penalty": params.frequency_penalty,
        "repetition_penalty": params.repetition_penalty,
    }
    if params.temperature is not None:
        if params.temperature == 0:
            args["do_sample"] = False
        else:
            args["do_sample"] = True
            args["temperature"] = params.temperature
    if params.top_p is not None and params.top_p < 1.0:
        args["top_p"] = params.top_p
    for key, value in params.extra.items():
        if key == "response_format":
            args.setdefault("grammar", tgi_grammar(value))
        elif key in _GENERATE_ARGS:
            args[key] = value
        else:
            msg = f"TGI's /generate has no parameter {key!r}. " + (
                "Tools need a prompt format with style='chat' (/v1/chat/completions)."
                if key in {"tools", "tool_choice", "tool_prompt"}
                else f"It takes: {', '.join(sorted(_GENERATE_ARGS | {'response_format'}))}."
            )
            raise UnsupportedParameterError(msg)
    return {"inputs": text, "parameters": _without_none(args), "stream": stream}
