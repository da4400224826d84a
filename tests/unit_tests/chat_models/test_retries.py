"""`ChatFSPO` errors, retries and timeouts over a scripted backend (the backends' retry layer)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from langchain_fspo.backends._policy import RetryPolicy
from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.errors import (
    AdapterNotFoundError,
    InferenceServerError,
    InferenceTimeoutError,
)
from langchain_fspo.prompt_format import RenderedPrompt
from tests.recording import ScriptedBackend
from tests.unit_tests.chat_models.scripted import scripted_model

# ---------------------------------------------------------------- errors, retries, timeouts


def test_unknown_adapter_raises() -> None:
    with pytest.raises(AdapterNotFoundError, match="'gamma'"):
        scripted_model().invoke("Q?", model="gamma")


def test_server_errors_are_retried_then_raised(caplog: pytest.LogCaptureFixture) -> None:
    flaky = ScriptedBackend(fail_times=1)
    with caplog.at_level(logging.WARNING):
        assert scripted_model(flaky, max_retries=1).invoke("Q?").content == "Fine answer."
    assert len(flaky.calls) == 2
    assert "retry 1/1" in caplog.text
    broken = ScriptedBackend(fail_times=5)
    with pytest.raises(InferenceServerError, match="503"):
        scripted_model(broken, max_retries=0).invoke("Q?")
    assert len(broken.calls) == 1
    streaming = ScriptedBackend(fail_times=1)
    assert (
        "".join(str(c.content) for c in scripted_model(streaming, max_retries=1).stream("Q?"))
        == "Fine answer."
    )


class _OutOfMemoryError(RuntimeError):
    """Named like torch's `torch.OutOfMemoryError` (a `RuntimeError`), which it stands for."""


class _OutOfMemoryBackend(ScriptedBackend):
    def generate(self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams):
        self._record(prompt, adapter, params)
        try:
            raise _OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        except _OutOfMemoryError as e:
            msg = f"LocalBackend generation failed for adapter {adapter!r}: {e}"
            raise InferenceServerError(msg) from e  # as LocalBackend raises it


def test_out_of_memory_is_not_retried() -> None:
    backend = _OutOfMemoryBackend()
    with pytest.raises(InferenceServerError, match="out of memory"):
        scripted_model(backend, max_retries=3).invoke("Q?")
    assert len(backend.calls) == 1


def test_max_retries_and_timeout_configure_the_backends_layer() -> None:
    backend = ScriptedBackend(fail_times=5)
    backend.retry = RetryPolicy(max_retries=3, backoff_factor=0.001)
    with pytest.raises(InferenceServerError, match="gave up after 3 retries"):
        scripted_model(backend).invoke("Q?")  # not given: the backend's own policy
    assert len(backend.calls) == 4
    backend.calls.clear()
    with pytest.raises(InferenceServerError, match="503"):
        scripted_model(backend, max_retries=0).invoke("Q?")  # given: it wins
    assert len(backend.calls) == 1
    assert backend.retry.max_retries == 3  # the shared backend itself is left as it was
    model = scripted_model(backend, max_retries=1, timeout=2.5)
    assert model._backend().retry == RetryPolicy(max_retries=1, backoff_factor=0.001, timeout=2.5)
    assert model._backend() is model._backend()  # configured once
    copy = model.model_copy(update={"max_retries": 0})
    assert copy._backend().retry.max_retries == 0


def test_timeout_applies_to_sync_and_async_calls_and_streams() -> None:
    slow = scripted_model(ScriptedBackend(delay=0.5), timeout=0.05, max_retries=0)
    with pytest.raises(InferenceTimeoutError, match=r"within 0\.05s"):
        slow.invoke("Q?")
    with pytest.raises(InferenceTimeoutError, match=r"within 0\.05s"):
        asyncio.run(slow.ainvoke("Q?"))
    with pytest.raises(InferenceTimeoutError, match=r"no stream event within 0\.05s"):
        list(slow.stream("Q?"))

    async def astream() -> None:
        async for _ in slow.astream("Q?"):
            pass

    with pytest.raises(InferenceTimeoutError, match=r"no stream event within 0\.05s"):
        asyncio.run(astream())
