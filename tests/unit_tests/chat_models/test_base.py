"""`ChatFSPO` without torch: parameters, prompt styles, parsing, `from_pretrained`.

The backend here is `ScriptedBackend`, a test double of the abstract `Backend` interface that
returns scripted completions and records what it received (user resolution and retries have
their own modules beside this one). The real in-process backend (real tiny model) is exercised
in `tests/train/serving/test_local_backend_chat.py`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import (
    AdapterNotFoundError,
    PromptFormatError,
)
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt
from tests.recording import ScriptedBackend
from tests.unit_tests.chat_models.scripted import PAPER, RAT, scripted_model


def _fspo_text(prompt: RenderedPrompt) -> str:
    return prompt.text


# ---------------------------------------------------------------- parameters


def test_every_declared_parameter_reaches_the_backend() -> None:
    backend = ScriptedBackend()
    declared: dict[str, Any] = {
        "temperature": 0.3,
        "max_tokens": 17,
        "top_p": 0.8,
        "top_k": 12,
        "seed": 5,
        "stop": ["END"],
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "repetition_penalty": 1.1,
    }
    model = scripted_model(backend, **declared, model_kwargs={"min_p": 0.05})
    model.invoke("Hi")
    (_, adapter, params) = backend.calls[0]
    assert adapter == "alpha"
    assert params == GenerationParams(**declared, extra={"min_p": 0.05})


def test_call_kwargs_override_fields() -> None:
    backend = ScriptedBackend()
    model = scripted_model(backend, temperature=0.3, max_tokens=17, stop=["END"], seed=1)
    model.invoke(
        "Hi",
        temperature=0.9,
        max_tokens=4,
        top_k=3,
        seed=2,
        stop=["STOP"],
        model="beta",
        typical_p=0.5,
    )
    (_, adapter, params) = backend.calls[0]
    assert adapter == "beta"
    assert (params.temperature, params.max_tokens, params.top_k, params.seed) == (0.9, 4, 3, 2)
    assert params.stop == ["STOP"]
    assert params.extra == {"typical_p": 0.5}
    model.bind(presence_penalty=0.7).invoke("Hi")
    assert backend.calls[1][2].presence_penalty == 0.7
    assert backend.calls[1][2].temperature == 0.3  # the field again


def test_unknown_init_arguments_become_model_kwargs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        model = scripted_model(typical_p=0.4)
    assert model.model_kwargs == {"typical_p": 0.4}
    assert "typical_p" in caplog.text


def test_ls_params_follow_the_model_override() -> None:
    model = scripted_model(temperature=0.2, max_tokens=9, stop=["x"])
    params = model._get_ls_params()
    assert params == {
        "ls_provider": "fspo",
        "ls_model_type": "chat",
        "ls_model_name": "alpha",
        "ls_temperature": 0.2,
        "ls_max_tokens": 9,
        "ls_stop": ["x"],
    }
    assert model._get_ls_params(model="beta")["ls_model_name"] == "beta"
    assert model._llm_type == "fspo"
    assert model._identifying_params["model_name"] == "alpha"


# ---------------------------------------------------------------- styles


def test_chat_style_keeps_turns_and_merges_system_messages(memory: PreferenceMemory) -> None:
    model = scripted_model(memory=memory)
    messages = [
        SystemMessage("Answer in English."),
        HumanMessage("Earlier question"),
        AIMessage("Earlier answer <|eot_id|>"),
        HumanMessage("Now this?"),
        ToolMessage("tool output", tool_call_id="c1"),
    ]
    prompt = model.build_prompt(messages, user_id="ada")
    roles = [m["role"] for m in prompt.messages]
    assert roles == ["system", "user", "assistant", "user", "tool"]
    assert prompt.messages[0]["content"] == "Be kind.\n\nAnswer in English."
    assert prompt.messages[1]["content"] == "Earlier question"
    assert "<|eot_id|>" not in prompt.messages[2]["content"]  # neutralised
    assert prompt.messages[3]["content"] == prompt.text
    assert prompt.text.endswith("## Question \nNow this?\n")
    assert "ADA-CHOSEN-2" in prompt.text
    assert prompt.messages[4] == {"role": "tool", "content": "tool output", "tool_call_id": "c1"}


def test_paper_style_uses_only_the_last_human_message(memory: PreferenceMemory) -> None:
    model = scripted_model(prompt_format=PAPER, memory=memory)
    messages = [
        SystemMessage("sys"),
        HumanMessage("old"),
        AIMessage("old answer"),
        HumanMessage("New?"),
    ]
    prompt = model.build_prompt(messages, user_id="bob")
    assert prompt.style == "paper"
    assert prompt.text == PAPER.render(memory.select("bob", k=2), "New?").text
    assert "old" not in prompt.text
    assert "sys" not in prompt.text


def test_a_conversation_without_a_human_message_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs a human message"):
        scripted_model().invoke([SystemMessage("only a system message")])


# ---------------------------------------------------------------- parsing


def test_rat_completion_is_split_into_description_and_answer() -> None:
    reply = "## User Description\nLikes cats.\n## Preferred Response \nGet a cat.\n"
    model = scripted_model(ScriptedBackend(reply, chunk_size=2), prompt_format=RAT)
    message = model.invoke("Pet?")
    assert message.content == "Get a cat."
    assert message.response_metadata["user_description"] == "Likes cats."
    chunks = list(model.stream("Pet?"))
    assert len(chunks) > 2
    assert "".join(str(c.content) for c in chunks) == "Get a cat."
    assert chunks[-1].response_metadata["user_description"] == "Likes cats."
    assert all("#" not in str(c.content) for c in chunks)


def test_paper_headers_are_stripped_and_runaway_blocks_cut() -> None:
    reply = "## Preferred Response \nA short answer.\n# Example 9\n## Question \nmore"
    model = scripted_model(ScriptedBackend(reply, chunk_size=1), prompt_format=PAPER)
    assert model.invoke("Q?").content == "A short answer."
    assert "".join(str(c.content) for c in model.stream("Q?")) == "A short answer."


def test_stream_last_chunk_carries_metadata_and_usage() -> None:
    model = scripted_model(ScriptedBackend("Hello there, friend."), user_id="ada")
    chunks = list(model.stream("Q?"))
    assert len(chunks) >= 6
    assert all(c.chunk_position is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.response_metadata["finish_reason"] == "stop"
    assert last.response_metadata["model_name"] == "alpha"
    assert last.response_metadata["backend"] == "scripted"
    assert last.usage_metadata == {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    whole = model.invoke("Q?")
    assert whole.content == "Hello there, friend."
    assert whole.usage_metadata == last.usage_metadata


def test_streaming_field_routes_invoke_through_stream() -> None:
    backend = ScriptedBackend("Streamed.")
    tokens: list[str] = []

    from langchain_core.callbacks import BaseCallbackHandler

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            tokens.append(str(token))

    message = scripted_model(backend, streaming=True).invoke(
        "Q?", config={"callbacks": [Collect()]}
    )
    assert message.content == "Streamed."
    assert "".join(tokens) == "Streamed."
    assert len(tokens) >= 3


# ---------------------------------------------------------------- from_pretrained


def _adapter_folder(tmp_path: Path, fmt: PromptFormat) -> Path:
    folder = tmp_path / "alpha"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "org/base", "peft_type": "LORA"})
    )
    fmt.save_pretrained(folder)
    return folder


def test_from_pretrained_reads_the_format_and_names_the_adapter(
    tmp_path: Path, memory: PreferenceMemory
) -> None:
    folder = _adapter_folder(tmp_path, PAPER)
    backend = ScriptedBackend()
    model = ChatFSPO.from_pretrained(folder, memory=memory, backend=backend, max_tokens=5)
    assert model.prompt_format == PAPER
    assert model.model_name == "alpha"
    assert model.max_tokens == 5
    model.invoke("Q?", user_id="bob")
    assert backend.calls[0][1] == "alpha"
    with pytest.raises(AdapterNotFoundError):
        ChatFSPO.from_pretrained(folder, backend=backend, adapter_name="gamma")


def test_from_pretrained_detects_chat_template_drift(tmp_path: Path) -> None:
    fmt = PromptFormat(
        style="chat", chat_template_sha256=PromptFormat.template_sha256("{{ trained }}")
    )
    folder = _adapter_folder(tmp_path, fmt)
    backend = ScriptedBackend()
    backend.chat_template = "{{ served }}"
    with pytest.raises(PromptFormatError, match="drift"):
        ChatFSPO.from_pretrained(folder, backend=backend)
    backend.chat_template = "{{ trained }}"
    assert ChatFSPO.from_pretrained(folder, backend=backend).prompt_format == fmt


def test_from_pretrained_without_format_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AdapterNotFoundError, match=r"fspo_format\.json"):
        ChatFSPO.from_pretrained(tmp_path, backend=ScriptedBackend())


def test_unknown_backend_kind_is_a_clear_error(tmp_path: Path) -> None:
    folder = _adapter_folder(tmp_path, PAPER)
    with pytest.raises(ValueError, match="Unknown backend 'nope'"):
        ChatFSPO.from_pretrained(folder, backend="nope")
