"""Short synchronous jobs on the event loop, at most `INLINE_BUDGET_S` of them per iteration.

An event loop runs every callback that is ready before it looks at its timers and sockets
again. Two thousand coroutines that each do 50 us of in-memory work in one iteration hold the
loop for 100 ms. `run_in_slices` runs a job at once while the current iteration has spent
less than the budget; past it, the job waits in a queue that a callback drains, a budget's
worth per iteration, so the loop gets back to its sockets and timers between slices.
A lone call pays nothing: it runs inline, like a sync call.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["INLINE_BUDGET_S", "run_in_slices"]

T = TypeVar("T")

INLINE_BUDGET_S = 0.002
"""Work run inline per loop iteration, in seconds, before jobs queue for the next one."""


class _Slicer:
    """The budget and queue of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.spent = 0.0
        self.reset_pending = False
        self.queue: deque[tuple[Callable[[], Any], asyncio.Future[Any]]] = deque()

    def charge(self, seconds: float) -> None:
        self.spent += seconds
        if not self.reset_pending:
            # Runs in the next iteration: a fresh budget, then the queue.
            self.reset_pending = True
            self.loop.call_soon(self.next_slice)

    def next_slice(self) -> None:
        self.reset_pending = False
        self.spent = 0.0
        while self.queue and self.spent < INLINE_BUDGET_S:
            job, future = self.queue.popleft()
            if future.cancelled():
                continue
            start = time.perf_counter()
            try:
                future.set_result(job())
            except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(e)
            self.spent += time.perf_counter() - start
        if self.queue or self.spent:
            self.charge(0.0)


_slicers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slicer] = (
    weakref.WeakKeyDictionary()
)


async def run_in_slices(job: Callable[[], T]) -> T:
    """Run `job` (short, synchronous) on the loop within its per-iteration budget."""
    loop = asyncio.get_running_loop()
    slicer = _slicers.get(loop)
    if slicer is None:
        slicer = _slicers[loop] = _Slicer(loop)
    if not slicer.queue and slicer.spent < INLINE_BUDGET_S:
        start = time.perf_counter()
        try:
            return job()
        finally:
            slicer.charge(time.perf_counter() - start)
    future: asyncio.Future[T] = loop.create_future()
    slicer.queue.append((job, future))
    slicer.charge(0.0)
    return await future
