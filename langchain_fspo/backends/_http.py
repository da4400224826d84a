"""What the HTTP backends (TGI, OpenAI-compatible) share: URLs, keys, and typed errors.

Every failed attempt is classified (`classify`): whether retrying can help (timeouts,
connection errors, HTTP 429 and 5xx) and the `InferenceServerError` to raise, naming the
server URL, the adapter and the status. `_retry` retries by that verdict; `_sse` reads streams.

Nothing here logs or formats headers, so an API key cannot leak through logs or errors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from langchain_fspo.errors import InferenceServerError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses worth another try: overloaded, or a server/gateway failure."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Timeout / connection / protocol errors of httpx (hub 1.x) and httpx2 (hub 2.x)."""
    errors: list[type[BaseException]] = [httpx.TransportError, TimeoutError, ConnectionError]
    try:
        import httpx2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        errors.append(httpx2.TransportError)
    try:
        from huggingface_hub.errors import InferenceTimeoutError
    except ImportError:  # pragma: no cover - every supported hub has it
        pass
    else:
        errors.append(InferenceTimeoutError)
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()


def safe_url(url: str) -> str:
    """`url` without user:password and query string, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def resolve_api_key(api_key: str | SecretStr | None, env_var: str) -> SecretStr | None:
    """`api_key` as a `SecretStr`, or the value of `env_var` when none is given."""
    if api_key is None:
        api_key = os.environ.get(env_var) or None
    return SecretStr(api_key) if isinstance(api_key, str) else api_key


def normalize_base_url(url: str) -> str:
    """Strip a trailing `/` and `/v1` so that route paths can be appended."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


@dataclass(frozen=True)
class CallContext:
    """Who is calling what, for error messages and logs."""

    backend: str
    url: str
    adapter: str | None
    route: str

    def describe(self) -> str:
        adapter = self.adapter if self.adapter is not None else "<base model>"
        return f"{self.backend} server {safe_url(self.url)}{self.route} (adapter {adapter!r})"

    def error(self, detail: str, *, status: int | None = None) -> InferenceServerError:
        status_text = f"HTTP {status}: " if status is not None else ""
        message = f"{self.describe()} failed: {status_text}{detail}"
        return InferenceServerError(
            message,
            url=safe_url(self.url),
            adapter=self.adapter,
            status_code=status,
            retryable=False,  # the backend retries what is worth retrying before raising
        )


class MalformedResponseError(ValueError):
    """The server answered 200 with a body that does not have the expected shape."""


class StreamInterruptedError(RuntimeError):
    """A stream ended before its final event."""


def _response_of(error: BaseException) -> Any:
    """The HTTP response behind `error` (httpx, hub, or hub's TGI errors), if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if response is not None and hasattr(response, "status_code"):
            return response
        current = current.__cause__ or current.__context__
    return None


def error_detail(response: Any) -> str:
    """The server's own error message from an error response (TGI, vLLM or OpenAI shape)."""
    try:
        payload = response.json()
    except Exception:  # noqa: BLE001 - not JSON, not read, or a closed stream
        try:
            text = str(response.text)
        except Exception:  # noqa: BLE001 - a streamed body that was not read
            return "(no body)"
        return text[:300] or "(empty body)"
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error is not None:
            kind = payload.get("error_type")
            return f"{error} ({kind})" if kind else str(error)
        if "message" in payload:
            return str(payload["message"])
    return json.dumps(payload)[:300]


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def classify(
    error: BaseException, ctx: CallContext
) -> tuple[bool, InferenceServerError, float | None]:
    """(retry?, the typed error to raise, the server's Retry-After) for a failed attempt."""
    if isinstance(error, InferenceServerError):
        return False, error, None
    if isinstance(error, MalformedResponseError | json.JSONDecodeError):
        return False, ctx.error(f"malformed response: {error}"), None
    if isinstance(error, StreamInterruptedError):
        return True, ctx.error(str(error)), None
    response = _response_of(error)
    if response is not None:
        status = int(response.status_code)
        detail = error_detail(response)
        return status in RETRY_STATUSES, ctx.error(detail, status=status), _retry_after(response)
    if isinstance(error, TRANSPORT_ERRORS):
        kind = type(error).__name__
        return True, ctx.error(f"{kind}: {error}"), None
    return False, ctx.error(f"{type(error).__name__}: {error}"), None
