"""LangChain's standard unit tests for `ChatFSPO` (langchain-tests)."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat
from tests.recording import ScriptedBackend


class TestChatFSPOStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatFSPO

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "backend": ScriptedBackend(),
            "prompt_format": PromptFormat(style="chat", num_shots=2),
            "memory": PreferenceMemory(),
            "model": "alpha",
            "user_id": "u1",
        }

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        params = super().standard_chat_model_params
        params.pop("api_key", None)  # the backend holds credentials, not the chat model
        return params

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True
