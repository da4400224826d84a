"""`MicroBatcher`, `LocalBackend`'s queue: grouping, announced calls, errors, cancellation.

The batcher is plain Python; `run` here is a recording function instead of a model (the
model side is tested on a real tiny model in tests/train/serving/test_local_batching.py).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from langchain_fspo.backends._local_batch import (
    HINT_WAIT_S,
    BatchRequest,
    MicroBatcher,
    batch_key,
    expecting,
)
from langchain_fspo.backends.base import Generation, GenerationParams
from langchain_fspo.prompt_format import PromptFormat

PROMPT = PromptFormat().render([], "Q?")


class Recorder:
    """A `run` that answers each request with its position and records the batches."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.batches: list[list[BatchRequest]] = []
        self.hold = hold

    def __call__(self, batch: list[BatchRequest]) -> None:
        if self.hold is not None:
            assert self.hold.wait(10)
        self.batches.append(batch)
        for i, request in enumerate(batch):
            request.future.set_result(Generation(text=str(i)))


def _request(**params: object) -> BatchRequest:
    return BatchRequest(PROMPT, "alpha", GenerationParams(**params))


def test_full_batches_run_at_once_and_the_rest_after_the_window() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch_size=3, window_s=0.5)
    requests = [_request() for _ in range(7)]
    for request in requests:
        batcher.submit(request)
    assert [r.future.result(timeout=10).text for r in requests] == ["0", "1", "2"] * 2 + ["0"]
    assert [len(b) for b in run.batches] == [3, 3, 1]


def test_announced_calls_are_waited_for() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch_size=8, window_s=0.0)
    with expecting(3):  # a request is tagged when it is created in the context
        requests = [_request() for _ in range(3)]
    for request in requests:  # 50 ms apart, far over the window
        batcher.submit(request)
        time.sleep(0.05)
    for request in requests:
        request.future.result(timeout=10)
    assert [len(b) for b in run.batches] == [3]


def test_an_announced_call_that_never_comes_delays_the_batch_only_briefly() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch_size=8, window_s=0.0)
    with expecting(3):
        requests = [_request() for _ in range(2)]
    started = time.monotonic()
    for request in requests:
        batcher.submit(request)
    for request in requests:
        request.future.result(timeout=10)
    assert [len(b) for b in run.batches] == [2]
    assert time.monotonic() - started >= HINT_WAIT_S * 0.9


def test_a_failing_run_fails_every_waiting_caller_and_the_next_call_works() -> None:
    def explode(batch: list[BatchRequest]) -> None:
        batch[0].future.set_result(Generation(text="first ok"))
        raise MemoryError("simulated")

    batcher = MicroBatcher(explode, max_batch_size=4, window_s=1.0)
    requests = [_request() for _ in range(4)]
    for request in requests:
        batcher.submit(request)
    assert requests[0].future.result(timeout=10).text == "first ok"
    for request in requests[1:]:
        with pytest.raises(MemoryError):
            request.future.result(timeout=10)
    batcher._run = Recorder()
    assert batcher.submit(_request()).result(timeout=10).text == "0"


def test_a_call_cancelled_while_waiting_is_dropped_from_its_batch() -> None:
    hold = threading.Event()
    run = Recorder(hold)
    batcher = MicroBatcher(run, max_batch_size=2, window_s=1.0)
    busy = [_request(), _request()]  # a full batch that holds the worker
    for request in busy:
        batcher.submit(request)
    queued = [_request(), _request()]
    for request in queued:
        batcher.submit(request)
    queued[0].cancel.set()  # its caller gave up (timeout, cancelled task)
    hold.set()
    assert queued[1].future.result(timeout=10).text == "0"
    with pytest.raises(CancelledError):
        queued[0].future.result(timeout=10)
    assert [len(b) for b in run.batches] == [2, 1]


def test_the_worker_exits_when_idle_and_restarts() -> None:
    batcher = MicroBatcher(Recorder(), max_batch_size=2, window_s=0.0)
    for _ in range(2):
        assert batcher.submit(_request()).result(timeout=10).text == "0"
        deadline = time.monotonic() + 10
        while batcher._worker is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert batcher._worker is None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(Recorder(), max_batch_size=0, window_s=0.0)
    with pytest.raises(ValueError, match="batch_window_s"):
        MicroBatcher(Recorder(), max_batch_size=1, window_s=-1.0)


def test_batch_key_groups_only_what_decodes_alike() -> None:
    def key(adapter: str | None = "alpha", ids: int = 3, **params: object) -> object:
        request = BatchRequest(PROMPT, adapter, GenerationParams(**params))
        request.prompt_ids = list(range(ids))
        return batch_key(request)

    # Per-row settings and prompt lengths do not split greedy calls.
    assert key(max_tokens=3, stop=["x"]) == key(max_tokens=9, ids=7) == key(seed=5)
    assert key() != key(adapter="beta") != key(adapter=None)
    assert key(temperature=0.7) == key(temperature=0.7, ids=9) != key(temperature=0.8)
    assert key(temperature=0.7, seed=1) != key(temperature=0.7, seed=1)  # seeded: alone
    # Options that read the padding only join prompts of the same length.
    assert key(repetition_penalty=1.2) != key(repetition_penalty=1.2, ids=4)
    assert key(extra={"min_p": 0.1}) == key(extra={"min_p": 0.1})
    assert key(extra={"min_p": 0.1}) != key(extra={"min_p": 0.1}, ids=4)
    # A beam search returns several rows per prompt: it runs alone.
    assert key(extra={"num_beams": 2}) != key(extra={"num_beams": 2})
    assert key(extra={"num_beams": 1}) == key(extra={"num_beams": 1})


def test_requests_that_run_alone_never_share_a_key_even_after_they_are_gone() -> None:
    # Each request is dropped before the next is made, so CPython may reuse its memory (and
    # `id()`); keys built on `id()` then collide. A seeded sampled call and a beam search run alone.
    def alone_key(**params: object) -> object:
        request = BatchRequest(PROMPT, "alpha", GenerationParams(**params))
        request.prompt_ids = [1, 2, 3]
        return batch_key(request)

    seeded = [alone_key(temperature=0.7, seed=1) for _ in range(200)]
    beams = [alone_key(extra={"num_beams": 2}) for _ in range(200)]
    assert len(set(seeded)) == len(seeded)
    assert len(set(beams)) == len(beams)
