"""What the HTTP backends (TGI, OpenAI-compatible) share: URLs, keys, and typed errors.

Every failed attempt is classified (`classify`): whether retrying can help (timeouts,
connection errors, HTTP 429 and 5xx) and the `InferenceServerError` to raise, naming the
server URL, the adapter and the status. `_retry` retries by that verdict; `_sse` reads streams.

Nothing here logs or formats headers, so an API key cannot leak through logs or errors; a
password in the base URL is redacted from every URL shown and from the client errors chained
behind ours (`scrub_chain`), and a server's error body is quoted up to `MAX_DETAIL_CHARS`
(the whole body stays on `InferenceServerError.body`).
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from langchain_fspo.errors import InferenceServerError, InferenceTimeoutError

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


MAX_DETAIL_CHARS = 2000
"""The most characters of a server's error body an error message quotes."""

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,31}://)[^/\s@]{1,512}@")


def safe_url(url: str) -> str:
    """`url` without user:password and query string, for messages and logs.

    Example:
        >>> safe_url("https://u:secret@host:8443/v1?token=abc")
        'https://host:8443/v1'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_url(url: str) -> str:
    """`url` with its user:password replaced by `***` (the rest kept, for display).

    Example:
        >>> redact_url("http://alice:pw@host:8080/?api-version=1")
        'http://***@host:8080/?api-version=1'
    """
    return redact_text(url)


def redact_text(text: str) -> str:
    """`text` with the user:password of every URL in it replaced by `***`."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def shorten(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """`text` without URL credentials, cut to `limit` characters with a note of the rest.

    Example:
        >>> shorten("http://u:pw@h/ " + "x" * 5000, limit=20)
        'http://***@h/ xxxxxx... (4995 more characters)'
    """
    if len(text) <= limit:
        return redact_text(text)
    head = redact_text(text[: limit + 600])[:limit]  # redacted before the cut: no half URL
    return f"{head}... ({len(text) - limit} more characters)"


def scrub_chain(error: BaseException) -> None:
    """Redact credentials from, and shorten, the messages of `error` and its causes, in place.

    httpx and huggingface_hub name the full request URL (password included) in their errors,
    and hub quotes the whole response body; ours are raised `from` them.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(isinstance(arg, str) for arg in current.args):
            current.args = tuple(
                shorten(arg) if isinstance(arg, str) else arg for arg in current.args
            )
        current = current.__cause__ or current.__context__


def resolve_api_key(api_key: str | SecretStr | None, env_var: str) -> SecretStr | None:
    """`api_key` as a `SecretStr`, or the value of `env_var` when none is given.

    An empty key (`""`) means none: no `Authorization` header is sent.
    """
    if api_key is None:
        api_key = os.environ.get(env_var) or None
    if isinstance(api_key, str):
        return SecretStr(api_key) if api_key else None
    return api_key if api_key is None or api_key.get_secret_value() else None


def normalize_base_url(url: str) -> str:
    """Strip a trailing `/` and `/v1` from the path (a query string is kept).

    Example:
        >>> normalize_base_url("http://h:8080/v1/"), normalize_base_url("http://h/?api-version=1")
        ('http://h:8080', 'http://h?api-version=1')
    """
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/").removesuffix("/v1").rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def join_url(base_url: str, route: str) -> str:
    """`route` appended to the path of `base_url`, before its query string.

    Example:
        >>> join_url("http://h?api-version=1", "/v1/chat/completions")
        'http://h/v1/chat/completions?api-version=1'
    """
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path + route, parts.query, ""))


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

    def error(
        self,
        detail: str,
        *,
        status: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
        kind: type[InferenceServerError] = InferenceServerError,
    ) -> InferenceServerError:
        status_text = f"HTTP {status}: " if status is not None else ""
        message = f"{self.describe()} failed: {status_text}{shorten(detail)}"
        return kind(
            message,
            url=safe_url(self.url),
            adapter=self.adapter,
            status_code=status,
            retryable=False,  # the backend retries what is worth retrying before raising
            body=body,
            retry_after=retry_after,
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


def error_detail(response: Any) -> tuple[str, str | None]:
    """(the server's own error message, the whole body) of an error response.

    The message is read from a TGI, vLLM or OpenAI error shape; callers shorten it.
    """
    try:
        body: str | None = str(response.text)
    except Exception:  # noqa: BLE001 - a streamed body that was not read, or a closed stream
        return "(no body)", None
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        return body or "(empty body)", body
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error), body
        if error is not None:
            kind = payload.get("error_type")
            return (f"{error} ({kind})" if kind else str(error)), body
        if "message" in payload:
            return str(payload["message"]), body
    return body or "(empty body)", body


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP date; else None.

    Example:
        >>> parse_retry_after("3"), parse_retry_after("soon")
        (3.0, None)
        >>> parse_retry_after("Sun, 06 Dec 2026 10:00:05 GMT", now=1796551200.0)
        5.0
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT; a zone-less one is read as such
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _retry_after(response: Any) -> float | None:
    try:
        return parse_retry_after(response.headers.get("retry-after"))
    except (AttributeError, TypeError):
        return None


class AttemptTimeoutError(TimeoutError):
    """One attempt ran past its `timeout` (or a stream past its deadline); see `_deadline`."""


TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    httpx.TimeoutException,
    *(e for e in TRANSPORT_ERRORS if "Timeout" in e.__name__),
)


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
        detail, body = error_detail(response)
        retry_after = _retry_after(response)
        typed = ctx.error(detail, status=status, body=body, retry_after=retry_after)
        return status in RETRY_STATUSES, typed, retry_after
    if isinstance(error, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        # The request itself cannot be sent (a base URL without http://, a bad header value):
        # no retry can help.
        return False, ctx.error(f"{type(error).__name__}: {error}"), None
    if isinstance(error, TIMEOUT_ERRORS):
        detail = str(error) or "no answer in time"
        return True, ctx.error(f"timed out: {detail}", kind=InferenceTimeoutError), None
    if isinstance(error, TRANSPORT_ERRORS):
        kind = type(error).__name__
        return True, ctx.error(f"{kind}: {error}"), None
    return False, ctx.error(f"{type(error).__name__}: {error}"), None
