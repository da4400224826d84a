"""`ChatFSPO` user resolution: whose examples each call's prompt carries, on every entry point.

The documented order: the call's `user_id`, then a bound one, then the run config's
`configurable.user_id`, then the model's; an unknown or absent user is served zero-shot.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat
from tests.recording import ScriptedBackend
from tests.unit_tests.chat_models.scripted import scripted_model

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
    model = scripted_model(backend, memory=memory, user_id="ada")
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
    chain = RunnableLambda(lambda x: x) | scripted_model(backend, memory=memory).bind(user_id="ada")
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
    model = scripted_model(backend, memory=memory)
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
    model = scripted_model(backend, memory=memory)
    message = model.invoke("Q?", user_id=user_id)
    prompt = backend.calls[0][0]
    assert prompt.shots == []
    assert "Generate a response to the following question." in prompt.text
    assert "# Example" not in prompt.text
    assert message.response_metadata["example_ids"] == []
    assert message.response_metadata["user_id"] == user_id


def test_no_memory_is_zero_shot() -> None:
    prompt = scripted_model(user_id="ada").build_prompt("Q?")
    assert prompt.shots == []
    assert prompt.text.startswith("# Task\n")


def test_memory_selection_uses_k_and_the_newest_examples(memory: PreferenceMemory) -> None:
    backend = ScriptedBackend()
    model = scripted_model(backend, memory=memory)
    message = model.invoke("Q?", user_id="ada")
    prompt = backend.calls[0][0]
    ids = [ex.id for ex in memory.list("ada")]
    assert message.response_metadata["example_ids"] == ids[-2:] == prompt.example_ids
    assert "ADA-CHOSEN-0" not in prompt.text
    assert prompt.text.index("ADA-CHOSEN-1") < prompt.text.index("ADA-CHOSEN-2")


def test_build_prompt_is_what_the_backend_receives(memory: PreferenceMemory) -> None:
    backend = ScriptedBackend()
    model = scripted_model(backend, memory=memory)
    expected = model.build_prompt("Q?", config={"configurable": {"user_id": "ada"}})
    model.invoke("Q?", user_id="ada")
    assert backend.calls[0][0] == expected
    assert asyncio.run(model.abuild_prompt("Q?", user_id="ada")) == expected


def test_token_budget_uses_the_backend_counter(memory: PreferenceMemory) -> None:
    fmt = PromptFormat(style="paper", num_shots=3, max_prompt_tokens=40)
    prompt = scripted_model(prompt_format=fmt, memory=memory).build_prompt("Q?", user_id="ada")
    assert 0 < len(prompt.shots) < 3
    assert prompt.dropped == 3 - len(prompt.shots)
    assert prompt.num_tokens == len(prompt.text.split())
    assert prompt.num_tokens <= 40
