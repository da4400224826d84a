"""One async HTTP client per event loop, reused by every call made in that loop.

An `httpx.AsyncClient` belongs to the event loop it first ran in (its connections and locks
do), and creating one costs tens of milliseconds of CPU (an SSL context) and a new connection
per call. `LoopClients` keeps one per loop: created on first use in a loop, replaced if it was
closed, and forgotten once its loop is closed or collected, so a backend is safe to use from
several loops (`asyncio.run` per call, a loop per thread) and after a loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["AsyncClosable", "LoopClients"]


class AsyncClosable(Protocol):
    """An async client: `aclose()` and `is_closed`, as `httpx.AsyncClient` has."""

    @property
    def is_closed(self) -> bool: ...

    async def aclose(self) -> None: ...


ClientT = TypeVar("ClientT", bound=AsyncClosable)


class LoopClients(Generic[ClientT]):
    """A client per running event loop, made by `factory` when a loop first asks."""

    def __init__(self, factory: Callable[[], ClientT]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientT] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._closing: set[Any] = set()

    def get(self) -> ClientT:
        """The running loop's client (a new one if it has none or it was closed)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None or client.is_closed:
                client = self._factory()
                self._clients[loop] = client
            return client

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for loop in self._clients if not loop.is_closed())

    async def aclose(self) -> None:
        """Close the running loop's client, and forget those of other loops (see `close`)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
        self.close()
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        """Close every loop's client, as far as its loop allows, and forget them all.

        A client of a loop that is not running is closed in it; of a loop running in this
        thread or another, closed by a task in that loop (not awaited here); of a closed loop,
        dropped (its connections went with the loop).
        """
        with self._lock:
            clients = list(self._clients.items())
            self._clients.clear()
        for loop, client in clients:
            if loop.is_closed() or client.is_closed:
                continue
            if not loop.is_running():
                with contextlib.suppress(RuntimeError):  # started or closed meanwhile
                    loop.run_until_complete(client.aclose())
                continue
            if _running_loop() is loop:
                task = loop.create_task(client.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            else:
                with contextlib.suppress(RuntimeError):  # closed meanwhile
                    asyncio.run_coroutine_threadsafe(_aclose(client), loop)


async def _aclose(client: AsyncClosable) -> None:
    await client.aclose()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
