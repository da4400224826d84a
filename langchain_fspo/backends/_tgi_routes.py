"""How a `TGIBackend` call travels: its route, its JSON body, and how its answer is read.

Chat prompts go to `/v1/chat/completions`, parsed with the shared OpenAI parser; paper prompts
to `/generate` (`/generate_stream` when streaming), parsed by `_tgi_wire`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_fspo.backends._openai_wire import CompletionStream, parse_completion
from langchain_fspo.backends._tgi_params import chat_body, generate_body
from langchain_fspo.backends._tgi_wire import GenerateStream, parse_text_generation
from langchain_fspo.backends.base import Generation, GenerationParams

if TYPE_CHECKING:
    from langchain_fspo.backends._event_stream import EventStream
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["Route", "route_for"]


@dataclass(frozen=True)
class Route:
    """How one call travels: the route, the body, and the parsers of its answer."""

    path: str
    """`/v1/chat/completions`, `/generate` or `/generate_stream`."""
    body: dict[str, Any]
    """The JSON body."""
    parse: Callable[[Any], Generation]
    """Parses a whole answer."""
    events: Callable[[], EventStream]
    """A new parser for the answer's stream."""


def route_for(
    prompt: RenderedPrompt, adapter: str | None, params: GenerationParams, *, stream: bool
) -> Route:
    """Chat prompts to `/v1/chat/completions`, paper prompts to `/generate[_stream]`."""
    if prompt.style == "chat":
        return Route(
            path="/v1/chat/completions",
            body=chat_body(list(prompt.messages), adapter, params, stream=stream),
            parse=lambda data: parse_completion(data, adapter, chat=True, naming="server"),
            events=lambda: CompletionStream(adapter, chat=True, naming="server"),
        )
    return Route(
        path="/generate_stream" if stream else "/generate",
        body=generate_body(prompt.text, adapter, params, stream=stream),
        parse=lambda data: parse_text_generation(data, adapter),
        events=lambda: GenerateStream(adapter),
    )
