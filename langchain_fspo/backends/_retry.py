"""Retries of the HTTP backends' calls and streams (TGI, OpenAI-compatible).

Policy, for every call:

- timeouts, connection errors, HTTP 429 and HTTP 5xx are retried with exponential backoff (and
  the server's `Retry-After`, when it sends one), up to `max_retries` retries;
- any other 4xx and any malformed response raise `InferenceServerError` at once, naming the
  server URL, the adapter and the status (`_http.classify`);
- a stream is retried only until its first chunk arrived: once text was handed to the caller,
  an interrupted stream raises instead of passing a truncated answer off as complete.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_fspo.backends._http import CallContext, classify
from langchain_fspo.errors import InferenceServerError

__all__ = [
    "RetryPolicy",
    "acall_with_retries",
    "astream_with_retries",
    "call_with_retries",
    "stream_with_retries",
]

logger = logging.getLogger("langchain_fspo.backends")

T = TypeVar("T")


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
