"""`GenerationParams` -> the arguments of `InferenceClient` for TGI's two routes.

Chat prompts go to `/v1/chat/completions` (`InferenceClient.chat_completion`), paper prompts
to `/generate` (`InferenceClient.text_generation`). Every parameter set is sent; a parameter
the route would drop silently raises `UnsupportedParameterError` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_fspo.backends._tgi_wire import tgi_grammar
from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.errors import UnsupportedParameterError

__all__ = ["chat_arguments", "generate_arguments"]

_CHAT_ARGS = frozenset(
    {
        "tools",
        "tool_choice",
        "tool_prompt",
        "response_format",
        "logprobs",
        "top_logprobs",
        "n",
        "logit_bias",
    }
)
"""`extra` keys that `InferenceClient.chat_completion` takes by name; the rest go in the body."""

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


def chat_arguments(
    adapter: str | None, params: GenerationParams, *, stream: bool
) -> dict[str, Any]:
    """Keyword arguments of `InferenceClient.chat_completion` for one call (no messages)."""
    unsupported = [
        name for name in ("top_k", "repetition_penalty") if getattr(params, name) is not None
    ]
    if unsupported:
        msg = (
            f"TGI's /v1/chat/completions has no {', '.join(unsupported)} and would ignore "
            "it silently. Remove it, or use a prompt format with style='paper' (sent to "
            "/generate, which takes top_k and repetition_penalty)."
        )
        raise UnsupportedParameterError(msg)
    args: dict[str, Any] = {
        "model": adapter if adapter is not None else "tgi",
        "temperature": params.temperature,
        "max_tokens": params.max_tokens,
        "top_p": params.top_p,
        "seed": params.seed,
        "stop": params.stop,
        "frequency_penalty": params.frequency_penalty,
        "presence_penalty": params.presence_penalty,
    }
    extra_body: dict[str, Any] = {}
    for key, value in params.extra.items():
        if key in _CHAT_ARGS:
            args[key] = value
        else:
            extra_body[key] = value
    if isinstance(args.get("response_format"), Mapping):
        args["response_format"] = tgi_grammar(args["response_format"])
    if extra_body:
        args["extra_body"] = extra_body
    if stream:
        args["stream"] = True
        args["stream_options"] = {"include_usage": True}
    return args


def generate_arguments(
    adapter: str | None, params: GenerationParams, *, stream: bool
) -> dict[str, Any]:
    """Keyword arguments of `InferenceClient.text_generation` for one call (no prompt)."""
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
        "stream": stream,
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
    return args
