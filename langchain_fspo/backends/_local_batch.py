"""How `LocalBackend` groups concurrent calls into batched `model.generate` calls.

`MicroBatcher` collects the requests that arrive close together (threads calling
`generate`, coroutines awaiting `agenerate`, `ChatFSPO.batch` / `abatch`) and hands them to
one worker thread, which runs them as few `generate` calls as it can. It holds no event loop:
callers wait on a `concurrent.futures.Future` (async callers through `asyncio.wrap_future`),
so one batcher serves every thread and every event loop of its backend.

`batch_key` says which requests may share a `generate` call (same adapter and decoding);
`_local_rows` runs such a group. Plain Python: no torch here.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_fspo.backends.base import Generation, GenerationParams

if TYPE_CHECKING:
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = [
    "SEARCH_OPTIONS",
    "BatchRequest",
    "ExpectedCalls",
    "MicroBatcher",
    "batch_key",
    "expecting",
    "runs_alone",
]

logger = logging.getLogger("langchain_fspo.backends.local")

SEARCH_OPTIONS = frozenset({"num_beams", "num_beam_groups", "num_return_sequences"})
"""`extra` generation options that make `generate` return several rows per prompt: such a
call runs alone, as it would without batching."""

HINT_WAIT_S = 0.25
"""How long a batch waits at most for announced calls that have not arrived (one failed
before reaching the backend, say)."""


@dataclass(eq=False)
class ExpectedCalls:
    """`count` calls announced together (`ChatFSPO.batch`); `arrived` of them were submitted."""

    count: int
    arrived: int = 0

    @property
    def complete(self) -> bool:
        return self.arrived >= self.count


_EXPECTED: ContextVar[ExpectedCalls | None] = ContextVar("fspo_expected_calls", default=None)


@contextlib.contextmanager
def expecting(calls: int) -> Iterator[None]:
    """Tag the calls made in this context (threads and tasks copy it) as `calls` together."""
    token = _EXPECTED.set(ExpectedCalls(calls) if calls > 1 else None)
    try:
        yield
    finally:
        _EXPECTED.reset(token)


_SERIALS = itertools.count()
"""Serial numbers of `BatchRequest`s (`next` is atomic under the GIL)."""


@dataclass(eq=False)
class BatchRequest:
    """One `generate` call waiting for (or taking part in) a batch."""

    prompt: RenderedPrompt
    adapter: str | None
    params: GenerationParams
    future: Future[Generation] = field(default_factory=Future)
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set by the caller that gave up (cancelled, timed out): its row stops at the next token."""
    prompt_ids: list[int] | None = None
    """The encoded prompt, filled in by the worker."""
    expected: ExpectedCalls | None = field(default_factory=_EXPECTED.get)
    """The announced group this call belongs to (`expecting`), if any."""
    serial: int = field(default_factory=_SERIALS.__next__)
    """Unique in the process, never reused (unlike `id()`): the key of a request that runs alone."""


def runs_alone(params: GenerationParams) -> bool:
    """Whether `params` ask for a search (`SEARCH_OPTIONS` above 1): never batched."""
    return any(params.extra.get(name) not in (None, 1) for name in SEARCH_OPTIONS)


def batch_key(request: BatchRequest) -> tuple[Any, ...]:
    """Requests with equal keys may run in one `generate` call with identical results.

    Per-row settings (prompt, `max_tokens`, `stop`) never split a batch. Decoding settings
    do: greedy requests share one key per adapter; sampled ones share it only with the same
    temperature / top-p / top-k, and a seeded sampled request runs alone (its seed must give
    the result it gives alone), as does a beam search (`SEARCH_OPTIONS`). `repetition_penalty`
    and `extra` generation options read the whole `input_ids`, padding included, so such
    requests only join prompts of equal length.
    """
    params = request.params
    key: tuple[Any, ...] = (
        request.adapter,
        params.frequency_penalty,
        params.presence_penalty,
        params.repetition_penalty,
        repr(sorted(params.extra.items())),
    )
    if runs_alone(params):
        return (*key, "alone", request.serial)
    if params.repetition_penalty is not None or params.extra:
        key += (len(request.prompt_ids or ()),)
    if not params.temperature:
        return (*key, "greedy")
    if params.seed is not None:
        return (*key, "seeded", request.serial)
    return (*key, params.temperature, params.top_p, params.top_k)


class MicroBatcher:
    """Groups requests that arrive within a short window and runs them on one worker thread.

    The worker starts with the first request and stops when none is left, so an idle backend
    holds no thread. Once a request waits, the worker gathers more until `max_batch_size`
    wait, or none arrived for `window_s` seconds (at most `8 * window_s` in all); while a
    batch runs, new requests queue up for the next one. Calls announced together
    (`expecting`) are waited for until all arrived (at most `HINT_WAIT_S`), and a batch of
    only such calls, all arrived, runs at once. `run` gets the requests still wanted
    (cancelled ones are dropped) and must settle every future; whatever it raises is set on
    the futures it left unsettled, so no caller waits forever.
    """

    def __init__(
        self,
        run: Callable[[list[BatchRequest]], None],
        *,
        max_batch_size: int,
        window_s: float,
    ) -> None:
        if max_batch_size < 1:
            msg = f"max_batch_size must be at least 1, got {max_batch_size}."
            raise ValueError(msg)
        if window_s < 0:
            msg = f"batch_window_s must be 0 or more, got {window_s}."
            raise ValueError(msg)
        self._run = run
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self._cond = threading.Condition()
        self._pending: list[BatchRequest] = []
        self._last_arrival = 0.0
        self._worker: threading.Thread | None = None

    def submit(self, request: BatchRequest) -> Future[Generation]:
        """Queue `request`; its future settles once its batch has run."""
        with self._cond:
            self._pending.append(request)
            if request.expected is not None:
                request.expected.arrived += 1
            self._last_arrival = time.monotonic()
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._loop, name="fspo-local-batcher", daemon=True
                )
                self._worker.start()
            self._cond.notify()
        return request.future

    def _take(self) -> list[BatchRequest] | None:
        """The next batch (None when nothing is pending: the worker then exits)."""
        with self._cond:
            if not self._pending:
                self._worker = None
                return None
            started = time.monotonic()
            while len(self._pending) < self.max_batch_size:
                groups = {r.expected for r in self._pending}
                if None not in groups and all(g.complete for g in groups if g):
                    break  # every announced call is here: nothing else to wait for
                if any(g is not None and not g.complete for g in groups):
                    deadline = started + HINT_WAIT_S
                else:
                    deadline = min(self._last_arrival + self.window_s, started + 8 * self.window_s)
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                self._cond.wait(wait)
            batch = self._pending[: self.max_batch_size]
            del self._pending[: self.max_batch_size]
        wanted = []
        for request in batch:
            if request.cancel.is_set():
                request.future.cancel()
            if request.future.set_running_or_notify_cancel():
                wanted.append(request)
        return wanted

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            if not batch:
                continue
            try:
                self._run(batch)
            except BaseException as e:  # noqa: BLE001 - handed to every caller still waiting
                logger.debug("LocalBackend batch failed: %r", e)
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(e)
