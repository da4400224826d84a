"""Attempt deadlines: `timeout` bounds one attempt's whole duration, sync and async.

- A call (`within`, `awithin`): connecting, sending, the headers and the whole body, together
  within `timeout` seconds.
- A stream (`iterate_within`, `aiterate_within`): opening it and every gap between two items
  within `timeout`; the whole stream within `total` seconds when that is set.

An async attempt is cancelled at its deadline (`asyncio.timeout`), which closes its
connection. A blocking read cannot be interrupted from outside, so a sync attempt runs on a
worker thread: the caller gets `AttemptTimeoutError` at the deadline and the worker is
abandoned; it ends at its next read (a sync stream's worker stops pulling items) or when its
client's own per-read timeout fires (the backends set it to `timeout` as well).
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from langchain_fspo.backends._http import AttemptTimeoutError

__all__ = ["aiterate_within", "awithin", "iterate_within", "within"]

T = TypeVar("T")

_READ_AHEAD = 1024
"""Most stream items a sync stream's worker reads ahead of the caller."""

_CALL = "no complete answer"
_END: Any = object()


def _expired(what: str, seconds: float) -> AttemptTimeoutError:
    return AttemptTimeoutError(f"{what} within {seconds:g}s")


def within(fn: Callable[[], T], timeout: float | None) -> T:
    """`fn()`, or `AttemptTimeoutError` when it has not returned after `timeout` seconds."""
    if timeout is None:
        return fn()
    outcome: list[Any] = []
    done = threading.Event()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome.append((True, context.run(fn)))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            outcome.append((False, e))
        finally:
            done.set()

    threading.Thread(target=run, name="fspo-attempt", daemon=True).start()
    if not done.wait(timeout):
        raise _expired(_CALL, timeout)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


async def awithin(
    fn: Callable[[], Awaitable[T]],
    timeout: float | None,  # noqa: ASYNC109 - the attempt's deadline is what this applies
) -> T:
    """Async `within`: the attempt is cancelled at its deadline."""
    if timeout is None:
        return await fn()
    try:
        async with asyncio.timeout(timeout) as scope:
            return await fn()
    except TimeoutError as e:
        if scope.expired():
            raise _expired(_CALL, timeout) from e
        raise


def _wait(timeout: float | None, deadline: float | None) -> tuple[float | None, str, float]:
    """How long to wait for the next item, and what to say when that runs out."""
    if deadline is None:
        assert timeout is not None  # noqa: S101 - one of the two is set by the callers
        return timeout, "no stream event", timeout
    left = max(0.0, deadline - time.monotonic())
    if timeout is not None and timeout < left:
        return timeout, "no stream event", timeout
    return left, "the stream did not finish", left


class _Pump:
    """A worker thread that opens a sync stream and reads it ahead into a queue."""

    def __init__(self, open_iter: Callable[[], Iterator[Any]]) -> None:
        self.items: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=_READ_AHEAD)
        self.cancelled = threading.Event()
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._run, open_iter), name="fspo-stream", daemon=True
        )
        self.thread.start()

    def _put(self, item: tuple[bool, Any]) -> bool:
        while not self.cancelled.is_set():
            try:
                self.items.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _run(self, open_iter: Callable[[], Iterator[Any]]) -> None:
        iterator: Iterator[Any] | None = None
        try:
            iterator = open_iter()
            for item in iterator:
                if not self._put((True, item)):
                    return
            self._put((True, _END))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._put((False, e))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


def iterate_within(
    open_iter: Callable[[], Iterator[T]], timeout: float | None, total: float | None
) -> Iterator[T]:
    """Items of `open_iter()`, each within `timeout` of the last, all within `total`."""
    if timeout is None and total is None:
        yield from open_iter()
        return
    deadline = None if total is None else time.monotonic() + total
    pump = _Pump(open_iter)
    try:
        while True:
            wait, what, seconds = _wait(timeout, deadline)
            try:
                ok, item = pump.items.get(timeout=wait)
            except queue.Empty:
                raise _expired(what, seconds) from None
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        pump.cancelled.set()


async def aiterate_within(
    open_iter: Callable[[], Awaitable[AsyncIterator[T]]],
    timeout: float | None,  # noqa: ASYNC109 - the gap deadline is what this applies
    total: float | None,
) -> AsyncIterator[T]:
    """Async `iterate_within`: the pending read is cancelled at the deadline."""
    deadline = None if total is None else time.monotonic() + total
    if timeout is None and deadline is None:
        iterator = await open_iter()
    else:
        wait, what, seconds = _wait(timeout, deadline)
        iterator = await awithin(open_iter, wait)
    try:
        while True:
            if timeout is None and deadline is None:
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    return
                yield item
                continue
            wait, what, seconds = _wait(timeout, deadline)
            try:
                async with asyncio.timeout(wait) as scope:
                    item = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError as e:
                if scope.expired():
                    raise _expired(what, seconds) from e
                raise
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
