"""LangChain's standard unit tests for `ChatFSPO` (langchain-tests) over an in-process backend."""

from __future__ import annotations

from typing import Any

from tests.recording import ScriptedBackend
from tests.standard_suite import FSPOUnitTests, NoToolsNoSchema


class TestChatFSPOStandard(NoToolsNoSchema, FSPOUnitTests):
    @property
    def backend_params(self) -> dict[str, Any]:
        return {"backend": ScriptedBackend(), "model": "alpha"}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        params = super().standard_chat_model_params
        params.pop("api_key", None)  # the backend holds credentials, not the chat model
        return params
