"""What `LocalBackend` hands `model.generate`, and how it reads the tokens that come back.

`GenerationParams` -> `generate` keyword arguments (`generate_kwargs`; the mapping is listed
in `LocalBackend`'s docstring), OpenAI-style additive penalties as a logits processor, stop
strings cut from the text (`StopText`), the finish reason, and the streamer and cancel
criterion of a streamed generation. torch, transformers and peft are imported inside the
functions only (`import langchain_fspo` stays light).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.errors import InferenceServerError

__all__ = [
    "INSTALL_HINT",
    "UNSUPPORTED_EXTRA",
    "StopText",
    "cancel_criteria",
    "finish_reason",
    "generate_kwargs",
    "generation_failed",
    "import_stack",
    "seeded",
    "token_streamer",
    "torch_dtype",
]

logger = logging.getLogger("langchain_fspo.backends.local")

INSTALL_HINT = (
    'The local backend needs torch, transformers and peft: pip install "langchain-fspo[local]"'
)
# `GenerationParams.extra` keys that mean something to OpenAI-style servers but that a plain
# `model.generate` cannot do; they are dropped with a warning.
UNSUPPORTED_EXTRA = frozenset(
    {"tools", "tool_choice", "response_format", "logprobs", "top_logprobs", "logit_bias", "n"}
)


def torch_dtype(torch: Any, dtype: str) -> Any:
    """The torch dtype named `dtype` (`"auto"` is passed through)."""
    if dtype == "auto":
        return dtype
    value = getattr(torch, dtype, None)
    if isinstance(value, torch.dtype):
        return value
    msg = f"Unknown dtype {dtype!r}; use 'auto', 'float32', 'bfloat16' or 'float16'."
    raise ValueError(msg)


def import_stack() -> tuple[Any, Any, Any]:
    """torch, transformers and peft, imported on first use (with an install hint)."""
    try:
        import peft
        import torch
        import transformers
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return torch, transformers, peft


class StopText:
    """Cuts text at the first stop string; while streaming, holds back a possible stop prefix."""

    def __init__(self, stop: list[str] | None) -> None:
        self.stop = [s for s in (stop or []) if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1

    def cut(self, text: str) -> tuple[str, bool]:
        """`text` up to the earliest stop string, and whether one was found."""
        hits = [i for i in (text.find(s) for s in self.stop) if i != -1]
        if not hits:
            return text, False
        return text[: min(hits)], True

    def safe_len(self, text: str) -> int:
        """How much of `text` can be emitted now without risking half a stop string."""
        return max(0, len(text) - self.hold) if self.stop else len(text)


def generate_kwargs(
    params: GenerationParams, *, tokenizer: Any, default_max_tokens: int, prompt_len: int
) -> dict[str, Any]:
    """`model.generate` keyword arguments for `params` (without inputs and streamer).

    Args:
        params: The call's parameters (see `LocalBackend` for how each one is mapped).
        tokenizer: The base model's tokenizer (stop strings need it).
        default_max_tokens: `max_new_tokens` when `params` sets no `max_tokens`.
        prompt_len: Prompt length in tokens (the additive penalties skip the prompt).
    """
    _, transformers, _ = import_stack()
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_tokens
        if params.max_tokens is not None
        else default_max_tokens,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if params.temperature:
        kwargs["do_sample"] = True
        kwargs["temperature"] = params.temperature
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        if params.top_k is not None:
            kwargs["top_k"] = params.top_k
    else:
        kwargs["do_sample"] = False
    stop = [s for s in params.stop or [] if s]
    if stop:
        kwargs["stop_strings"] = stop
        kwargs["tokenizer"] = tokenizer
    if params.repetition_penalty is not None:
        kwargs["repetition_penalty"] = params.repetition_penalty
    if params.frequency_penalty or params.presence_penalty:
        kwargs["logits_processor"] = transformers.LogitsProcessorList(
            [
                _additive_penalty(
                    frequency=params.frequency_penalty or 0.0,
                    presence=params.presence_penalty or 0.0,
                    prompt_len=prompt_len,
                )
            ]
        )
    known = transformers.GenerationConfig()
    for key, value in params.extra.items():
        if key in UNSUPPORTED_EXTRA or not hasattr(known, key):
            logger.warning(
                "LocalBackend cannot honour %r=%r (model.generate has no such option); "
                "it is ignored.",
                key,
                value,
            )
            continue
        kwargs[key] = value
    return kwargs


def generation_failed(adapter: str | None, error: BaseException) -> InferenceServerError:
    """The error a failed in-process generation (out of memory, device error) raises."""
    return InferenceServerError(
        f"LocalBackend generation failed for adapter {adapter!r}: {error}", adapter=adapter
    )


def seeded(torch: Any, device: str, seed: int | None) -> contextlib.AbstractContextManager[Any]:
    """Seed torch's RNG for one call without disturbing the global state; no-op for None."""
    if seed is None:
        return contextlib.nullcontext()
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    stack = contextlib.ExitStack()
    stack.enter_context(torch.random.fork_rng(devices=devices))
    torch.manual_seed(seed)
    return stack


def finish_reason(
    new_ids: list[int], max_new_tokens: int, eos_token_id: Any, *, stopped: bool
) -> str:
    """`stop` (a stop string, or the EOS token) or `length` (`max_new_tokens` reached)."""
    if stopped:
        return "stop"
    if new_ids and new_ids[-1] == eos_token_id:
        return "stop"
    return "length" if len(new_ids) >= max_new_tokens else "stop"


def token_streamer(tokens: queue.Queue[Any]) -> Any:
    """A transformers streamer that puts each step's new token ids on `tokens`."""
    from transformers.generation.streamers import BaseStreamer

    class _TokenStreamer(BaseStreamer):
        def __init__(self) -> None:
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:  # generate first passes the prompt ids
                self.prompt_seen = True
                return
            tokens.put([int(t) for t in value.reshape(-1).tolist()])

        def end(self) -> None:
            """Nothing to flush: the worker signals the end itself."""

    return _TokenStreamer()


def cancel_criteria(cancel: threading.Event) -> Any:
    """A stopping criterion that ends generation once `cancel` is set."""
    import torch
    from transformers import StoppingCriteria

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:  # noqa: ARG002
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool)

    return _Cancel()


def _additive_penalty(*, frequency: float, presence: float, prompt_len: int) -> Any:
    """OpenAI-style penalties over generated tokens: logit -= f * count + p * (count > 0).

    Tokens after the first `prompt_len` positions count as generated.
    """
    import torch
    from transformers import LogitsProcessor

    class _AdditivePenalty(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            generated = input_ids[:, prompt_len:]
            counts = torch.zeros_like(scores)
            if generated.shape[1]:
                counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            return scores - frequency * counts - presence * (counts > 0).to(scores.dtype)

    return _AdditivePenalty()
