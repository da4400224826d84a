"""LangChain's standard unit tests for `ChatFSPO` configured for a TGI server (no network).

`tests/unit_tests/chat_models/test_standard_in_process.py` runs the same suite over an in-process
backend; this one goes through the server path: `base_url` + `api_key` build a `TGIBackend`
(the unit suite passes `api_key="test"`, `timeout` and `max_retries`, which reach it).
"""

from __future__ import annotations

from typing import Any

import pytest

from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend
from langchain_fspo.backends.tgi import TGIBackend
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import AdapterNotFoundError
from langchain_fspo.prompt_format import PromptFormat
from tests.standard_suite import FSPOUnitTests

URL = "http://127.0.0.1:9"  # never contacted: construction makes no request


class TestChatFSPOTGIStandard(FSPOUnitTests):
    @property
    def backend_params(self) -> dict[str, Any]:
        return {"model": "fspo-alice", "base_url": URL, "adapters": ["fspo-alice", "fspo-bob"]}

    @property
    def model_override_value(self) -> str:
        return "fspo-bob"


def _model(**kwargs: Any) -> ChatFSPO:
    params: dict[str, Any] = {
        "model": "fspo-alice",
        "base_url": URL,
        "prompt_format": PromptFormat(style="chat"),
        **kwargs,
    }
    return ChatFSPO(**params)


def test_standard_params_build_a_tgi_backend() -> None:
    llm = _model(api_key="hf_unit_secret", timeout=7, max_retries=4, adapters=["fspo-alice"])
    backend = llm.backend
    assert isinstance(backend, TGIBackend)
    assert backend.base_url == URL
    assert backend.timeout == 7
    assert backend.retry.max_retries == 4
    assert backend.adapters == ["fspo-alice"]
    assert backend.api_key is not None
    assert backend.api_key.get_secret_value() == "hf_unit_secret"
    for text in (repr(llm), str(llm), repr(backend), str(llm.model_dump())):
        assert "hf_unit_secret" not in text


def test_openai_kind_and_trailing_v1() -> None:
    llm = _model(backend="openai", base_url=f"{URL}/v1/")
    assert isinstance(llm.backend, OpenAICompatibleBackend)
    assert llm.backend.base_url == URL


def test_unknown_adapter_fails_before_any_request() -> None:
    llm = _model(adapters=["fspo-alice"])
    with pytest.raises(AdapterNotFoundError, match="fspo-eve"):
        llm.invoke("hi", model="fspo-eve")


def test_no_backend_and_no_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs a backend"):
        ChatFSPO(model="x", prompt_format=PromptFormat())
