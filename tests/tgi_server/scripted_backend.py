"""A deterministic text engine for exercising the TGI test server's protocol layer on its own.

TEST DOUBLE: it stands in for a model only where the model is beside the point (the server's
own wire-format tests, fault injection). It answers with words picked deterministically from
the prompt, the adapter and the seed, honours `max_tokens` and `stop`, and reports usage the
way `LocalBackend` does. End-to-end tests serve the real tiny Llama through `LocalBackend`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.prompt_format import RenderedPrompt

_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]


class ScriptedBackend(Backend):
    """Deterministic words, one "token" per word; see the module docstring (test double)."""

    name = "scripted"

    def __init__(self, adapters: list[str] | None = None, default_max_tokens: int = 8) -> None:
        self.adapters = list(adapters or [])
        self.default_max_tokens = default_max_tokens

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _prompt_text(self, prompt: RenderedPrompt) -> str:
        if prompt.style == "chat":
            return "\n".join(str(m.get("content", "")) for m in prompt.messages)
        return prompt.text

    def _words(
        self, prompt: RenderedPrompt, adapter: str | None, params: GenerationParams
    ) -> list[str]:
        key = f"{adapter}|{params.seed}|{self._prompt_text(prompt)}".encode()
        digest = hashlib.sha256(key).digest()
        limit = params.max_tokens if params.max_tokens is not None else self.default_max_tokens
        return [_WORDS[digest[i % len(digest)] % len(_WORDS)] for i in range(limit)]

    def stream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Iterator[GenerationChunk]:
        words = self._words(prompt, adapter, params)
        text = ""
        finish = "length"
        produced = 0
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            candidate = text + piece
            hit = next((s for s in params.stop or [] if s and s in candidate), None)
            if hit is not None:
                piece = candidate[: candidate.index(hit)][len(text) :]
                finish = "stop"
                if piece:
                    produced += 1
                    yield GenerationChunk(text=piece)
                break
            text = candidate
            produced += 1
            yield GenerationChunk(text=piece)
        yield GenerationChunk(
            text="",
            finish_reason=finish,
            input_tokens=self.count_tokens(self._prompt_text(prompt)),
            output_tokens=produced,
            model_name=adapter,
        )

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        chunks = list(self.stream(prompt, adapter=adapter, params=params))
        last = chunks[-1]
        return Generation(
            text="".join(c.text for c in chunks),
            finish_reason=last.finish_reason,
            input_tokens=last.input_tokens,
            output_tokens=last.output_tokens,
            model_name=adapter,
        )
