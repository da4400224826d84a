"""LangChain's standard integration tests for `ChatFSPO` served by a real vLLM server.

vLLM runs forced tool choice and `response_format` through its guided decoding (xgrammar,
no free whitespace: `fspo_train.testing.vllm.launch_command`), so a random-weight tiny model
still returns calls and JSON that match the schema wherever the schema lets a random model
finish: integers,
enums, booleans, empty argument lists (`test_tool_choice`, `test_tool_calling_with_no_arguments`
and the tool-message tests pass for real). Two things stay out of reach, each `xfail` with its
reason: a free-form JSON *string* (nothing makes a random model pick the closing quote, so the
answer runs into `max_tokens`), and tests that check an argument's value.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from fspo_train.testing.vllm import VLLMServer
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.prompt_format import PromptFormat
from tests.standard_suite import STANDARD_MEMORY, STANDARD_USER

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

WHICH_INTEGER = (
    "the test checks the argument's value (magic_function(3) must be called with 3): vLLM's "
    "guided decoding guarantees a well-formed call with an integer argument, not which integer "
    "a random-weight model writes"
)
FREE_STRING = (
    "the schema has a free-form string: vLLM's guided decoding keeps the JSON valid, but a "
    "random-weight model never picks the closing quote, so the answer runs into max_tokens "
    "(the same path finishes on integer and empty-argument schemas: test_tool_choice passes)"
)


class TestChatFSPOOverVLLM(ChatModelIntegrationTests):
    server: ClassVar[VLLMServer | None] = None
    expected_failures: ClassVar[dict[str, str]] = {
        "test_tool_calling": WHICH_INTEGER,
        "test_tool_calling_async": WHICH_INTEGER,
        **dict.fromkeys(
            (
                "test_bind_runnables_as_tools",
                "test_structured_output",  # each schema type
                "test_structured_output_async",
                "test_structured_output_pydantic_2_v1",
                "test_structured_output_optional_param",
                "test_agent_loop",
                "test_unicode_tool_call_integration",
            ),
            FREE_STRING,
        ),
    }
    """Standard tests expected to fail here, with the reason (marked in conftest.py)."""

    @pytest.fixture(autouse=True)
    def _vllm(self, vllm_server: VLLMServer) -> None:
        type(self).server = vllm_server

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatFSPO

    @property
    def chat_model_params(self) -> dict[str, Any]:
        assert self.server is not None
        return {
            "model": "alpha",
            "base_url": self.server.base_url,
            "backend": "openai",
            "prompt_format": PromptFormat.from_pretrained(self.server.adapter_dirs["alpha"]),
            "memory": STANDARD_MEMORY,
            "user_id": STANDARD_USER,
            "max_tokens": 48,
            "temperature": 0,
            # One call per forced tool choice: the engine then closes the call array.
            "model_kwargs": {"parallel_tool_calls": False},
        }

    @property
    def model_override_value(self) -> str:
        return "beta"

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True
