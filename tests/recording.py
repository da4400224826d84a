"""Test doubles that wrap real components and record what crossed a boundary.

`RecordingLocalBackend` is the real `LocalBackend` (real tiny model, real `generate`); it only
records, per call, the prompt it received, the adapter, and the exact keyword arguments it
passed to `model.generate`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from langchain_fspo.backends.base import Generation, GenerationChunk, GenerationParams
from langchain_fspo.backends.local import LocalBackend
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

    def _run_generate(self, input_ids: Any, attention_mask: Any, kwargs: dict[str, Any]) -> Any:
        record = {"input_ids": input_ids[0].tolist(), **kwargs}
        record["active_adapter"] = self._model.active_adapter if self._has_peft else None
        with self._record_lock:
            self.generate_calls.append(record)
        return super()._run_generate(input_ids, attention_mask, kwargs)

    def reset(self) -> None:
        with self._record_lock:
            self.calls.clear()
            self.generate_calls.clear()


__all__ = ["Call", "GenerationChunk", "RecordingLocalBackend"]
