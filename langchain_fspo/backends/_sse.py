"""Server-sent events of OpenAI-style streams: the JSON payload of each `data:` line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_fspo.backends._http import MalformedResponseError

__all__ = ["adrain", "asse_payloads", "drain", "sse_payloads"]

_DRAIN_LINES = 64
"""Lines read after `data: [DONE]` at most; a server still sending then loses the connection."""


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


_SKIP: Any = object()


def _sse_line(line: str) -> Any:
    line = line.strip()
    if not line.startswith("data:"):
        return _SKIP  # blank line, comment, `event:` / `id:` field
    data = line.removeprefix("data:").strip()
    if data == "[DONE]":
        return None
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as e:
        msg = f"stream event is not JSON ({e}): {data[:200]!r}"
        raise MalformedResponseError(msg) from e
    if not isinstance(payload, dict):
        msg = f"stream event is not a JSON object: {data[:200]!r}"
        raise MalformedResponseError(msg)
    return payload
