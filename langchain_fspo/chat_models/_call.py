"""What one `ChatFSPO` call sends: the user, the adapter, the generation parameters, the prompt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.prompt_format import RenderedPrompt

__all__ = [
    "CONTROL_KWARGS",
    "GENERATION_FIELDS",
    "PreparedCall",
    "announced_calls",
    "batch_config",
    "generation_params",
]

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


def batch_config(backend: object, config: Any, count: int) -> Any:
    """`config` for `ChatFSPO.batch` with `max_concurrency` sized to a batching backend.

    LangChain's `batch` runs the inputs in a thread pool of its default size (CPU count + 4),
    which would split a batching backend's (`LocalBackend`) batch in two on small machines.
    Unless the config sets `max_concurrency`, it becomes `count`, at most twice the backend's
    `max_batch_size` (so the next batch queues up while one runs). Other backends: unchanged.

    Example:
        >>> class Batching:
        ...     max_batch_size = 8
        >>> batch_config(Batching(), None, 20), batch_config(Batching(), [{}, {}], 2)
        ({'max_concurrency': 16}, [{'max_concurrency': 2}, {'max_concurrency': 2}])
    """
    size = getattr(backend, "max_batch_size", None)
    if not isinstance(size, int) or count <= 1:
        return config
    width = min(count, 2 * size)
    if isinstance(config, list):
        return [
            c if "max_concurrency" in (c or {}) else {**(c or {}), "max_concurrency": width}
            for c in config
        ]
    if config is not None and "max_concurrency" in config:
        return config
    return {**(config or {}), "max_concurrency": width}


def announced_calls(config: Any, count: int) -> int:
    """How many of `count` batched calls run at once under `config` (its `max_concurrency`).

    What `ChatFSPO.batch` announces to the backend (`Backend.expecting`): announcing calls
    that cannot start yet would make the backend wait for them.

    Example:
        >>> announced_calls(None, 8), announced_calls({"max_concurrency": 2}, 8)
        (8, 2)
        >>> announced_calls([{"max_concurrency": 3}, {}], 2)
        2
    """
    first = config[0] if isinstance(config, list) and config else config
    limit = (first or {}).get("max_concurrency") if isinstance(first, dict) else None
    return min(count, limit) if isinstance(limit, int) and limit > 0 else count
