"""`ServerBackend`: what the two HTTP server backends (TGI, OpenAI-compatible) share.

The server's normalised base URL, the resolved API key, extra headers, the retry policy (one
attempt's deadline is also the client's read timeout) and the pooled JSON client of
`_json_http`, with `close` / `aclose` for its connections. Each backend resolves its own API
key (its environment variable) and keeps its own routes and wire formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import SecretStr

from langchain_fspo.backends._http import normalize_base_url
from langchain_fspo.backends._json_http import JsonHttp
from langchain_fspo.backends._retry import RetryPolicy
from langchain_fspo.backends.base import Backend

__all__ = ["ServerBackend"]


class ServerBackend(Backend):
    """A backend that calls a model server over HTTP and retries each request itself."""

    retries_inside: ClassVar[bool] = True
    base_url: str
    api_key: SecretStr | None
    headers: dict[str, str]

    def _connect(
        self,
        base_url: str,
        api_key: SecretStr | None,
        headers: Mapping[str, str] | None,
        *,
        max_retries: int,
        backoff_factor: float,
        backoff_max: float,
        timeout: float | None,
        stream_timeout: float | None,
    ) -> None:
        """Set the server, credentials, headers and retry policy; make the pooled client."""
        self.base_url = normalize_base_url(base_url)
        self.api_key = api_key
        self.retry = RetryPolicy(
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            timeout=timeout,
            stream_timeout=stream_timeout,
        )
        self.headers = dict(headers or {})
        self._http = JsonHttp(self.base_url, headers=self.headers, api_key=self.api_key)

    @property
    def timeout(self) -> float | None:
        """Seconds one attempt may take (`retry.timeout`); also the client's read timeout."""
        return self.retry.timeout

    @property
    def supports_tools(self) -> bool:
        """`tools` / `tool_choice` reach the server on its chat route (TGI: as a grammar)."""
        return True

    def close(self) -> None:
        """Close the pooled HTTP connections, sync and async (the backend stays usable)."""
        self._http.close()

    async def aclose(self) -> None:
        """`close`, awaiting the running event loop's connections."""
        await self._http.aclose()
