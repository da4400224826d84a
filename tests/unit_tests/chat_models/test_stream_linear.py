"""A long stream costs the same per chunk at its end as at its start, through every stage.

`ChatFSPO.stream` over a backend that reads a server's stream from memory with the real
parsers: `OpenAICompatibleBackend`'s reader (SSE read by network piece, `CompletionStream`,
the OpenAI wire), or TGI's `/generate_stream` SSE through `GenerateStream` (the TGI backend's
reader); then the answer
parser and the LangChain chunk conversion. No socket: the bytes come from a generator, one
event per read (so every event is its own chunk). The
measure is the memory a step allocates at its peak (`tracemalloc`), not time: a stage that
copies or re-scans what came before allocates more per chunk as the stream grows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from langchain_fspo.backends._event_stream import chunks
from langchain_fspo.backends._openai_wire import CompletionStream
from langchain_fspo.backends._tgi_wire import GenerateStream
from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt
from tests.allocation import per_feed_allocation

EVENTS = 9_000


def _token(i: int) -> str:
    return "\n" if i % 13 == 0 else " tok"


def _sse_bytes() -> Iterator[bytes]:
    yield b'data: {"choices": [{"index": 0, "text": "## Preferred Response \\n"}]}\n\n'
    for i in range(EVENTS):
        event = {"choices": [{"index": 0, "text": _token(i)}], "model": "m"}
        yield f"data: {json.dumps(event)}\n\n".encode()
    yield b'data: {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}\n\n'
    yield b"data: [DONE]\n\n"


def _tgi_events() -> Iterator[bytes]:
    events: list[dict[str, Any]] = [
        {"token": {"id": i, "text": _token(i), "special": False}, "details": None}
        for i in range(EVENTS)
    ]
    details = {"finish_reason": "length", "generated_tokens": EVENTS, "input_length": 3}
    events.append({"token": {"id": 0, "text": "", "special": True}, "details": details})
    for event in events:
        yield f"data:{json.dumps(event)}\n\n".encode()


class InMemoryWireBackend(Backend):
    """Test double: streams a recorded server stream through the backends' real parsers."""

    name: ClassVar[str] = "in-memory-wire"

    def __init__(self, wire: str) -> None:
        self.wire = wire

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        raise NotImplementedError

    def stream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Iterator[GenerationChunk]:
        if self.wire == "tgi":
            yield from chunks(httpx.Response(200, content=_tgi_events()), GenerateStream(adapter))
            return
        response = httpx.Response(200, content=_sse_bytes())
        yield from chunks(response, CompletionStream(adapter, chat=False, naming="adapter"))


@pytest.mark.parametrize("wire", ["openai", "tgi"])
def test_chatfspo_stream_allocates_the_same_per_chunk_early_and_late(wire: str) -> None:
    llm = ChatFSPO(
        backend=InMemoryWireBackend(wire), prompt_format=PromptFormat(style="paper"), model="m"
    )
    stream = llm.stream("Hi")
    early, late = per_feed_allocation(lambda _: next(stream), iter(lambda: "", None))
    assert late <= early + 64, (early, late)
    rest = list(stream)
    assert rest[-1].response_metadata["finish_reason"] in {"stop", "length"}
