"""Test doubles that record what crossed the `Backend` boundary.

- `RecordingLocalBackend` is the real `LocalBackend` (real tiny model, real `generate`); it
  only records, per call, the prompt it received, the adapter, and the exact keyword
  arguments it passed to `model.generate`.
- `ScriptedBackend` implements the abstract `Backend` interface with scripted answers, for
  unit tests that must not load torch and need exact completions (RAT headers, failures).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.backends.local import LocalBackend
from langchain_fspo.errors import AdapterNotFoundError, InferenceServerError
from langchain_fspo.prompt_format import RenderedPrompt


@dataclass
class Call:
    """One call into the backend."""

    prompt: RenderedPrompt
    adapter: str | None
    params: GenerationParams
    input_ids: list[int] = field(default_factory=list)
    generate_kwargs: dict[str, Any] = field(default_factory=dict)


class RecordingLocalBackend(LocalBackend):
    """`LocalBackend` that records every prompt and every `model.generate` call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[Call] = []
        self.generate_calls: list[dict[str, Any]] = []
        """One record per prompt row that reached `model.generate` (its padding removed)."""
        self.batch_sizes: list[int] = []
        """The batch size of each `model.generate` call, in order."""
        self._record_lock = threading.Lock()

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        with self._record_lock:
            self.calls.append(Call(prompt, adapter, params, self.encode_prompt(prompt)))
        return super().generate(prompt, adapter=adapter, params=params)

    def stream(self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams):
        with self._record_lock:
            self.calls.append(Call(prompt, adapter, params, self.encode_prompt(prompt)))
        yield from super().stream(prompt, adapter=adapter, params=params)

    async def agenerate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        with self._record_lock:
            self.calls.append(Call(prompt, adapter, params, self.encode_prompt(prompt)))
        return await super().agenerate(prompt, adapter=adapter, params=params)

    def _run_generate(self, input_ids: Any, attention_mask: Any, kwargs: dict[str, Any]) -> Any:
        active = self._model.active_adapter if self._has_peft else None
        rows = [
            [int(t) for t, m in zip(ids, mask, strict=True) if m]
            for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True)
        ]
        with self._record_lock:
            self.batch_sizes.append(len(rows))
            for row in rows:
                self.generate_calls.append(
                    {"input_ids": row, **kwargs, "active_adapter": active, "batch_size": len(rows)}
                )
        return super()._run_generate(input_ids, attention_mask, kwargs)

    def reset(self) -> None:
        with self._record_lock:
            self.calls.clear()
            self.generate_calls.clear()
            self.batch_sizes.clear()


__all__ = ["Call", "RecordingLocalBackend", "ScriptedBackend"]


class ScriptedBackend(Backend):
    """Test double of the `Backend` interface: answers `reply`, records every call.

    `stream` yields the reply `chunk_size` characters at a time, like a server's token stream;
    `count_tokens` counts whitespace-separated words; `fail_times` first calls raise
    `InferenceServerError` (a flaky server); `delay` seconds are slept per call.
    """

    name: ClassVar[str] = "scripted"

    def __init__(
        self,
        reply: str = "Fine answer.",
        *,
        adapters: tuple[str, ...] = ("alpha", "beta"),
        chunk_size: int = 3,
        fail_times: int = 0,
        delay: float = 0.0,
    ) -> None:
        self.reply = reply
        self.served = adapters
        self.chunk_size = chunk_size
        self.fail_times = fail_times
        self.delay = delay
        self.calls: list[tuple[RenderedPrompt, str | None, GenerationParams]] = []
        self._lock = threading.Lock()

    def _record(
        self, prompt: RenderedPrompt, adapter: str | None, params: GenerationParams
    ) -> None:
        self.check_adapter(adapter)
        with self._lock:
            self.calls.append((prompt, adapter, params))
            failing = self.fail_times > 0
            self.fail_times -= failing
        if self.delay:
            time.sleep(self.delay)
        if failing:
            raise InferenceServerError("503 from the scripted server")

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        self._record(prompt, adapter, params)
        return Generation(
            text=self.reply,
            finish_reason="stop",
            input_tokens=7,
            output_tokens=3,
            model_name=adapter,
        )

    def stream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Iterator[GenerationChunk]:
        self._record(prompt, adapter, params)
        for i in range(0, len(self.reply), self.chunk_size):
            yield GenerationChunk(text=self.reply[i : i + self.chunk_size])
        yield GenerationChunk(text="", finish_reason="stop", input_tokens=7, output_tokens=3)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def check_adapter(self, adapter: str | None) -> None:
        if adapter is not None and adapter not in self.served:
            raise AdapterNotFoundError(f"{adapter!r} is not served")
