"""Attempt deadlines (`backends._deadline`) on in-memory calls and streams, sync and async."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from langchain_fspo.backends._deadline import (
    abandoned,
    aiterate_within,
    awithin,
    iterate_within,
    within,
)
from langchain_fspo.backends._http import AttemptTimeoutError


def _items(delays: list[float]) -> Iterator[int]:
    for i, delay in enumerate(delays):
        time.sleep(delay)
        yield i


async def _aitems(delays: list[float]) -> AsyncIterator[int]:
    for i, delay in enumerate(delays):
        await asyncio.sleep(delay)
        yield i


def test_within_returns_raises_or_times_out_and_flags_the_abandoned_worker() -> None:
    assert within(lambda: 7, 1.0) == 7
    assert within(lambda: 7, None) == 7
    with pytest.raises(KeyError):
        within(lambda: {}["x"], 1.0)
    seen: list[bool] = []

    def slow() -> None:
        time.sleep(0.3)
        seen.append(abandoned())

    with pytest.raises(AttemptTimeoutError, match=r"no complete answer within 0\.05s"):
        within(slow, 0.05)
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [True]
    assert abandoned() is False  # the caller's own context is untouched


def test_awithin_cancels_at_the_deadline() -> None:
    async def run() -> None:
        assert await awithin(lambda: asyncio.sleep(0, result=3), 1.0) == 3
        with pytest.raises(AttemptTimeoutError, match=r"within 0\.05s"):
            await awithin(lambda: asyncio.sleep(5), 0.05)

    asyncio.run(run())


def test_iterate_within_bounds_gaps_and_the_whole_stream() -> None:
    assert list(iterate_within(lambda: _items([0.0] * 5), 1.0, None)) == [0, 1, 2, 3, 4]
    stream = iterate_within(lambda: _items([0.0, 0.5]), 0.1, None)
    assert next(stream) == 0
    with pytest.raises(AttemptTimeoutError, match=r"no stream event within 0\.1s"):
        next(stream)
    with pytest.raises(AttemptTimeoutError, match="the stream did not finish"):
        list(iterate_within(lambda: _items([0.05] * 20), 1.0, 0.3))


def test_iterate_within_hands_errors_over_after_the_items_before_them() -> None:
    def failing() -> Iterator[int]:
        yield 1
        msg = "server went away"
        raise ConnectionError(msg)

    stream = iterate_within(failing, 1.0, None)
    assert next(stream) == 1
    with pytest.raises(ConnectionError, match="went away"):
        next(stream)


def test_closing_a_sync_stream_early_stops_its_reader() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            while True:
                time.sleep(0.01)
                yield 1
        finally:
            closed.set()

    stream = iterate_within(endless, 1.0, None)
    assert next(stream) == 1
    stream.close()
    assert closed.wait(5)


def test_aiterate_within_bounds_gaps_and_the_whole_stream() -> None:
    async def opener(delays: list[float]) -> AsyncIterator[int]:
        return _aitems(delays)

    async def collect(delays: list[float], timeout: float, total: float | None) -> list[int]:
        return [i async for i in aiterate_within(lambda: opener(delays), timeout, total)]

    async def run() -> None:
        assert await collect([0.0] * 5, 1.0, None) == [0, 1, 2, 3, 4]
        with pytest.raises(AttemptTimeoutError, match=r"no stream event within 0\.1s"):
            await collect([0.0, 0.5], 0.1, None)
        with pytest.raises(AttemptTimeoutError, match="the stream did not finish"):
            await collect([0.05] * 20, 1.0, 0.3)

    asyncio.run(run())


def test_a_slow_consumer_is_not_a_slow_server() -> None:
    async def opener() -> AsyncIterator[int]:
        return _aitems([0.0, 0.0])

    async def run() -> list[int]:
        out = []
        async for i in aiterate_within(opener, 0.3, None):
            await asyncio.sleep(0.6)  # the caller's own work between chunks does not count
            out.append(i)
        return out

    assert asyncio.run(run()) == [0, 1]


def test_an_outside_cancel_is_not_turned_into_a_timeout() -> None:
    async def opener() -> AsyncIterator[int]:
        return _aitems([5.0])

    async def run() -> None:
        task: asyncio.Task[int] = asyncio.create_task(anext(aiterate_within(opener, 1.0, None)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
