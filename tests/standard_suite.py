"""The settings every LangChain standard suite of `ChatFSPO` shares (langchain-tests).

Each suite subclasses `FSPOUnitTests` or `FSPOIntegrationTests` and says only how the chat model
reaches its backend (`backend_params`) and where it differs:

- tests/unit_tests/chat_models/test_standard_in_process.py: an in-process scripted backend;
- tests/unit_tests/chat_models/test_standard_server.py: the server path, never contacted;
- tests/integration_tests/test_standard.py: the TGI test server (`TinyModelXfails`);
- tests/train/serving/test_local_backend_standard.py: `LocalBackend` over the tiny Llama.

The class names do not start with `Test`, so pytest collects only the subclasses.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat

STANDARD_USER = "standard-user"
"""The user whose preference examples the standard suites' prompts carry."""

STANDARD_MEMORY = PreferenceMemory()
"""Two preference examples of `STANDARD_USER`; shared and read-only."""
STANDARD_MEMORY.add(
    STANDARD_USER, prompt="Recommend a film.", chosen="Arrival.", rejected="Any sequel."
)
STANDARD_MEMORY.add(STANDARD_USER, prompt="Recommend a book.", chosen="Dune.", rejected="A manual.")

TINY_MODEL_REASON = (
    "the test server does not run TGI's grammar-constrained decoding and the tiny random model "
    "cannot write tool calls or JSON on its own; ChatFSPO does send tools/tool_choice/"
    "response_format to TGI (asserted in tests/integration_tests/test_tgi_chat.py)"
)
"""Why tool calling and structured output are expected to fail against the tiny model."""


class _FSPOSettings:
    """Parameters and capability flags common to every `ChatFSPO` suite."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatFSPO

    @property
    def backend_params(self) -> dict[str, Any]:
        """How the model reaches its backend (`backend=...`, or `base_url=...` and `model`)."""
        raise NotImplementedError

    @property
    def prompt_format(self) -> PromptFormat:
        """The prompt contract; two shots, so both standard examples are rendered."""
        return PromptFormat(style="chat", num_shots=2)

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "prompt_format": self.prompt_format,
            "memory": STANDARD_MEMORY,
            "user_id": STANDARD_USER,
            **self.backend_params,
        }

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class NoToolsNoSchema:
    """For in-process suites: that backend has no tool calling or structured output to offer."""

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False


class FSPOUnitTests(_FSPOSettings, ChatModelUnitTests):
    """`ChatModelUnitTests` with the shared `ChatFSPO` settings."""


class FSPOIntegrationTests(_FSPOSettings, ChatModelIntegrationTests):
    """`ChatModelIntegrationTests` with the shared `ChatFSPO` settings."""


class TinyModelXfails(FSPOIntegrationTests):
    """A server-backed suite whose model cannot follow tools or a schema (`TINY_MODEL_REASON`)."""

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    def test_bind_runnables_as_tools(self, model: BaseChatModel) -> None:
        super().test_bind_runnables_as_tools(model)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    def test_tool_choice(self, model: BaseChatModel) -> None:
        super().test_tool_choice(model)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    def test_tool_calling_with_no_arguments(self, model: BaseChatModel) -> None:
        super().test_tool_calling_with_no_arguments(model)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    def test_structured_output(self, model: BaseChatModel, schema_type: str) -> None:
        super().test_structured_output(model, schema_type)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    async def test_structured_output_async(self, model: BaseChatModel, schema_type: str) -> None:
        await super().test_structured_output_async(model, schema_type)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    def test_structured_output_pydantic_2_v1(self, model: BaseChatModel) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(reason=TINY_MODEL_REASON)
    def test_unicode_tool_call_integration(
        self,
        model: BaseChatModel,
        *,
        tool_choice: str | None = None,
        force_tool_call: bool = True,
    ) -> None:
        super().test_unicode_tool_call_integration(
            model, tool_choice=tool_choice, force_tool_call=force_tool_call
        )
