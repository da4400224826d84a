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
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from langchain_fspo.backends._http import AttemptTimeoutError

__all__ = ["abandoned", "aiterate_within", "awithin", "iterate_within", "within"]

T = TypeVar("T")

_READ_AHEAD = 1024
"""Most stream items a sync stream's worker reads ahead of the caller."""

_CALL = "no complete answer"


def _expired(what: str, seconds: float) -> AttemptTimeoutError:
    return AttemptTimeoutError(f"{what} within {seconds:g}s")


_ABANDONED: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "fspo_abandoned", default=None
)


def abandoned() -> bool:
    """Whether the sync attempt running on this worker passed its deadline (the caller left).

    Code that reads a body piece by piece checks it to stop early.
    """
    event = _ABANDONED.get()
    return event is not None and event.is_set()


def within(fn: Callable[[], T], timeout: float | None) -> T:
    """`fn()`, or `AttemptTimeoutError` when it has not returned after `timeout` seconds."""
    if timeout is None:
        return fn()
    outcome: list[Any] = []
    done = threading.Event()
    left = threading.Event()
    context = contextvars.copy_context()
    context.run(_ABANDONED.set, left)

    def run() -> None:
        try:
            outcome.append((True, context.run(fn)))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            outcome.append((False, e))
        finally:
            done.set()

    threading.Thread(target=run, name="fspo-attempt", daemon=True).start()
    if not done.wait(timeout):
        left.set()
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
    """A worker thread that opens a sync stream and reads it ahead into a buffer.

    The caller takes whatever has arrived in one go (`take`), so a fast stream costs one
    lock round trip per batch, not per item.
    """

    def __init__(self, open_iter: Callable[[], Iterator[Any]]) -> None:
        self.cond = threading.Condition()
        self.buffer: deque[Any] = deque()
        self.finished = False
        self.cancelled = False
        self.error: BaseException | None = None
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._run, open_iter), name="fspo-stream", daemon=True
        )
        self.thread.start()

    def _run(self, open_iter: Callable[[], Iterator[Any]]) -> None:
        iterator: Iterator[Any] | None = None
        try:
            iterator = open_iter()
            for item in iterator:
                with self.cond:
                    while len(self.buffer) >= _READ_AHEAD and not self.cancelled:
                        self.cond.wait(0.1)
                    if self.cancelled:
                        return
                    self.buffer.append(item)
                    self.cond.notify()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self.error = e
        finally:
            with self.cond:
                self.finished = True
                self.cond.notify()
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def take(self, wait: float | None) -> list[Any] | None:
        """The items that arrived (waiting up to `wait` s for one); [] at the end; None: late."""
        end = None if wait is None else time.monotonic() + wait
        with self.cond:
            while not self.buffer and not self.finished:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self.cond.wait(left)
            items = list(self.buffer)
            self.buffer.clear()
            self.cond.notify()  # room for the reader
            return items

    def cancel(self) -> None:
        with self.cond:
            self.cancelled = True
            self.cond.notify()


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
            items = pump.take(wait)
            if items is None:
                raise _expired(what, seconds)
            if not items:
                if pump.error is not None:
                    raise pump.error
                return
            yield from items
    finally:
        pump.cancel()


class _GapWatch:
    """One timer per async stream that cancels the reading task when a wait runs too long.

    Arming a timer per chunk (`asyncio.timeout` around each read) costs more than parsing
    the chunk; this timer is re-armed only when it fires, at most every `timeout` seconds.
    It always fires at or before the running wait's limit, because the limit only grows.
    """

    def __init__(self, timeout: float | None, total: float | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.timeout = timeout
        self.deadline = None if total is None else self.loop.time() + total
        self.total = total
        self.waiting_since: float | None = None
        self.fired: tuple[str, float] | None = None
        self.cancelling = 0
        self.handle = self.loop.call_at(self._limit(self.loop.time()), self._check)

    def _limit(self, since: float) -> float:
        limit = since + self.timeout if self.timeout is not None else float("inf")
        return min(limit, self.deadline) if self.deadline is not None else limit

    def _check(self) -> None:
        now = self.loop.time()
        since = self.waiting_since
        limit = self._limit(now if since is None else since)
        if since is not None and now >= limit:
            gap = self.timeout is not None and limit == since + self.timeout
            if gap and self.timeout is not None:
                self.fired = ("no stream event", self.timeout)
            else:
                self.fired = ("the stream did not finish", self.total or 0.0)
            if self.task is not None:
                self.cancelling = self.task.cancelling()
                self.task.cancel()
            return
        self.handle = self.loop.call_at(limit, self._check)

    def expired(self) -> AttemptTimeoutError | None:
        """The timeout to raise if this watch cancelled the task (and un-cancel it)."""
        if self.fired is None:
            return None
        if self.task is not None and self.task.uncancel() > self.cancelling:
            return None  # the task was also cancelled by someone else: that cancel wins
        return _expired(*self.fired)


async def aiterate_within(
    open_iter: Callable[[], Awaitable[AsyncIterator[T]]],
    timeout: float | None,  # noqa: ASYNC109 - the gap deadline is what this applies
    total: float | None,
) -> AsyncIterator[T]:
    """Async `iterate_within`: the pending read is cancelled at the deadline."""
    iterator: AsyncIterator[T] | None = None
    if timeout is None and total is None:
        iterator = await open_iter()
        try:
            async for item in iterator:
                yield item
        finally:
            await _aclose(iterator)
        return
    watch = _GapWatch(timeout, total)
    try:
        watch.waiting_since = watch.loop.time()
        try:
            iterator = await open_iter()
            while True:
                if watch.waiting_since is None:
                    watch.waiting_since = watch.loop.time()
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    return
                watch.waiting_since = None
                yield item
        except asyncio.CancelledError as e:
            error = watch.expired()
            if error is None:
                raise
            raise error from e
    finally:
        watch.handle.cancel()
        if iterator is not None:
            await _aclose(iterator)


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
