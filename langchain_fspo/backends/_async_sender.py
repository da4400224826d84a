"""Async HTTP sending with pooled connections that stay cheap at 64 requests in flight.

httpcore's connection pool (under every httpx client) re-examines all its connections, and
every queued request against each, whenever a request starts or ends: with 64 requests in
flight that scan was over a third of the client's CPU per call, and keeping fewer idle
connections only trades it for reconnecting (bench/results/serving_overhead_perf_notes.md).
`AsyncSender` splits the pool into small ones (shards of `SHARD_CONNECTIONS` connections, each
kept alive) and sends each request on the first shard with a free connection, so each scan
stays short however many requests are in flight. A shard counts its requests until their
responses are closed (read to the end, `aclose`, or failed).

Requests go straight to the shard's `httpx.AsyncHTTPTransport` (no auth flow, redirects,
cookie jar or event hooks: the callers build complete requests). When the environment names
a proxy (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`), one `httpx.AsyncClient` sends instead,
which applies it.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator

import httpx

__all__ = ["MAX_SHARDS", "SHARD_CONNECTIONS", "AsyncSender"]

SHARD_CONNECTIONS = 8
"""Connections per shard, all kept alive between requests."""

MAX_SHARDS = 16
"""Shards at most; past `MAX_SHARDS * SHARD_CONNECTIONS` in flight, requests queue."""


def _proxy_in_env() -> bool:
    """Whether the environment names an HTTP proxy (httpx's clients then apply it)."""
    proxies = urllib.request.getproxies()
    return any(scheme in proxies for scheme in ("http", "https", "all"))


class _Shard:
    """One small pool and how many of its requests are in flight."""

    __slots__ = ("busy", "transport")

    def __init__(self) -> None:
        limits = httpx.Limits(
            max_connections=SHARD_CONNECTIONS, max_keepalive_connections=SHARD_CONNECTIONS
        )
        self.transport = httpx.AsyncHTTPTransport(limits=limits)
        self.busy = 0


class _Counted(httpx.AsyncByteStream):
    """A response body that frees its shard's slot when closed (once).

    httpx closes a response that was read to its end.
    """

    def __init__(self, stream: httpx.AsyncByteStream, shard: _Shard) -> None:
        self._stream = stream
        self._shard: _Shard | None = shard

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()  # httpx closes the response when it is read through

    async def aclose(self) -> None:
        if self._shard is not None:
            self._shard.busy -= 1
            self._shard = None
        await self._stream.aclose()


class AsyncSender:
    """Sends requests over one event loop's pooled connections (see the module docstring)."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(timeout=None) if _proxy_in_env() else None  # noqa: S113
        self._shards: list[_Shard] = []
        self.is_closed = False

    def _shard(self) -> _Shard:
        for shard in self._shards:
            if shard.busy < SHARD_CONNECTIONS:
                return shard
        if len(self._shards) < MAX_SHARDS:
            self._shards.append(_Shard())
            return self._shards[-1]
        return min(self._shards, key=lambda shard: shard.busy)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The response to `request`, its body not read yet (the caller closes it)."""
        if self._client is not None:
            return await self._client.send(request, stream=True)
        shard = self._shard()
        shard.busy += 1
        try:
            response = await shard.transport.handle_async_request(request)
        except BaseException:
            shard.busy -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)  # noqa: S101 - httpx's own
        response.stream = _Counted(response.stream, shard)
        response.request = request
        return response

    async def aclose(self) -> None:
        """Close every connection (a closed sender is replaced by `_pool.LoopClients`)."""
        self.is_closed = True
        shards, self._shards = self._shards, []
        for shard in shards:
            await shard.transport.aclose()
        if self._client is not None:
            await self._client.aclose()
