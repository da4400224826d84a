"""Running the TGI test server's engine: a `Backend` streams, the outcome is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from langchain_fspo.backends.base import Backend, GenerationChunk, GenerationParams
from langchain_fspo.prompt_format import RenderedPrompt
from tests.tgi_server.wire import LoggedRequest, Wire

DEFAULT_MAX_TOKENS = 16
"""Tokens generated when a request sets no limit (TGI's default is 1024; 16 keeps tests fast)."""


@dataclass
class Outcome:
    """What the engine produced for one request."""

    pieces: list[str] = field(default_factory=list)
    finish_reason: str = "length"
    input_tokens: int = 0
    output_tokens: int = 0


class Engine(Wire):
    """Generation with the server's backend, and TGI's input-length check."""

    backend: Backend
    max_input_tokens: int
    max_total_tokens: int

    def _run(
        self, prompt: RenderedPrompt, adapter: str | None, params: GenerationParams
    ) -> Iterator[tuple[str, Outcome | None]]:
        """Stream `(piece, None)` pairs, then `(last piece, final outcome)`."""
        outcome = Outcome()
        last: GenerationChunk | None = None
        for chunk in self.backend.stream(prompt, adapter=adapter, params=params):
            last = chunk
            if chunk.finish_reason is None:
                outcome.pieces.append(chunk.text)
                yield chunk.text, None
        tail = last.text if last is not None and last.finish_reason is not None else ""
        outcome.pieces.append(tail)
        outcome.finish_reason = (last.finish_reason if last else None) or "length"
        outcome.input_tokens = (last.input_tokens if last else None) or 0
        outcome.output_tokens = (last.output_tokens if last else None) or sum(
            1 for p in outcome.pieces if p
        )
        yield tail, outcome

    def _run_all(
        self, prompt: RenderedPrompt, adapter: str | None, params: GenerationParams
    ) -> Outcome:
        for _, final in self._run(prompt, adapter, params):
            if final is not None:
                return final
        return Outcome()  # pragma: no cover - _run always ends with the outcome

    def _too_long(
        self, handler: BaseHTTPRequestHandler, entry: LoggedRequest, prompt: RenderedPrompt
    ) -> bool:
        text = (
            prompt.text
            if prompt.style == "paper"
            else "\n".join(str(m.get("content")) for m in prompt.messages)
        )
        counted = self.backend.count_tokens(text)
        if counted is not None and counted > self.max_input_tokens:
            message = (
                f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
                f"{self.max_total_tokens}. Given: {counted} `inputs` tokens"
            )
            self._send_error(handler, entry, 422, message)
            return True
        return False
