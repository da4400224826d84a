"""`ChatFSPO.batch` / `abatch` tell a batching backend how many calls start together."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from langchain_fspo import ChatFSPO, PromptFormat
from tests.recording import ScriptedBackend


class AnnouncedBackend(ScriptedBackend):
    """`ScriptedBackend` that batches (`max_batch_size`) and records `expecting` calls."""

    max_batch_size = 4

    def __init__(self) -> None:
        super().__init__()
        self.announced: list[int] = []

    def expecting(self, calls: int) -> contextlib.AbstractContextManager[None]:
        self.announced.append(calls)
        return contextlib.nullcontext()


@pytest.fixture
def backend() -> AnnouncedBackend:
    return AnnouncedBackend()


def _llm(backend: AnnouncedBackend, **kwargs: Any) -> ChatFSPO:
    return ChatFSPO(backend=backend, prompt_format=PromptFormat(), model="alpha", **kwargs)


def test_batch_announces_the_calls_that_start_together(backend: AnnouncedBackend) -> None:
    llm = _llm(backend)
    assert len(llm.batch(["Q?"] * 3)) == 3
    assert len(llm.batch(["Q?"] * 20)) == 20  # at most 2 x max_batch_size run at once
    assert len(llm.batch(["Q?"] * 6, config={"max_concurrency": 2})) == 6
    assert backend.announced == [3, 8, 2]


def test_abatch_announces_too(backend: AnnouncedBackend) -> None:
    llm = _llm(backend)
    asyncio.run(llm.abatch(["Q?"] * 5))
    asyncio.run(llm.abatch(["Q?"] * 5, config={"max_concurrency": 3}))
    assert backend.announced == [5, 3]


def test_streaming_models_announce_nothing(backend: AnnouncedBackend) -> None:
    llm = _llm(backend, streaming=True)
    assert [m.content for m in llm.batch(["Q?"] * 2)] == [backend.reply] * 2
    assert backend.announced == [0]


def test_batch_raises_the_thread_count_to_the_batch_size_unless_set() -> None:
    from langchain_fspo.chat_models._call import batch_config

    backend = AnnouncedBackend()
    assert batch_config(backend, None, 6) == {"max_concurrency": 6}
    assert batch_config(backend, {"max_concurrency": 2}, 6) == {"max_concurrency": 2}
    assert batch_config(backend, [{"tags": ["x"]}, {}], 2) == [
        {"tags": ["x"], "max_concurrency": 2},
        {"max_concurrency": 2},
    ]
    assert batch_config(ScriptedBackend(), None, 6) is None  # not a batching backend
    assert batch_config(backend, None, 1) is None
