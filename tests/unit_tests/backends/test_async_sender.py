"""`AsyncSender`: small pools filled in turn, each request's slot freed once its body is closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from langchain_fspo.backends import _async_sender
from langchain_fspo.backends._async_sender import MAX_SHARDS, SHARD_CONNECTIONS, AsyncSender


class _Body(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"ok": true}'


class _HeldTransport(httpx.AsyncBaseTransport):
    """Answers every request once its `gate` (if any) opens; fails requests to /fail."""

    def __init__(self, **_: Any) -> None:
        self.gate: asyncio.Event | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fail":
            raise httpx.ConnectError("refused", request=request)
        if self.gate is not None:
            await self.gate.wait()
        return httpx.Response(200, stream=_Body())


@pytest.fixture(autouse=True)
def _fake_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_async_sender.httpx, "AsyncHTTPTransport", _HeldTransport)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def _busy(sender: AsyncSender) -> list[int]:
    return [shard.busy for shard in sender._shards]


async def _call(sender: AsyncSender, path: str = "/") -> bytes:
    response = await sender.send(httpx.Request("POST", f"http://h{path}", content=b"{}"))
    try:
        return await response.aread()
    finally:
        await response.aclose()


def test_requests_fill_one_shard_before_the_next_and_free_their_slots() -> None:
    async def scenario() -> None:
        sender = AsyncSender()
        assert await _call(sender) == b'{"ok": true}'
        assert _busy(sender) == [0]
        gate = asyncio.Event()
        sender._shards[0].transport.gate = gate
        calls = [asyncio.create_task(_call(sender)) for _ in range(SHARD_CONNECTIONS + 1)]
        await asyncio.sleep(0.01)
        assert _busy(sender) == [SHARD_CONNECTIONS, 0]  # the ninth went to a second shard
        assert [call.done() for call in calls] == [False] * SHARD_CONNECTIONS + [True]
        gate.set()
        await asyncio.gather(*calls)
        assert _busy(sender) == [0, 0]
        with pytest.raises(httpx.ConnectError):
            await _call(sender, "/fail")
        assert _busy(sender) == [0, 0]
        await sender.aclose()
        assert sender.is_closed
        assert _busy(sender) == []

    asyncio.run(scenario())


def test_a_cancelled_request_frees_its_slot_and_a_full_pool_shares_the_least_busy() -> None:
    async def scenario() -> None:
        sender = AsyncSender()
        gate = asyncio.Event()
        sender._shards.append(_async_sender._Shard())
        sender._shards[0].transport.gate = gate
        waiting = asyncio.create_task(_call(sender))
        await asyncio.sleep(0.01)
        assert _busy(sender) == [1]
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert _busy(sender) == [0]
        for shard in range(MAX_SHARDS):
            if shard:
                sender._shards.append(_async_sender._Shard())
            sender._shards[shard].busy = SHARD_CONNECTIONS
        sender._shards[3].busy -= 1
        assert sender._shard() is sender._shards[3]
        sender._shards[3].busy += 2
        assert sender._shard() is sender._shards[0]

    asyncio.run(scenario())


def test_a_proxy_in_the_environment_sends_through_an_httpx_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    sender = AsyncSender()
    assert isinstance(sender._client, httpx.AsyncClient)
    asyncio.run(sender.aclose())
