"""SSE read piece by piece: events that arrive together become one chunk, split ones still parse.

Both server backends read a stream's text as it arrives (`_event_stream`, `sse_batches`). Here
the body comes from a generator (no socket): each item it yields is one network read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_fspo.backends import _event_stream
from langchain_fspo.backends._coalesce import CARRIED, coalesce
from langchain_fspo.backends._openai_wire import CompletionStream
from langchain_fspo.backends._sse import SSELines, sse_batches
from langchain_fspo.backends.base import GenerationChunk


def _event(content: str | None = None, **choice: Any) -> str:
    delta = {"content": content} if content is not None else {}
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, **choice}]}) + "\n\n"


def _tool(args: str) -> str:
    call = {"index": 0, "id": "c1", "function": {"name": "rate", "arguments": args}}
    return (
        "data: " + json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}) + "\n\n"
    )


FINAL = (
    'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], '
    '"usage": {"prompt_tokens": 3, "completion_tokens": 4}}\n\n'
)


def _chunks(reads: list[str]) -> list[GenerationChunk]:
    response = httpx.Response(200, content=iter([r.encode() for r in reads]))
    return list(_event_stream.chunks(response, CompletionStream(None, chat=True, naming="adapter")))


async def _achunks(reads: list[str]) -> list[GenerationChunk]:
    async def body() -> AsyncIterator[bytes]:
        for read in reads:
            yield read.encode()

    response = httpx.Response(200, content=body())
    state = CompletionStream(None, chat=True, naming="adapter")
    return [chunk async for chunk in _event_stream.achunks(response, state)]


def test_events_of_one_read_are_one_chunk_and_a_split_event_is_joined() -> None:
    split = _event("lo")
    reads = [
        _event("He") + _event("l") + split[:9],  # an event cut mid-JSON
        split[9:] + _event(", ") + _event("world"),
        _event("!") + FINAL + "data: [DONE]\n\n",
    ]
    for chunks in (_chunks(reads), asyncio.run(_achunks(reads))):
        assert [c.text for c in chunks] == ["Hel", "lo, world", "!", ""]
        assert chunks[-1].finish_reason == "stop"
        assert (chunks[-1].input_tokens, chunks[-1].output_tokens) == (3, 4)


def test_one_event_per_read_stays_one_chunk_per_event() -> None:
    reads = [_event(t) for t in ["a", "b", "c"]] + [FINAL, "data: [DONE]\n\n"]
    assert [c.text for c in _chunks(reads)] == ["a", "b", "c", ""]


def test_tool_call_pieces_are_not_merged_with_text() -> None:
    reads = [_event("x") + _tool('{"st') + _tool('ars": 4}') + _event("y") + FINAL]
    reads.append("data: [DONE]\n\n")
    chunks = _chunks(reads)
    assert [c.text for c in chunks] == ["x", "", "", "y", ""]
    assert [c.tool_call_chunks[0]["args"] for c in chunks[1:3]] == ['{"st', 'ars": 4}']


def test_only_sse_line_breaks_end_a_line() -> None:
    """A raw U+2028 in a JSON string is text; CR LF and CR end lines (SSE)."""
    content = "line\u2028separator"
    raw = "data: " + json.dumps(
        {"choices": [{"index": 0, "delta": {"content": content}}]}, ensure_ascii=False
    )
    reads = [raw + "\r\n\r\n" + _event("!").replace("\n", "\r") + FINAL + "data: [DONE]\n\n"]
    assert [c.text for c in _chunks(reads)] == [content + "!", ""]


def test_what_follows_done_is_not_parsed() -> None:
    reads = [_event("a") + FINAL + "data: [DONE]\n\n" + "data: not json\n\n"]
    assert [c.text for c in _chunks(reads)] == ["a", ""]


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(st.sampled_from(["a", "bc", "", "é\u2028"]), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 400), max_size=12),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_any_split_gives_the_same_payloads(events: list[str], cuts: list[int], ending: str) -> None:
    body = "".join(
        "data: " + json.dumps({"t": e}, ensure_ascii=False) + ending + ending for e in events
    )
    points = sorted({c for c in cuts if 0 < c < len(body)})
    pieces = [body[i:j] for i, j in zip([0, *points], [*points, len(body)], strict=True)]
    payloads = [p for batch in sse_batches(iter(pieces)) for p in batch]
    assert payloads == [{"t": e} for e in events]
    lines = SSELines()
    whole = [line for piece in pieces for line in lines.feed(piece)] + lines.close()
    expected = re.split(r"\r\n|\r|\n", body)  # SSE line ends (not str.splitlines')
    assert [line for line in whole if line] == [line for line in expected if line]


def test_coalesce_knows_every_chunk_field() -> None:
    """A field added to `GenerationChunk` must be added to `coalesce`'s text-only check."""
    names = {f.name for f in dataclasses.fields(GenerationChunk)}
    assert names == {"text", "tool_call_chunks", *CARRIED}
    for name in CARRIED:
        marked = dataclasses.replace(GenerationChunk(text="b"), **{name: 1})
        merged = coalesce([GenerationChunk(text="a"), marked, GenerationChunk(text="c")])
        assert [c.text for c in merged] == ["a", "b", "c"]
