"""Server-sent events of OpenAI-style streams: the JSON payload of each `data:` line.

`sse_batches` reads the body's text piece by piece as it arrives and gives the payloads of
each piece together, so that the events that came in one read can become one chunk (a fast
server sends many per read; a slow one, one). Lines end at CR LF, LF or CR, as the SSE
format says, and nowhere else (a raw U+2028 inside a JSON string is not a line break).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

from langchain_fspo.backends._http import MalformedResponseError
from langchain_fspo.backends._json import loads

__all__ = [
    "SSELines",
    "adrain",
    "asse_batches",
    "asse_payloads",
    "drain",
    "sse_batches",
    "sse_payloads",
]

Payload = dict[str, Any] | None
"""A `data:` line's JSON object, or None for `data: [DONE]`."""

_LINE_END = re.compile(r"\r\n|\r|\n")

_DRAIN_LINES = 64
"""Lines (or pieces of text) read after `data: [DONE]` at most; a server still sending then
loses the connection."""


def sse_payloads(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    """JSON payloads of `data:` lines; `None` for `data: [DONE]` (then stop)."""
    for line in lines:
        payload = _sse_line(line)
        if payload is _SKIP:
            continue
        yield payload
        if payload is None:
            return


async def asse_payloads(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any] | None]:
    """Async `sse_payloads`."""
    async for line in lines:
        payload = _sse_line(line)
        if payload is _SKIP:
            continue
        yield payload
        if payload is None:
            return


def drain(lines: Iterator[str]) -> None:
    """Read what follows `data: [DONE]` (normally nothing but the body's end).

    A response read to its end returns its connection to the client's pool for the next call;
    one closed early takes the connection down with it.
    """
    for _, _line in zip(range(_DRAIN_LINES), lines, strict=False):
        pass


async def adrain(lines: AsyncIterator[str]) -> None:
    """Async `drain`."""
    count = 0
    async for _line in lines:
        count += 1
        if count >= _DRAIN_LINES:
            return


class SSELines:
    """Splits text that arrives in pieces into lines; a line may span pieces."""

    def __init__(self) -> None:
        self._partial: list[str] = []

    def feed(self, text: str) -> list[str]:
        """The lines that `text` completes (a CR LF split across pieces adds a blank line)."""
        lines = _LINE_END.split(text)
        if len(lines) == 1:
            self._partial.append(text)
            return []
        if self._partial:
            lines[0] = "".join([*self._partial, lines[0]])
            self._partial = []
        rest = lines.pop()
        if rest:
            self._partial.append(rest)
        return lines

    def close(self) -> list[str]:
        """The last line, if the text did not end with a line break."""
        rest = "".join(self._partial)
        self._partial = []
        return [rest] if rest else []


def _batch(lines: list[str]) -> tuple[list[Payload], bool]:
    """The payloads of `lines`, and whether `data: [DONE]` (the last payload then) came."""
    batch: list[Payload] = []
    for line in lines:
        payload = _sse_line(line)
        if payload is _SKIP:
            continue
        batch.append(payload)
        if payload is None:
            return batch, True
    return batch, False


def sse_batches(texts: Iterable[str]) -> Iterator[list[Payload]]:
    """The payloads of each piece of text that completed at least one event, in order.

    Stops after `data: [DONE]` (then the last item of the last batch is None) without reading
    further; `drain` the rest.
    """
    lines = SSELines()
    for text in texts:
        batch, done = _batch(lines.feed(text))
        if batch:
            yield batch
        if done:
            return
    batch, _done = _batch(lines.close())
    if batch:
        yield batch


async def asse_batches(texts: AsyncIterable[str]) -> AsyncIterator[list[Payload]]:
    """Async `sse_batches`."""
    lines = SSELines()
    async for text in texts:
        batch, done = _batch(lines.feed(text))
        if batch:
            yield batch
        if done:
            return
    batch, _done = _batch(lines.close())
    if batch:
        yield batch


_SKIP: Any = object()


def _sse_line(line: str) -> Any:
    line = line.strip()
    if not line.startswith("data:"):
        return _SKIP  # blank line, comment, `event:` / `id:` field
    data = line.removeprefix("data:").strip()
    if data == "[DONE]":
        return None
    try:
        payload = loads(data)
    except json.JSONDecodeError as e:
        msg = f"stream event is not JSON ({e}): {data[:200]!r}"
        raise MalformedResponseError(msg) from e
    if not isinstance(payload, dict):
        msg = f"stream event is not a JSON object: {data[:200]!r}"
        raise MalformedResponseError(msg)
    return payload
