"""`ChatFSPO` without torch: prompt building, user resolution, parameters, parsing, retries.

The backend here is `ScriptedBackend`, a test double of the abstract `Backend` interface that
returns scripted completions and records what it received. The real in-process backend (real
tiny model) is exercised in `tests/train/serving/test_local_backend_chat.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langchain_fspo.backends._policy import RetryPolicy
from langchain_fspo.backends.base import Backend, GenerationParams
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import (
    AdapterNotFoundError,
    InferenceServerError,
    InferenceTimeoutError,
    PromptFormatError,
)
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt
from tests.recording import ScriptedBackend

CHAT = PromptFormat(style="chat", num_shots=2, system_prompt="Be kind.")
PAPER = PromptFormat(style="paper", num_shots=2)
RAT = PromptFormat(style="chat", num_shots=2, rationale="user_description")


@pytest.fixture
def memory() -> PreferenceMemory:
    memory = PreferenceMemory()
    for i in range(3):
        memory.add(
            "ada", prompt=f"Ada question {i}?", chosen=f"ADA-CHOSEN-{i}", rejected=f"ADA-REJ-{i}"
        )
    memory.add("bob", prompt="Bob question?", chosen="BOB-CHOSEN", rejected="BOB-REJ")
    return memory


def _model(backend: Backend | None = None, **kwargs: Any) -> ChatFSPO:
    defaults: dict[str, Any] = {
        "backend": backend or ScriptedBackend(),
        "prompt_format": CHAT,
        "model": "alpha",
    }
    return ChatFSPO(**{**defaults, **kwargs})


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
    model = _model(backend, **declared, model_kwargs={"min_p": 0.05})
    model.invoke("Hi")
    (_, adapter, params) = backend.calls[0]
    assert adapter == "alpha"
    assert params == GenerationParams(**declared, extra={"min_p": 0.05})


def test_call_kwargs_override_fields() -> None:
    backend = ScriptedBackend()
    model = _model(backend, temperature=0.3, max_tokens=17, stop=["END"], seed=1)
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
        model = _model(typical_p=0.4)
    assert model.model_kwargs == {"typical_p": 0.4}
    assert "typical_p" in caplog.text


def test_ls_params_follow_the_model_override() -> None:
    model = _model(temperature=0.2, max_tokens=9, stop=["x"])
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


# ---------------------------------------------------------------- users


def _users_seen(backend: ScriptedBackend) -> list[str]:
    """Which user's examples each recorded prompt holds (by the canary in the text)."""
    seen = []
    for prompt, _, _ in backend.calls:
        owners = {name for name in ("ADA", "BOB") if f"{name}-CHOSEN" in prompt.text}
        seen.append(",".join(sorted(owners)) or "none")
    return seen


def test_user_resolution_order(memory: PreferenceMemory) -> None:
    backend = ScriptedBackend()
    model = _model(backend, memory=memory, user_id="ada")
    config = {"configurable": {"user_id": "bob"}}
    results = [
        model.invoke("Q?"),  # the field
        model.invoke("Q?", config=config),  # config beats the field
        model.invoke("Q?", config=config, user_id="ada"),  # the call beats config
        model.with_config(configurable={"user_id": "bob"}).invoke("Q?"),
        (RunnableLambda(lambda x: x) | model).invoke("Q?", config=config),  # inside a chain
        # a bound keyword is the call's keyword: it beats config, also inside a chain
        model.bind(user_id="ada").invoke("Q?", config=config),
        (RunnableLambda(lambda x: x) | model.bind(user_id="ada")).invoke("Q?", config=config),
    ]
    expected = ["ada", "bob", "ada", "bob", "bob", "ada", "ada"]
    assert [r.response_metadata["user_id"] for r in results] == expected
    assert _users_seen(backend) == [user.upper() for user in expected]


def test_a_bound_user_beats_config_in_a_chain_on_every_entry_point(
    memory: PreferenceMemory,
) -> None:
    backend = ScriptedBackend()
    chain = RunnableLambda(lambda x: x) | _model(backend, memory=memory).bind(user_id="ada")
    config: RunnableConfig = {"configurable": {"user_id": "bob"}}

    async def run_async() -> list[Any]:
        return [
            await chain.ainvoke("Q?", config=config),
            [c async for c in chain.astream("Q?", config=config)][-1],
            *(await chain.abatch(["Q?"], config=config)),
        ]

    results = [
        list(chain.stream("Q?", config=config))[-1],
        *chain.batch(["Q?"], config=config),
        *asyncio.run(run_async()),
    ]
    assert [r.response_metadata["user_id"] for r in results] == ["ada"] * 5
    assert _users_seen(backend) == ["ADA"] * 5


def test_user_from_config_reaches_stream_batch_and_async(memory: PreferenceMemory) -> None:
    backend = ScriptedBackend()
    model = _model(backend, memory=memory)
    cfg: RunnableConfig = {"configurable": {"user_id": "bob"}}
    chunks = list(model.stream("Q?", config=cfg))
    assert chunks[-1].response_metadata["user_id"] == "bob"
    batch = model.batch(["Q?", "Q?"], config=[cfg, RunnableConfig(configurable={"user_id": "ada"})])
    assert [m.response_metadata["user_id"] for m in batch] == ["bob", "ada"]

    async def run() -> list[str | None]:
        one = await model.ainvoke("Q?", config=cfg)
        streamed = [c async for c in model.astream("Q?", config=cfg)]
        many = await model.abatch(
            ["Q?", "Q?"], config=[RunnableConfig(configurable={"user_id": "ada"}), cfg]
        )
        return [
            one.response_metadata["user_id"],
            streamed[-1].response_metadata["user_id"],
            *(m.response_metadata["user_id"] for m in many),
        ]

    assert asyncio.run(run()) == ["bob", "bob", "ada", "bob"]

    async def events() -> list[Any]:
        return [
            e["data"]["output"].response_metadata["user_id"]
            async for e in model.astream_events("Q?", config=cfg, version="v2")
            if e["event"] == "on_chat_model_end"
        ]

    assert asyncio.run(events()) == ["bob"]
    assert _users_seen(backend) == ["BOB", "BOB", "ADA", "BOB", "BOB", "ADA", "BOB", "BOB"]


@pytest.mark.parametrize("user_id", [None, "nobody"])
def test_unknown_or_absent_user_is_zero_shot(memory: PreferenceMemory, user_id: str | None) -> None:
    backend = ScriptedBackend()
    model = _model(backend, memory=memory)
    message = model.invoke("Q?", user_id=user_id)
    prompt = backend.calls[0][0]
    assert prompt.shots == []
    assert "Generate a response to the following question." in prompt.text
    assert "# Example" not in prompt.text
    assert message.response_metadata["example_ids"] == []
    assert message.response_metadata["user_id"] == user_id


def test_no_memory_is_zero_shot() -> None:
    prompt = _model(user_id="ada").build_prompt("Q?")
    assert prompt.shots == []
    assert prompt.text.startswith("# Task\n")


def test_memory_selection_uses_k_and_the_newest_examples(memory: PreferenceMemory) -> None:
    backend = ScriptedBackend()
    model = _model(backend, memory=memory)
    message = model.invoke("Q?", user_id="ada")
    prompt = backend.calls[0][0]
    ids = [ex.id for ex in memory.list("ada")]
    assert message.response_metadata["example_ids"] == ids[-2:] == prompt.example_ids
    assert "ADA-CHOSEN-0" not in prompt.text
    assert prompt.text.index("ADA-CHOSEN-1") < prompt.text.index("ADA-CHOSEN-2")


def test_build_prompt_is_what_the_backend_receives(memory: PreferenceMemory) -> None:
    backend = ScriptedBackend()
    model = _model(backend, memory=memory)
    expected = model.build_prompt("Q?", config={"configurable": {"user_id": "ada"}})
    model.invoke("Q?", user_id="ada")
    assert backend.calls[0][0] == expected
    assert asyncio.run(model.abuild_prompt("Q?", user_id="ada")) == expected


def test_token_budget_uses_the_backend_counter(memory: PreferenceMemory) -> None:
    fmt = PromptFormat(style="paper", num_shots=3, max_prompt_tokens=40)
    prompt = _model(prompt_format=fmt, memory=memory).build_prompt("Q?", user_id="ada")
    assert 0 < len(prompt.shots) < 3
    assert prompt.dropped == 3 - len(prompt.shots)
    assert prompt.num_tokens == len(prompt.text.split())
    assert prompt.num_tokens <= 40


# ---------------------------------------------------------------- styles


def test_chat_style_keeps_turns_and_merges_system_messages(memory: PreferenceMemory) -> None:
    model = _model(memory=memory)
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
    model = _model(prompt_format=PAPER, memory=memory)
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
        _model().invoke([SystemMessage("only a system message")])


# ---------------------------------------------------------------- parsing


def test_rat_completion_is_split_into_description_and_answer() -> None:
    reply = "## User Description\nLikes cats.\n## Preferred Response \nGet a cat.\n"
    model = _model(ScriptedBackend(reply, chunk_size=2), prompt_format=RAT)
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
    model = _model(ScriptedBackend(reply, chunk_size=1), prompt_format=PAPER)
    assert model.invoke("Q?").content == "A short answer."
    assert "".join(str(c.content) for c in model.stream("Q?")) == "A short answer."


def test_stream_last_chunk_carries_metadata_and_usage() -> None:
    model = _model(ScriptedBackend("Hello there, friend."), user_id="ada")
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

    message = _model(backend, streaming=True).invoke("Q?", config={"callbacks": [Collect()]})
    assert message.content == "Streamed."
    assert "".join(tokens) == "Streamed."
    assert len(tokens) >= 3


# ---------------------------------------------------------------- errors, retries, timeouts


def test_unknown_adapter_raises() -> None:
    with pytest.raises(AdapterNotFoundError, match="'gamma'"):
        _model().invoke("Q?", model="gamma")


def test_server_errors_are_retried_then_raised(caplog: pytest.LogCaptureFixture) -> None:
    flaky = ScriptedBackend(fail_times=1)
    with caplog.at_level(logging.WARNING):
        assert _model(flaky, max_retries=1).invoke("Q?").content == "Fine answer."
    assert len(flaky.calls) == 2
    assert "retry 1/1" in caplog.text
    broken = ScriptedBackend(fail_times=5)
    with pytest.raises(InferenceServerError, match="503"):
        _model(broken, max_retries=0).invoke("Q?")
    assert len(broken.calls) == 1
    streaming = ScriptedBackend(fail_times=1)
    assert (
        "".join(str(c.content) for c in _model(streaming, max_retries=1).stream("Q?"))
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
        _model(backend, max_retries=3).invoke("Q?")
    assert len(backend.calls) == 1


def test_max_retries_and_timeout_configure_the_backends_layer() -> None:
    backend = ScriptedBackend(fail_times=5)
    backend.retry = RetryPolicy(max_retries=3, backoff_factor=0.001)
    with pytest.raises(InferenceServerError, match="gave up after 3 retries"):
        _model(backend).invoke("Q?")  # not given: the backend's own policy
    assert len(backend.calls) == 4
    backend.calls.clear()
    with pytest.raises(InferenceServerError, match="503"):
        _model(backend, max_retries=0).invoke("Q?")  # given: it wins
    assert len(backend.calls) == 1
    assert backend.retry.max_retries == 3  # the shared backend itself is left as it was
    model = _model(backend, max_retries=1, timeout=2.5)
    assert model._backend().retry == RetryPolicy(max_retries=1, backoff_factor=0.001, timeout=2.5)
    assert model._backend() is model._backend()  # configured once
    copy = model.model_copy(update={"max_retries": 0})
    assert copy._backend().retry.max_retries == 0


def test_timeout_applies_to_sync_and_async_calls_and_streams() -> None:
    slow = _model(ScriptedBackend(delay=0.5), timeout=0.05, max_retries=0)
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
