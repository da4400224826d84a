"""`ChatFSPO`'s retries and per-attempt timeout around the backend.

A call that fails with a retryable `InferenceServerError` is tried again, up to `max_retries`
times, after an exponential backoff (0.5 s, 1 s, 2 s, ... at most 8 s). A stream is retried
only before its first chunk. `timeout` bounds one `generate` attempt of a backend that has no
timeout of its own (server backends apply theirs per HTTP attempt).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError

from langchain_fspo.backends.base import Backend, Generation, GenerationChunk
from langchain_fspo.chat_models._call import PreparedCall
from langchain_fspo.errors import InferenceServerError

__all__ = ["agenerate", "astream", "generate", "stream"]

logger = logging.getLogger(__name__)


def _own_timeout(backend: Backend) -> bool:
    """Whether the backend applies a timeout per HTTP attempt itself (TGI, OpenAI-compatible)."""
    return isinstance(getattr(backend, "timeout", None), int | float)


def _backoff(backend: Backend, max_retries: int, attempt: int, error: Exception) -> float:
    delay = min(0.5 * 2.0**attempt, 8.0)
    logger.warning(
        "Backend %s failed (%s); retry %d/%d in %.1fs.",
        backend.name,
        error,
        attempt + 1,
        max_retries,
        delay,
    )
    return delay


def _timeout_message(backend: Backend, timeout: float | None, adapter: str | None) -> str:
    return (
        f"The {backend.name} backend did not answer within {timeout}s for adapter "
        f"{adapter!r}; raise `timeout` or check the server."
    )


def _generate_with_timeout(backend: Backend, call: PreparedCall, timeout: float) -> Generation:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fspo-timeout")
    try:
        future = pool.submit(
            backend.generate, call.prompt, adapter=call.adapter, params=call.params
        )
        return future.result(timeout=timeout)
    except FutureTimeoutError as e:
        raise InferenceServerError(_timeout_message(backend, timeout, call.adapter)) from e
    finally:
        pool.shutdown(wait=False)


def generate(
    backend: Backend, call: PreparedCall, *, timeout: float | None, max_retries: int
) -> Generation:
    """`backend.generate` for `call`, with retries and the timeout (see the module docstring)."""
    for attempt in range(max_retries + 1):
        try:
            if timeout is None or _own_timeout(backend):
                return backend.generate(call.prompt, adapter=call.adapter, params=call.params)
            return _generate_with_timeout(backend, call, timeout)
        except InferenceServerError as e:
            if attempt == max_retries or e.retryable is False:
                raise
            time.sleep(_backoff(backend, max_retries, attempt, e))
    msg = "unreachable"  # pragma: no cover
    raise AssertionError(msg)  # pragma: no cover


async def agenerate(
    backend: Backend,
    call: PreparedCall,
    *,
    timeout: float | None,  # noqa: ASYNC109 - per attempt, as `generate`; kept as it was
    max_retries: int,
) -> Generation:
    """Async `generate`."""
    for attempt in range(max_retries + 1):
        try:
            request = backend.agenerate(call.prompt, adapter=call.adapter, params=call.params)
            if timeout is None or _own_timeout(backend):
                return await request
            return await asyncio.wait_for(request, timeout)
        except TimeoutError as e:
            error = InferenceServerError(_timeout_message(backend, timeout, call.adapter))
            if attempt == max_retries:
                raise error from e
            await asyncio.sleep(_backoff(backend, max_retries, attempt, error))
        except InferenceServerError as e:
            if attempt == max_retries or e.retryable is False:
                raise
            await asyncio.sleep(_backoff(backend, max_retries, attempt, e))
    msg = "unreachable"  # pragma: no cover
    raise AssertionError(msg)  # pragma: no cover


def stream(backend: Backend, call: PreparedCall, *, max_retries: int) -> Iterator[GenerationChunk]:
    """`backend.stream` for `call`, retried only until its first chunk arrived."""
    for attempt in range(max_retries + 1):
        started = False
        try:
            for chunk in backend.stream(call.prompt, adapter=call.adapter, params=call.params):
                started = True
                yield chunk
        except InferenceServerError as e:
            if started or attempt == max_retries or e.retryable is False:
                raise
            time.sleep(_backoff(backend, max_retries, attempt, e))
        else:
            return


async def astream(
    backend: Backend, call: PreparedCall, *, max_retries: int
) -> AsyncIterator[GenerationChunk]:
    """Async `stream`."""
    for attempt in range(max_retries + 1):
        started = False
        try:
            async for chunk in backend.astream(
                call.prompt, adapter=call.adapter, params=call.params
            ):
                started = True
                yield chunk
        except InferenceServerError as e:
            if started or attempt == max_retries or e.retryable is False:
                raise
            await asyncio.sleep(_backoff(backend, max_retries, attempt, e))
        else:
            return
