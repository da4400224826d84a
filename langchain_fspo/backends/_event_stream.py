"""An HTTP stream of server-sent events -> `GenerationChunk`s, for both server backends.

The response's text is split into events as it arrives (`_sse`); the events of one network
read are parsed by the route's parser (`EventStream`: `_openai_wire.CompletionStream` for the
OpenAI wire, `_tgi_wire.GenerateStream` for TGI's `/generate_stream`) and their text comes as
one chunk (`_coalesce`). `data: [DONE]` ends the stream (what follows is drained, so the
connection goes back to the pool); else the body's end does. The last chunk is the parser's
`final()`, which raises if the stream ended before its final event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from langchain_fspo.backends._coalesce import coalesce
from langchain_fspo.backends._sse import Payload, adrain, asse_batches, drain, sse_batches
from langchain_fspo.backends.base import GenerationChunk

if TYPE_CHECKING:
    import httpx

__all__ = ["EventStream", "achunks", "chunks"]


class EventStream(Protocol):
    """A route's stream parser: `feed` each event, set `done` at `[DONE]`, then `final()`."""

    done: bool

    def feed(self, event: Mapping[str, Any]) -> list[GenerationChunk]: ...

    def final(self) -> GenerationChunk: ...


def _feed(state: EventStream, payloads: list[Payload]) -> list[GenerationChunk]:
    """The chunks of the events that arrived together (`data: [DONE]` sets `done`)."""
    out: list[GenerationChunk] = []
    for payload in payloads:
        if payload is None:
            state.done = True
            break
        out.extend(state.feed(payload))
    return coalesce(out)


def chunks(response: httpx.Response, state: EventStream) -> Iterator[GenerationChunk]:
    """One chunk per network read's text (events that arrived together), then the last."""
    try:
        texts = response.iter_text()
        for payloads in sse_batches(texts):
            yield from _feed(state, payloads)
            if state.done:
                drain(texts)
                break
        yield state.final()
    finally:
        response.close()


async def achunks(response: httpx.Response, state: EventStream) -> AsyncIterator[GenerationChunk]:
    """Async `chunks`."""
    try:
        texts = response.aiter_text()
        async for payloads in asse_batches(texts):
            for chunk in _feed(state, payloads):
                yield chunk
            if state.done:
                await adrain(texts)
                break
        yield state.final()
    finally:
        await response.aclose()
