"""The one retry layer: retries and attempt deadlines of every backend call and stream.

Policy (`RetryPolicy`), for every call:

- `timeout` bounds each attempt's whole duration (`_deadline`): connecting, the headers and
  the body; for a stream, its opening and every gap between two chunks, and the whole stream
  when `stream_timeout` is set. An attempt past its deadline fails with a timeout.
- Transient failures are retried with exponential backoff and 10 % jitter, up to
  `max_retries` retries: timeouts, connection errors, HTTP 429 and 5xx from a server, and a
  non-server backend's `InferenceServerError` unless it says `retryable=False` or is an
  out-of-memory error (retrying the same work cannot fit it in memory).
- A server's `Retry-After` (seconds or an HTTP date) is honoured up to `backoff_max`; a
  server asking for a longer wait is not retried (the error carries `retry_after`).
- Any other 4xx and any malformed response raise `InferenceServerError` at once, naming the
  server URL, the adapter and the status (`_http.classify`).
- A stream is retried only until its first chunk arrived: once text was handed to the caller,
  an interrupted stream raises instead of passing a truncated answer off as complete.

The HTTP backends run their requests through `call_with_retries` / `stream_with_retries`;
`ChatFSPO` calls other backends (in-process, custom) through `generate` / `stream` here, so
a call is retried by this one layer, never twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_fspo.backends._deadline import aiterate_within, awithin, iterate_within, within
from langchain_fspo.backends._http import AttemptTimeoutError, CallContext, classify, scrub_chain
from langchain_fspo.backends._policy import RetryPolicy
from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.errors import InferenceServerError, InferenceTimeoutError

if TYPE_CHECKING:
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = [
    "RetryPolicy",
    "acall_with_retries",
    "agenerate",
    "astream",
    "astream_with_retries",
    "call_with_retries",
    "generate",
    "stream",
    "stream_with_retries",
]

logger = logging.getLogger("langchain_fspo.backends")

T = TypeVar("T")

Verdict = tuple[bool, BaseException, float | None]
"""(retry?, the error to raise, the server's Retry-After in seconds)."""


def _log_retry(
    adapter: str | None, attempt: int, policy: RetryPolicy, wait: float, error: BaseException
) -> None:
    logger.warning(
        "%s; retry %d/%d in %.2fs",
        error,
        attempt,
        policy.max_retries,
        wait,
        extra={"fspo_adapter": adapter},
    )


def _give_up(verdict: Verdict, attempt: int, policy: RetryPolicy, cause: BaseException) -> None:
    """Raise the verdict's error when it must not (or can no more) be retried."""
    retry, error, retry_after = verdict
    if retry and attempt < policy.max_retries and not policy.waits_too_long(retry_after):
        return
    if retry and isinstance(error, InferenceServerError):
        error = _final(error, attempt, policy, retry_after)
    if error is cause:
        raise error
    scrub_chain(cause)
    raise error from cause


def _run(
    fn: Callable[[], T], judge: Callable[[BaseException], Verdict], policy: RetryPolicy, who: Any
) -> T:
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - judged; raised again unless retried
            verdict = judge(e)
            _give_up(verdict, attempt, policy, e)
            attempt += 1
            wait = policy.delay(attempt, verdict[2])
            _log_retry(who, attempt, policy, wait, verdict[1])
            time.sleep(wait)


async def _arun(
    fn: Callable[[], Awaitable[T]],
    judge: Callable[[BaseException], Verdict],
    policy: RetryPolicy,
    who: Any,
) -> T:
    attempt = 0
    while True:
        try:
            return await fn()
        except Exception as e:  # noqa: BLE001 - judged; raised again unless retried
            verdict = judge(e)
            _give_up(verdict, attempt, policy, e)
            attempt += 1
            wait = policy.delay(attempt, verdict[2])
            _log_retry(who, attempt, policy, wait, verdict[1])
            await asyncio.sleep(wait)


def _http_judge(ctx: CallContext) -> Callable[[BaseException], Verdict]:
    return lambda error: classify(error, ctx)


def call_with_retries(fn: Callable[[], T], ctx: CallContext, policy: RetryPolicy) -> T:
    """Run `fn` within `policy.timeout`, retrying transient failures; else raise typed."""
    return _run(lambda: within(fn, policy.timeout), _http_judge(ctx), policy, ctx.adapter)


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]], ctx: CallContext, policy: RetryPolicy
) -> T:
    """Async `call_with_retries` (the attempt is cancelled at its deadline)."""
    return await _arun(lambda: awithin(fn, policy.timeout), _http_judge(ctx), policy, ctx.adapter)


def _final(
    error: InferenceServerError, retries: int, policy: RetryPolicy, retry_after: float | None
) -> InferenceServerError:
    """`error` as raised after the last attempt: says why it was not tried again."""
    if policy.waits_too_long(retry_after):
        note = (
            f"the server asked to retry after {retry_after:.0f}s, more than backoff_max "
            f"{policy.backoff_max:g}s; not retried"
        )
    elif retries:
        note = f"gave up after {retries} retries"
    else:
        return error
    return type(error)(
        f"{error} ({note})",
        url=error.url,
        adapter=error.adapter,
        status_code=error.status_code,
        retryable=False,
        body=error.body,
        retry_after=error.retry_after,
    )


def _cut(ctx: CallContext, error: BaseException, chunks: int) -> InferenceServerError:
    _, typed, _ = classify(error, ctx)
    message = (
        f"{typed} -- the stream was cut off after {chunks} chunk(s); the partial answer is "
        "not returned as if it were complete"
    )
    scrub_chain(error)
    return type(typed)(
        message,
        url=typed.url,
        adapter=typed.adapter,
        status_code=typed.status_code,
        retryable=False,
        body=typed.body,
    )


def _stream(
    open_stream: Callable[[], Iterator[T]],
    judge: Callable[[BaseException], Verdict],
    cut: Callable[[BaseException, int], BaseException],
    policy: RetryPolicy,
    who: Any,
) -> Iterator[T]:
    def first() -> tuple[Iterator[T], list[T]]:
        iterator = iterate_within(open_stream, policy.timeout, policy.stream_timeout)
        try:
            return iterator, [next(iterator)]
        except StopIteration:
            return iterator, []
        except BaseException:
            _close(iterator)
            raise

    iterator, head = _run(first, judge, policy, who)
    count = len(head)
    try:
        yield from head
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception as e:
                error = cut(e, count)
                if error is e:
                    raise
                raise error from e
            count += 1
            yield item
    finally:
        _close(iterator)


async def _astream(
    open_stream: Callable[[], Awaitable[AsyncIterator[T]]],
    judge: Callable[[BaseException], Verdict],
    cut: Callable[[BaseException, int], BaseException],
    policy: RetryPolicy,
    who: Any,
) -> AsyncIterator[T]:
    async def first() -> tuple[AsyncIterator[T], list[T]]:
        iterator = aiterate_within(open_stream, policy.timeout, policy.stream_timeout)
        try:
            return iterator, [await anext(iterator)]
        except StopAsyncIteration:
            return iterator, []
        except BaseException:
            await _aclose(iterator)
            raise

    iterator, head = await _arun(first, judge, policy, who)
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
                error = cut(e, count)
                if error is e:
                    raise
                raise error from e
            count += 1
            yield item
    finally:
        await _aclose(iterator)


def stream_with_retries(
    open_stream: Callable[[], Iterator[T]], ctx: CallContext, policy: RetryPolicy
) -> Iterator[T]:
    """Yield from `open_stream()`, retrying until the first item arrived (see module doc)."""
    return _stream(open_stream, _http_judge(ctx), lambda e, n: _cut(ctx, e, n), policy, ctx.adapter)


def astream_with_retries(
    open_stream: Callable[[], Awaitable[AsyncIterator[T]]], ctx: CallContext, policy: RetryPolicy
) -> AsyncIterator[T]:
    """Async `stream_with_retries`."""
    return _astream(
        open_stream, _http_judge(ctx), lambda e, n: _cut(ctx, e, n), policy, ctx.adapter
    )


# ---------------------------------------------------------------- other backends (ChatFSPO)


def _out_of_memory(error: BaseException) -> bool:
    """Whether `error` or one of its causes is an out-of-memory error (torch, CUDA, Python)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError) or type(current).__name__.endswith("OutOfMemoryError"):
            return True
        if "out of memory" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def _backend_judge(backend: Backend, adapter: str | None) -> Callable[[BaseException], Verdict]:
    def judge(error: BaseException) -> Verdict:
        if isinstance(error, AttemptTimeoutError):
            msg = (
                f"The {backend.name} backend did not answer for adapter {adapter!r}: {error}; "
                "raise `timeout` or check the backend."
            )
            return True, InferenceTimeoutError(msg, adapter=adapter), None
        if isinstance(error, InferenceServerError):
            retry = error.retryable is not False and not _out_of_memory(error)
            return retry, error, error.retry_after
        return False, error, None

    return judge


def _backend_cut(judge: Callable[[BaseException], Verdict]) -> Callable[[BaseException, int], Any]:
    return lambda error, _chunks: judge(error)[1]


def generate(
    backend: Backend, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
) -> Generation:
    """`backend.generate` under the backend's `retry` policy (server backends apply it inside)."""
    if backend.retries_inside:
        return backend.generate(prompt, adapter=adapter, params=params)
    policy = backend.retry
    attempt = lambda: backend.generate(prompt, adapter=adapter, params=params)  # noqa: E731
    judge = _backend_judge(backend, adapter)
    return _run(lambda: within(attempt, policy.timeout), judge, policy, adapter)


async def agenerate(
    backend: Backend, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
) -> Generation:
    """Async `generate`."""
    if backend.retries_inside:
        return await backend.agenerate(prompt, adapter=adapter, params=params)
    policy = backend.retry
    attempt = lambda: backend.agenerate(prompt, adapter=adapter, params=params)  # noqa: E731
    judge = _backend_judge(backend, adapter)
    return await _arun(lambda: awithin(attempt, policy.timeout), judge, policy, adapter)


def stream(
    backend: Backend, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
) -> Iterator[GenerationChunk]:
    """`backend.stream` under the backend's `retry` policy, retried before its first chunk."""
    if backend.retries_inside:
        return backend.stream(prompt, adapter=adapter, params=params)
    judge = _backend_judge(backend, adapter)
    return _stream(
        lambda: iter(backend.stream(prompt, adapter=adapter, params=params)),
        judge,
        _backend_cut(judge),
        backend.retry,
        adapter,
    )


def astream(
    backend: Backend, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
) -> AsyncIterator[GenerationChunk]:
    """Async `stream`."""
    if backend.retries_inside:
        return backend.astream(prompt, adapter=adapter, params=params)

    async def open_stream() -> AsyncIterator[GenerationChunk]:
        return aiter(backend.astream(prompt, adapter=adapter, params=params))

    judge = _backend_judge(backend, adapter)
    return _astream(open_stream, judge, _backend_cut(judge), backend.retry, adapter)


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
