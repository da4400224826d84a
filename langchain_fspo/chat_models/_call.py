"""What one `ChatFSPO` call sends: the user, the adapter, the generation parameters, the prompt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["CONTROL_KWARGS", "GENERATION_FIELDS", "PreparedCall", "generation_params"]

GENERATION_FIELDS = (
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
)
"""`ChatFSPO` fields (and call keywords) that become `GenerationParams` fields of that name."""

CONTROL_KWARGS = frozenset({"user_id", "model", "model_name", "stream"})
"""Call keywords that steer `ChatFSPO` itself and are never sent to the backend."""


@dataclass(frozen=True)
class PreparedCall:
    """Everything one model call needs, resolved from fields, kwargs and config."""

    user_id: str | None
    adapter: str | None
    params: GenerationParams
    prompt: RenderedPrompt


def generation_params(
    defaults: Mapping[str, Any],
    model_kwargs: Mapping[str, Any],
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
) -> GenerationParams:
    """The call's parameters: the model's `defaults`, overridden by the call's `kwargs`.

    Args:
        defaults: The model's `GENERATION_FIELDS` values and its `stop`.
        model_kwargs: The model's extra backend parameters.
        stop: The call's `stop=` argument (wins over `kwargs["stop"]` and the default).
        kwargs: The call's keywords; unknown ones go to `GenerationParams.extra`.

    Example:
        >>> params = generation_params({"temperature": 0.7}, {}, None, {"seed": 3, "n": 2})
        >>> params.temperature, params.seed, params.extra
        (0.7, 3, {'n': 2})
    """
    values = {name: kwargs.get(name, defaults.get(name)) for name in GENERATION_FIELDS}
    stop_sequences = stop if stop is not None else kwargs.get("stop", defaults.get("stop"))
    extra = dict(model_kwargs)
    extra.update(
        {
            k: v
            for k, v in kwargs.items()
            if k not in GENERATION_FIELDS and k not in CONTROL_KWARGS and k != "stop"
        }
    )
    return GenerationParams(
        stop=list(stop_sequences) if stop_sequences else None, extra=extra, **values
    )
