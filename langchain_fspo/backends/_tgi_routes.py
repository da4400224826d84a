"""How a `TGIBackend` call travels: its route, its arguments, and how its answer is read.

Chat prompts go to `/v1/chat/completions`, parsed with the shared OpenAI parser; paper prompts
to `/generate` (`/generate_stream` when streaming), parsed by `_tgi_wire`. Every answer and
stream event is turned into plain data first (`plain_data`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from langchain_fspo.backends._http import join_url
from langchain_fspo.backends._openai_wire import CompletionStream, parse_completion
from langchain_fspo.backends._tgi_params import chat_arguments, generate_arguments
from langchain_fspo.backends._tgi_wire import GenerateStream, parse_text_generation, plain_data
from langchain_fspo.backends.base import Generation, GenerationChunk, GenerationParams

if TYPE_CHECKING:
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["EventStream", "Route", "achunks", "aclosing", "chunks", "closing", "route_for"]


class EventStream(Protocol):
    """A route's stream parser: `CompletionStream` (chat) or `GenerateStream` (paper)."""

    done: bool

    def feed(self, event: Mapping[str, Any]) -> list[GenerationChunk]: ...

    def final(self) -> GenerationChunk: ...


@dataclass(frozen=True)
class Route:
    """How one call travels: the route, the client's URL, the request and the answer's parser."""

    path: str
    """The route, for messages: `/v1/chat/completions`, `/generate` or `/generate_stream`."""
    url: str
    """The `model` URL of the `InferenceClient` that calls it."""
    send: Callable[[Any], Any]
    """Sends the request with a (sync or async) client; returns the answer or its events."""
    parse: Callable[[Any], Generation]
    """Parses a whole answer (plain data)."""
    events: Callable[[], EventStream]
    """A new parser for the answer's stream."""


def route_for(
    base_url: str,
    prompt: RenderedPrompt,
    adapter: str | None,
    params: GenerationParams,
    *,
    stream: bool,
) -> Route:
    """Chat prompts to `/v1/chat/completions`, paper prompts to `/generate[_stream]`."""
    if prompt.style == "chat":
        chat_args = chat_arguments(adapter, params, stream=stream)
        messages = list(prompt.messages)
        return Route(
            path="/v1/chat/completions",
            url=base_url,
            send=lambda client: client.chat_completion(messages, **chat_args),
            parse=lambda data: parse_completion(data, adapter, chat=True, naming="server"),
            events=lambda: CompletionStream(adapter, chat=True, naming="server"),
        )
    generate_args = generate_arguments(adapter, params, stream=stream)
    path = "/generate_stream" if stream else "/generate"
    return Route(
        path=path,
        url=join_url(base_url, path),
        send=lambda client: client.text_generation(prompt.text, **generate_args),
        parse=lambda data: parse_text_generation(data, adapter),
        events=lambda: GenerateStream(adapter),
    )


def chunks(events: Iterable[Any], state: EventStream) -> Iterator[GenerationChunk]:
    """Parse a client's stream events (plain data first); the stream ended when they did."""
    for event in events:
        yield from state.feed(plain_data(event))
    state.done = True  # huggingface_hub's iterator stops at `data: [DONE]` or the body's end
    yield state.final()


async def achunks(events: AsyncIterator[Any], state: EventStream) -> AsyncIterator[GenerationChunk]:
    """Async `chunks`."""
    async for event in events:
        for chunk in state.feed(plain_data(event)):
            yield chunk
    state.done = True
    yield state.final()


def closing(chunks: Iterator[GenerationChunk], client: Any) -> Iterator[GenerationChunk]:
    """Yield `chunks`, then close the client whose exit stack holds the HTTP response."""
    try:
        yield from chunks
    finally:
        client.close()


async def aclosing(
    chunks: AsyncIterator[GenerationChunk], client: Any
) -> AsyncIterator[GenerationChunk]:
    """Async `closing`."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await client.close()
