"""`ChatFSPO` over a real vLLM server (CPU build) serving tiny FSPO adapters.

The server (the `vllm_server` fixture, tests/integration_tests/vllm_server.py) runs once per
session; these tests skip without `FSPO_VLLM_PYTHON` and fail under `FSPO_REQUIRE_VLLM=1`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from transformers import AutoTokenizer

from fspo_train.testing.vllm import BASE_MODEL_NAME, VLLMServer
from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import AdapterNotFoundError
from langchain_fspo.memory import PreferenceMemory

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

USERS = {
    "ada": ("Recommend a film.", "Arrival: quiet and clever.", "A loud sequel."),
    "bo": ("Recommend a book for a long flight.", "Dune, all of it.", "A manual."),
    "cy": ("What should I cook tonight?", "A quick curry with rice and greens.", "Pizza."),
    "di": ("Plan my weekend.", "Long walks in the park, then coffee.", "Stay in."),
}


def _memory() -> PreferenceMemory:
    """Each user gets examples of a different length (their prompts differ in size)."""
    memory = PreferenceMemory()
    for n, (user, (prompt, chosen, rejected)) in enumerate(USERS.items()):
        for i in range(n + 1):
            memory.add(user, prompt=f"{prompt} ({i})", chosen=chosen, rejected=rejected)
    return memory


def _llm(server: VLLMServer, adapter: str, **kwargs: Any) -> ChatFSPO:
    return ChatFSPO.from_pretrained(
        server.adapter_dirs[adapter],
        backend="openai",
        base_url=server.base_url,
        adapter_name=adapter,
        temperature=0,
        max_tokens=kwargs.pop("max_tokens", 8),
        **kwargs,
    )


def _access_lines(server: VLLMServer, route: str) -> int:
    return server.log_text().count(f'"POST {route} HTTP/1.1" 200')


def test_check_adapter_reads_v1_models(vllm_server: VLLMServer) -> None:
    backend = OpenAICompatibleBackend(vllm_server.base_url)
    served = backend.served_models(refresh=True)
    assert served[0] == BASE_MODEL_NAME
    assert set(vllm_server.adapter_dirs) <= set(served)
    backend.check_adapter("alpha")
    with pytest.raises(AdapterNotFoundError, match=r"'nobody'.*serving: .*alpha"):
        backend.check_adapter("nobody")
    with pytest.raises(AdapterNotFoundError, match="nobody"):
        ChatFSPO.from_pretrained(
            vllm_server.adapter_dirs["alpha"],
            backend="openai",
            base_url=vllm_server.base_url,
            adapter_name="nobody",
        )


@pytest.mark.parametrize(
    ("adapter", "route"), [("alpha", "/v1/chat/completions"), ("paper", "/v1/completions")]
)
def test_each_style_uses_its_route(vllm_server: VLLMServer, adapter: str, route: str) -> None:
    llm = _llm(vllm_server, adapter, memory=_memory())
    before = _access_lines(vllm_server, route)
    message = llm.invoke("Recommend a series.", user_id="bo")
    assert _access_lines(vllm_server, route) == before + 1
    assert message.content
    assert message.response_metadata["prompt_style"] == llm.prompt_format.style
    assert message.response_metadata["model_name"] == adapter
    assert message.response_metadata["num_shots"] == 2
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == 8


@pytest.mark.parametrize("adapter", ["alpha", "paper"])
def test_stream_matches_invoke(vllm_server: VLLMServer, adapter: str) -> None:
    llm = _llm(vllm_server, adapter, memory=_memory(), max_tokens=12)
    whole = llm.invoke("Recommend a series.", user_id="cy")
    chunks = list(llm.stream("Recommend a series.", user_id="cy"))
    assert len([c for c in chunks if c.content]) > 1
    assert "".join(str(c.content) for c in chunks) == whole.content
    last = chunks[-1]
    assert last.response_metadata["finish_reason"] == "length"
    assert last.usage_metadata is not None
    assert last.usage_metadata["output_tokens"] == 12


async def test_concurrent_users_each_send_only_their_examples(vllm_server: VLLMServer) -> None:
    memory = _memory()
    llm = _llm(vllm_server, "alpha", memory=memory)
    tokenizer = AutoTokenizer.from_pretrained(str(vllm_server.base_dir))
    query = "Recommend something for tonight."
    users = list(USERS)
    messages = await asyncio.gather(*(llm.ainvoke(query, user_id=u) for u in users))
    for user, message in zip(users, messages, strict=True):
        own = [e.id for e in memory.list(user)]
        assert message.response_metadata["user_id"] == user
        assert set(message.response_metadata["example_ids"]) <= set(own)
        assert message.response_metadata["num_shots"] == min(len(own), 4)
        # The server counted exactly the tokens of this user's own prompt.
        prompt = llm.build_prompt(query, user_id=user)
        expected = tokenizer.apply_chat_template(
            prompt.messages, add_generation_prompt=True, return_dict=True
        )["input_ids"]
        assert message.usage_metadata is not None
        assert message.usage_metadata["input_tokens"] == len(expected)
    assert len({m.usage_metadata["input_tokens"] for m in messages if m.usage_metadata}) == 4


def test_two_adapters_on_one_server_answer_differently(vllm_server: VLLMServer) -> None:
    llm = _llm(vllm_server, "alpha", memory=_memory(), max_tokens=16)
    alpha = llm.invoke("Recommend a series.", user_id="ada")
    beta = llm.invoke("Recommend a series.", user_id="ada", model="beta")
    assert alpha.response_metadata["model_name"] == "alpha"
    assert beta.response_metadata["model_name"] == "beta"
    assert alpha.content != beta.content
