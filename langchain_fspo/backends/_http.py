"""Retries, error translation and SSE parsing shared by the HTTP backends (TGI, OpenAI-compatible).

Policy, for every call:

- timeouts, connection errors, HTTP 429 and HTTP 5xx are retried with exponential backoff (and
  the server's `Retry-After`, when it sends one), up to `max_retries` retries;
- any other 4xx and any malformed response raise `InferenceServerError` at once, naming the
  server URL, the adapter and the status;
- a stream is retried only until its first chunk arrived: once text was handed to the caller,
  an interrupted stream raises instead of passing a truncated answer off as complete.

Nothing here logs or formats headers, so an API key cannot leak through logs or errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from langchain_fspo.errors import InferenceServerError

logger = logging.getLogger("langchain_fspo.backends")

T = TypeVar("T")

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
class RetryPolicy:
    """How often and how patiently a failed call is retried."""

    max_retries: int = 2
    """Retries after the first attempt (0: never retry)."""
    backoff_factor: float = 0.5
    """Seconds before the first retry; doubled on each further retry."""
    backoff_max: float = 8.0
    """The longest wait between two attempts, in seconds."""

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            msg = f"`max_retries` must be >= 0, got {self.max_retries}."
            raise ValueError(msg)
        if self.backoff_factor < 0 or self.backoff_max < 0:
            msg = (
                f"`backoff_factor` and `backoff_max` must be >= 0, got {self.backoff_factor} "
                f"and {self.backoff_max}."
            )
            raise ValueError(msg)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based), with 10% jitter."""
        base = min(self.backoff_max, self.backoff_factor * 2.0 ** (retry - 1))
        if retry_after is not None:
            base = min(self.backoff_max, max(base, retry_after))
        return base * (1 + random.random() / 10)  # noqa: S311 - jitter, not cryptography


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


def _log_retry(ctx: CallContext, attempt: int, wait: float, error: InferenceServerError) -> None:
    logger.warning(
        "%s; retry %d in %.2fs", error, attempt, wait, extra={"fspo_adapter": ctx.adapter}
    )


def call_with_retries(fn: Callable[[], T], ctx: CallContext, policy: RetryPolicy) -> T:
    """Run `fn`, retrying transient failures; raise `InferenceServerError` otherwise."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as e:
            retry, error, retry_after = classify(e, ctx)
            if not retry or attempt >= policy.max_retries:
                if retry:
                    error = _exhausted(error, attempt)
                raise error from e
            attempt += 1
            wait = policy.delay(attempt, retry_after)
            _log_retry(ctx, attempt, wait, error)
            time.sleep(wait)


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]], ctx: CallContext, policy: RetryPolicy
) -> T:
    """Async `call_with_retries`."""
    attempt = 0
    while True:
        try:
            return await fn()
        except Exception as e:
            retry, error, retry_after = classify(e, ctx)
            if not retry or attempt >= policy.max_retries:
                if retry:
                    error = _exhausted(error, attempt)
                raise error from e
            attempt += 1
            wait = policy.delay(attempt, retry_after)
            _log_retry(ctx, attempt, wait, error)
            await asyncio.sleep(wait)


def _exhausted(error: InferenceServerError, retries: int) -> InferenceServerError:
    if retries == 0:
        return error
    message = f"{error} (gave up after {retries} retries)"
    return InferenceServerError(
        message,
        url=error.url,
        adapter=error.adapter,
        status_code=error.status_code,
        retryable=False,
    )


def _cut(ctx: CallContext, error: BaseException, chunks: int) -> InferenceServerError:
    _, typed, _ = classify(error, ctx)
    message = (
        f"{typed} -- the stream was cut off after {chunks} chunk(s); the partial answer is "
        "not returned as if it were complete"
    )
    return InferenceServerError(
        message,
        url=typed.url,
        adapter=typed.adapter,
        status_code=typed.status_code,
        retryable=False,
    )


def stream_with_retries(
    open_stream: Callable[[], Iterator[T]], ctx: CallContext, policy: RetryPolicy
) -> Iterator[T]:
    """Yield from `open_stream()`, retrying until the first item arrived (see module doc)."""

    def first() -> tuple[Iterator[T], list[T]]:
        iterator = open_stream()
        try:
            return iterator, [next(iterator)]
        except StopIteration:
            return iterator, []
        except BaseException:
            _close(iterator)
            raise

    iterator, head = call_with_retries(first, ctx, policy)
    count = len(head)
    try:
        yield from head
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception as e:
                raise _cut(ctx, e, count) from e
            count += 1
            yield item
    finally:
        _close(iterator)


async def astream_with_retries(
    open_stream: Callable[[], Awaitable[AsyncIterator[T]]], ctx: CallContext, policy: RetryPolicy
) -> AsyncIterator[T]:
    """Async `stream_with_retries`."""

    async def first() -> tuple[AsyncIterator[T], list[T]]:
        iterator = await open_stream()
        try:
            return iterator, [await anext(iterator)]
        except StopAsyncIteration:
            return iterator, []
        except BaseException:
            await _aclose(iterator)
            raise

    iterator, head = await acall_with_retries(first, ctx, policy)
    count = len(head)
    try:
        for item in head:
            yield item
        while True:
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                return
            except Exception as e:
                raise _cut(ctx, e, count) from e
            count += 1
            yield item
    finally:
        await _aclose(iterator)


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


# ---------------------------------------------------------------------- SSE


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
