"""JSON over HTTP for both server backends: a body posted to a route, a JSON answer or a stream.

`JsonHttp` holds one server's URL, headers and pooled connections: a sync `httpx.Client`, and
per event loop an `AsyncSender` (`_pool.LoopClients`), which hands complete requests to
httpx's transports directly (`_async_sender`: `httpx.AsyncClient.send` adds an auth flow,
redirects, a cookie jar, event hooks and a log line per request, which cost about as much
client CPU as the request itself; bench/results/serving_overhead_perf_notes.md). Bodies and
answers go through `_json` (orjson).

`read_timeout` is httpx's limit per network operation; the attempt's whole deadline is
`_deadline`'s. Errors are httpx's own (`httpx.HTTPStatusError` with the response read,
transport errors); `_http.classify` turns them into typed errors and `_retry` retries them.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import httpx
from pydantic import SecretStr

from langchain_fspo.backends._async_sender import AsyncSender
from langchain_fspo.backends._deadline import abandoned
from langchain_fspo.backends._http import AttemptTimeoutError, join_url
from langchain_fspo.backends._json import dumps, loads
from langchain_fspo.backends._pool import LoopClients

__all__ = ["JsonHttp"]


def _user_agent() -> str:
    try:
        version = metadata.version("langchain-fspo")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
        version = "0"
    return f"langchain-fspo/{version} python-httpx/{httpx.__version__}"


_USER_AGENT = _user_agent()


class JsonHttp:
    """Posts JSON to one server, sync and async, over pooled connections.

    The headers are built once: `Accept`, `User-Agent` and JSON's `Content-Type`, the
    caller's (which win), and `Authorization` (the API key as a bearer token; a user:password
    in the URL as Basic auth, which wins, as in httpx).

    Example:
        >>> http = JsonHttp("http://h:8080?v=1", headers={"X-Team": "a"}, api_key=None)
        >>> http.url("/generate"), http.headers["content-type"]
        ('http://h:8080/generate?v=1', 'application/json')
    """

    def __init__(
        self, base_url: str, *, headers: Mapping[str, str], api_key: SecretStr | None
    ) -> None:
        self.base_url = base_url
        self.headers: dict[str, str] = {
            "accept": "*/*",
            "user-agent": _USER_AGENT,  # httpx's clients send one; some gateways require it
            "content-type": "application/json",
            **{name.lower(): value for name, value in headers.items()},
        }
        if api_key is not None:
            self.headers["authorization"] = f"Bearer {api_key.get_secret_value()}"
        url = httpx.URL(base_url)
        if url.username or url.password:  # as httpx's clients do: Basic auth from the URL
            pair = f"{url.username}:{url.password}".encode()
            self.headers["authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        self._headers = httpx.Headers(self.headers)  # parsed once; each request copies it
        self._urls: dict[str, str] = {}
        self._parsed: dict[str, httpx.URL] = {}
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._async_clients: LoopClients[AsyncSender] = LoopClients(AsyncSender)
        self._timeouts: dict[float | None, dict[str, Any]] = {}

    def url(self, route: str) -> str:
        """The URL of `route` on this server (cached)."""
        url = self._urls.get(route)
        if url is None:
            url = self._urls[route] = join_url(self.base_url, route)
        return url

    def _extensions(self, read_timeout: float | None) -> dict[str, Any]:
        """The per-request timeouts of httpx: connect, write, read and pool each `read_timeout`."""
        extensions = self._timeouts.get(read_timeout)
        if extensions is None:
            extensions = {"timeout": httpx.Timeout(read_timeout).as_dict()}
            self._timeouts[read_timeout] = extensions
        return extensions

    # ------------------------------------------------------------------ sync

    def client(self, read_timeout: float | None) -> httpx.Client:
        """The sync client (one per backend; made with the first caller's `read_timeout`)."""
        with self._lock:
            if self._sync is None:
                self._sync = httpx.Client(timeout=read_timeout)
            return self._sync

    def post(self, route: str, body: Any, read_timeout: float | None) -> httpx.Response:
        """Send `body`; the response's body is left unread (the caller closes it)."""
        client = self.client(read_timeout)
        request = client.build_request(
            "POST",
            self.url(route),
            content=dumps(body),
            headers=self.headers,
            timeout=read_timeout,
        )
        return client.send(request, stream=True)

    def post_json(self, route: str, body: Any, read_timeout: float | None) -> Any:
        """The JSON answer to `body`; `httpx.HTTPStatusError` for an HTTP error status."""
        response = self.post(route, body, read_timeout)
        try:
            if response.status_code >= 400:  # noqa: PLR2004 - HTTP error range
                response.read()  # kept on the response for the error's message
                response.raise_for_status()
            data = _read_body(response)
        finally:
            response.close()
        return loads(data)

    def open_stream(self, route: str, body: Any, read_timeout: float | None) -> httpx.Response:
        """A streamed response with a success status (else its error is raised, body read)."""
        response = self.post(route, body, read_timeout)
        if response.status_code >= 400:  # noqa: PLR2004 - HTTP error range
            try:
                response.read()
            finally:
                response.close()
            response.raise_for_status()
        return response

    # ------------------------------------------------------------------ async

    async def _asend(self, route: str, body: Any, read_timeout: float | None) -> httpx.Response:
        url = self._parsed.get(route)
        if url is None:
            url = self._parsed[route] = httpx.URL(self.url(route))
        request = httpx.Request(
            "POST",
            url,
            content=dumps(body),
            headers=self._headers,
            extensions=self._extensions(read_timeout),
        )
        return await self._async_clients.get().send(request)

    async def apost_json(self, route: str, body: Any, read_timeout: float | None) -> Any:
        """Async `post_json` (the attempt's deadline cancels it from outside)."""
        response = await self._asend(route, body, read_timeout)
        try:
            data = await response.aread()
        finally:
            await response.aclose()
        if response.status_code >= 400:  # noqa: PLR2004 - HTTP error range
            response.raise_for_status()
        return loads(data)

    async def aopen_stream(
        self, route: str, body: Any, read_timeout: float | None
    ) -> httpx.Response:
        """Async `open_stream`."""
        response = await self._asend(route, body, read_timeout)
        if response.status_code >= 400:  # noqa: PLR2004 - HTTP error range
            try:
                await response.aread()
            finally:
                await response.aclose()
            response.raise_for_status()
        return response

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the sync client and every loop's async connections (reopened on use)."""
        self._close_sync()
        self._async_clients.close()

    async def aclose(self) -> None:
        """`close`, awaiting the running event loop's connections."""
        self._close_sync()
        await self._async_clients.aclose()

    def _close_sync(self) -> None:
        with self._lock:
            sync, self._sync = self._sync, None
        if sync is not None:
            sync.close()


def _read_body(response: httpx.Response) -> bytes:
    """The whole body; stops early when the attempt was abandoned at its deadline."""
    parts = []
    for piece in response.iter_bytes():
        if abandoned():
            msg = "the attempt passed its deadline while its body was read"
            raise AttemptTimeoutError(msg)
        parts.append(piece)
    return b"".join(parts)
