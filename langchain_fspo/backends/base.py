"""The one interface every serving backend implements (local transformers, TGI, OpenAI-compatible).

`ChatFSPO` renders the prompt (memory + `PromptFormat`) and hands a `RenderedPrompt` to a
backend. The backend decides how to send it: `style="paper"` prompts go as raw text
(`RenderedPrompt.text`), `style="chat"` prompts as chat messages (`RenderedPrompt.messages`).
The adapter to use travels per call, so one backend serves every adapter and user.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

from langchain_fspo.backends._policy import RetryPolicy

if TYPE_CHECKING:
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["Backend", "Generation", "GenerationChunk", "GenerationParams"]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters for one call. `None` means "the server's default"; never dropped."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Passed through as they are: `tools`, `tool_choice`, `response_format`, ..."""

    def set_fields(self) -> dict[str, Any]:
        """The parameters that were set, as a dict (without `extra`)."""
        return {
            name: value
            for name, value in self.__dict__.items()
            if name != "extra" and value is not None
        }


@dataclass(frozen=True)
class Generation:
    """A finished completion."""

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model_name: str | None = None
    """The adapter (or base model) that answered, as the server reports it."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """OpenAI-style tool calls: `{"id", "name", "args"}`."""
    token_ids: list[int] | None = None
    """The generated token ids, when the backend reports them (in-process always; vLLM when
    the call sends `return_token_ids=True`)."""
    cached_tokens: int | None = None
    """Prompt tokens the server reused from its prefix cache, when it reports them."""


@dataclass(frozen=True)
class GenerationChunk:
    """One streamed piece of a completion; the last one carries `finish_reason` and usage."""

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model_name: str | None = None
    tool_call_chunks: list[dict[str, Any]] = field(default_factory=list)
    cached_tokens: int | None = None


class Backend(ABC):
    """Sends a rendered FSPO prompt to a model with a given adapter and returns the completion.

    Subclasses implement `generate` and `stream`; the async variants default to running the
    sync ones in a thread and should be overridden where a native async client exists.
    """

    name: ClassVar[str] = "base"
    """Short name used in `ls_provider` and in error messages."""
    retries_inside: ClassVar[bool] = False
    """True when the backend applies `retry` to each request itself (the server backends);
    otherwise `ChatFSPO` applies it around `generate` / `stream` (`backends._retry`)."""
    retry: RetryPolicy = RetryPolicy()
    """Retries and attempt deadlines of this backend's calls (the one retry layer)."""

    def configured(self, **changes: Any) -> Self:
        """A shallow copy whose `retry` policy has `changes` (`timeout`, `max_retries`, ...).

        `ChatFSPO(timeout=..., max_retries=...)` calls it; the copy shares the original's
        clients, adapters and caches, and the original is left as it was.
        """
        if not changes:
            return self
        clone = copy.copy(self)
        clone.retry = self.retry.replace(**changes)
        return clone

    @abstractmethod
    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Complete `prompt` with `adapter` (None: the base model)."""

    @abstractmethod
    def stream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Iterator[GenerationChunk]:
        """Stream the completion of `prompt` token by token."""

    async def agenerate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Async `generate`; runs the sync one in a worker thread unless overridden."""
        return await asyncio.to_thread(self.generate, prompt, adapter=adapter, params=params)

    async def astream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        """Async `stream`; pulls the sync stream in a worker thread unless overridden."""
        iterator = iter(self.stream(prompt, adapter=adapter, params=params))
        done = object()
        while True:
            chunk = await asyncio.to_thread(next, iterator, done)
            if chunk is done:
                return
            assert isinstance(chunk, GenerationChunk)  # noqa: S101 - narrows the sentinel
            yield chunk

    def count_tokens(self, text: str) -> int | None:  # noqa: ARG002 - optional capability
        """Tokens in `text` for this backend's tokenizer, or None when unknown."""
        return None

    def check_adapter(self, adapter: str | None) -> None:  # noqa: B027 - optional hook
        """Raise `AdapterNotFoundError` if `adapter` is not served; the default checks nothing."""

    def expecting(self, calls: int) -> contextlib.AbstractContextManager[None]:  # noqa: ARG002
        """Announce that `calls` calls made inside this context arrive together.

        `ChatFSPO.batch` / `abatch` say so; a batching backend (`LocalBackend`) then waits for
        all of them before it runs a batch. The default does nothing.
        """
        return contextlib.nullcontext()

    @property
    def supports_tools(self) -> bool:
        """Whether `tools` / `tool_choice` in `GenerationParams.extra` reach the model."""
        return False
