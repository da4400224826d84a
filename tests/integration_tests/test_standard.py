"""LangChain's standard integration tests for `ChatFSPO` served by TGI (the TGI test server).

The server generates with the tiny random Llama and its LoRA adapters: it speaks TGI's wire
format exactly but cannot produce meaningful tool calls or structured output. Those tests are
marked `xfail` with that reason (the test server does not implement TGI's grammar-constrained
decoding either); `tests/integration_tests/test_tgi_chat.py` asserts that
`tools`, `tool_choice` and `response_format` do reach the server.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat
from tests.tgi_server import TGITestServer
from tests.tgi_server.fixtures import ADAPTERS

pytestmark = pytest.mark.integration

TINY = (
    "the test server does not run TGI's grammar-constrained decoding and the tiny random model "
    "cannot write tool calls or JSON on its own; ChatFSPO does send tools/tool_choice/"
    "response_format to TGI (asserted in test_tgi_chat.py)"
)

_MEMORY = PreferenceMemory()
_MEMORY.add("standard-user", prompt="Recommend a film.", chosen="Arrival.", rejected="Any sequel.")
_MEMORY.add("standard-user", prompt="Recommend a book.", chosen="Dune.", rejected="A manual.")


class TestChatFSPOOverTGI(ChatModelIntegrationTests):
    server_url: ClassVar[str] = ""

    @pytest.fixture(autouse=True)
    def _tgi_server(self, tgi: TGITestServer) -> None:
        type(self).server_url = tgi.url

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatFSPO

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "fspo-alice",
            "base_url": self.server_url,
            "backend": "tgi",
            "adapters": list(ADAPTERS),
            "prompt_format": PromptFormat(style="chat", num_shots=2),
            "memory": _MEMORY,
            "user_id": "standard-user",
            "max_tokens": 4,
        }

    @property
    def model_override_value(self) -> str:
        return "fspo-bob"

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @pytest.mark.xfail(reason=TINY)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(reason=TINY)
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(reason=TINY)
    def test_bind_runnables_as_tools(self, model: BaseChatModel) -> None:
        super().test_bind_runnables_as_tools(model)

    @pytest.mark.xfail(reason=TINY)
    def test_tool_choice(self, model: BaseChatModel) -> None:
        super().test_tool_choice(model)

    @pytest.mark.xfail(reason=TINY)
    def test_tool_calling_with_no_arguments(self, model: BaseChatModel) -> None:
        super().test_tool_calling_with_no_arguments(model)

    @pytest.mark.xfail(reason=TINY)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    def test_structured_output(self, model: BaseChatModel, schema_type: str) -> None:
        super().test_structured_output(model, schema_type)

    @pytest.mark.xfail(reason=TINY)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    async def test_structured_output_async(self, model: BaseChatModel, schema_type: str) -> None:
        await super().test_structured_output_async(model, schema_type)

    @pytest.mark.xfail(reason=TINY)
    def test_structured_output_pydantic_2_v1(self, model: BaseChatModel) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    @pytest.mark.xfail(reason=TINY)
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)

    @pytest.mark.xfail(reason=TINY)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(reason=TINY)
    def test_unicode_tool_call_integration(
        self,
        model: BaseChatModel,
        *,
        tool_choice: str | None = None,  # noqa: PT028 - the suite's own signature
        force_tool_call: bool = True,  # noqa: PT028
    ) -> None:
        super().test_unicode_tool_call_integration(
            model, tool_choice=tool_choice, force_tool_call=force_tool_call
        )
