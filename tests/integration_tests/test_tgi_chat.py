"""`ChatFSPO` served by TGI (and vLLM/SGLang): end to end, asserted from the server's request log.

The test server generates with the tiny Llama and its LoRA adapters; the users' examples come
from a real `PreferenceMemory`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend
from langchain_fspo.backends.tgi import TGIBackend
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import AdapterNotFoundError, InferenceServerError, PromptFormatError
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat
from tests.tgi_server import TGITestServer
from tests.tgi_server.fixtures import ADAPTERS, BASE_MODEL_ID

pytestmark = pytest.mark.integration

USERS = [f"user{u}" for u in range(8)]


@pytest.fixture(scope="module")
def memory() -> PreferenceMemory:
    memory = PreferenceMemory()
    for user in USERS:
        for i in range(3):
            memory.add(
                user, prompt=f"Q-{user}-{i}?", chosen=f"yes-{user}-{i}", rejected=f"no-{user}-{i}"
            )
    return memory


def _llm(
    server: TGITestServer, memory: PreferenceMemory | None = None, style: str = "chat", **kwargs
) -> ChatFSPO:
    params = {
        "model": "fspo-alice",
        "base_url": server.url,
        "prompt_format": PromptFormat(style=style, num_shots=3),
        "memory": memory,
        "adapters": list(ADAPTERS),
        "max_tokens": 4,
        "temperature": 0,
        **kwargs,
    }
    return ChatFSPO(**params)


def _wire_text(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"] if "messages" in body else body["inputs"]


@pytest.mark.parametrize("style", ["chat", "paper"])
def test_invoke_and_stream_send_the_users_examples_to_the_adapter(
    tgi: TGITestServer, memory: PreferenceMemory, style: str
) -> None:
    llm = _llm(tgi, memory, style=style)
    assert isinstance(llm.backend, TGIBackend)
    message = llm.invoke("Review Dune.", user_id="user3")
    chunks = list(llm.stream("Review Dune.", user_id="user5"))
    first, second = tgi.requests
    assert first.path == ("/v1/chat/completions" if style == "chat" else "/generate")
    assert second.path == ("/v1/chat/completions" if style == "chat" else "/generate_stream")
    assert [first.served_adapter, second.served_adapter] == ["fspo-alice", "fspo-alice"]
    assert "yes-user3-0" in _wire_text(first.body)
    assert "user5" not in _wire_text(first.body)
    assert "yes-user5-2" in _wire_text(second.body)
    assert message.response_metadata["model_name"] == "fspo-alice"
    assert message.response_metadata["user_id"] == "user3"
    assert len(message.response_metadata["example_ids"]) == 3
    if style == "chat":
        assert message.usage_metadata is not None
        assert message.usage_metadata["output_tokens"] == 4
    else:  # TGI's /generate reports no prompt length (documented); its stream does
        assert message.usage_metadata is None
    last = chunks[-1]
    assert isinstance(last.message if hasattr(last, "message") else last, AIMessageChunk)
    assert last.chunk_position == "last"
    assert last.usage_metadata is not None
    assert last.usage_metadata["output_tokens"] == 4


def test_per_call_model_selects_the_adapter(tgi: TGITestServer) -> None:
    llm = _llm(tgi)
    message = llm.invoke("Review Dune.", model="fspo-bob")
    streamed = list(llm.stream("Review Dune.", model="fspo-carol"))
    assert [r.body["model"] for r in tgi.requests] == ["fspo-bob", "fspo-carol"]
    assert [r.served_adapter for r in tgi.requests] == ["fspo-bob", "fspo-carol"]
    assert message.response_metadata["model_name"] == "fspo-bob"
    assert streamed[-1].response_metadata["model_name"] == "fspo-carol"
    with pytest.raises(AdapterNotFoundError, match="fspo-nobody"):
        llm.invoke("Review Dune.", model="fspo-nobody")
    assert len(tgi.requests) == 2


async def test_32_concurrent_calls_for_8_users_keep_examples_apart(
    tgi: TGITestServer, memory: PreferenceMemory
) -> None:
    llm = _llm(tgi, memory, max_tokens=2)

    async def ask(user: str, k: int) -> str:
        config = {"configurable": {"user_id": user}}
        if k % 2:
            chunks = [c async for c in llm.astream(f"Final {user} #{k}", config=config)]
            return str(chunks[-1].response_metadata["user_id"])
        message = await llm.ainvoke(f"Final {user} #{k}", config=config)
        return str(message.response_metadata["user_id"])

    answered = await asyncio.gather(*(ask(user, k) for user in USERS for k in range(4)))
    assert answered == [user for user in USERS for _ in range(4)]
    assert len(tgi.requests) == 32
    for request in tgi.requests:
        text = _wire_text(request.body)
        (user,) = [u for u in USERS if f"Final {u} #" in text]
        for other in USERS:
            assert (f"-{other}-" in text) == (other == user)
        assert all(f"yes-{user}-{i}" in text for i in range(3))


def test_tools_and_response_format_reach_the_server(tgi: TGITestServer) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "rate",
                "description": "Rate a film.",
                "parameters": {"type": "object", "properties": {"stars": {"type": "integer"}}},
            },
        }
    ]
    response_format = {"type": "json_object", "value": {"type": "object"}}
    _llm(tgi).bind(tools=tools, tool_choice="required", response_format=response_format).invoke(
        "Rate Dune."
    )
    (request,) = tgi.requests
    assert request.body["tools"] == tools
    assert request.body["tool_choice"] == "required"
    assert request.body["response_format"] == response_format


def test_every_chat_field_reaches_tgi(tgi: TGITestServer) -> None:
    values = {
        "temperature": 0.5,
        "max_tokens": 3,
        "top_p": 0.8,
        "seed": 3,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
    }
    _llm(tgi, **values, stop=["zz"]).invoke("Review Dune.")
    (request,) = tgi.requests
    for name, value in values.items():
        assert request.body[name] == value
    assert request.body["stop"] == ["zz"]


def test_400_is_not_retried_and_503_is(tgi: TGITestServer) -> None:
    llm = _llm(tgi, max_retries=2)
    tgi.fail_next(1, status=400)
    with pytest.raises(InferenceServerError, match="HTTP 400") as info:
        llm.invoke("Review Dune.")
    assert info.value.adapter == "fspo-alice"
    assert [r.status for r in tgi.requests] == [400]
    tgi.reset()
    tgi.fail_next(2, status=503)
    llm.invoke("Review Dune.")
    assert [r.status for r in tgi.requests] == [503, 503, 200]


def test_cut_stream_raises_through_chat_model(tgi: TGITestServer) -> None:
    llm = _llm(tgi, max_tokens=6)
    tgi.cut_stream_next(1, after_events=2)
    with pytest.raises(InferenceServerError, match="cut off"):
        list(llm.stream("Review Dune."))
    assert len(tgi.requests) == 1


def test_api_key_field_is_secret_and_sent(tgi: TGITestServer) -> None:
    llm = _llm(tgi, api_key="hf_chat_secret")
    assert "hf_chat_secret" not in repr(llm)
    assert "hf_chat_secret" not in str(llm.model_dump())
    llm.invoke("hi")
    assert tgi.requests[0].headers["authorization"] == "Bearer hf_chat_secret"


def test_openai_kind_talks_to_vllm(vllm: TGITestServer, memory: PreferenceMemory) -> None:
    llm = _llm(vllm, memory, backend="openai", adapters=None)
    assert isinstance(llm.backend, OpenAICompatibleBackend)
    message = llm.invoke("Review Dune.", user_id="user1", model="fspo-bob")
    chat = vllm.requests_to("/v1/chat/completions")
    assert [r.body["model"] for r in chat] == ["fspo-bob"]
    assert chat[0].served_adapter == "fspo-bob"
    assert "yes-user1-0" in chat[0].body["messages"][-1]["content"]
    assert message.response_metadata["model_name"] == "fspo-bob"


def test_server_backend_needs_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        ChatFSPO(backend="tgi", prompt_format=PromptFormat(), model="x")


# ---------------------------------------------------------------------- from_pretrained


@pytest.mark.parametrize(
    ("served", "route"), [("fspo-alice", "/v1/chat/completions"), ("fspo-carol", "/generate")]
)
def test_from_pretrained_folder_with_tgi(
    tgi: TGITestServer, tiny_stack, served: str, route: str
) -> None:
    folder = tiny_stack.adapter_dirs[served]
    llm = ChatFSPO.from_pretrained(
        folder,
        base_url=tgi.url,
        backend="tgi",
        adapter_name=served,
        adapters=list(ADAPTERS),
        max_tokens=3,
    )
    assert isinstance(llm.backend, TGIBackend)
    assert llm.prompt_format == PromptFormat.from_pretrained(folder)
    llm.invoke("Review Dune.")
    (request,) = tgi.requests
    assert request.path == route
    assert request.served_adapter == served


def test_from_pretrained_refuses_an_adapter_not_served(tgi: TGITestServer, tiny_stack) -> None:
    folder = tiny_stack.adapter_dirs["fspo-alice"]
    with pytest.raises(AdapterNotFoundError, match="fspo-nobody"):
        ChatFSPO.from_pretrained(
            folder,
            base_url=tgi.url,
            backend="tgi",
            adapter_name="fspo-nobody",
            adapters=list(ADAPTERS),
        )
    assert tgi.requests == []


def test_from_pretrained_checks_the_base_model(
    tgi: TGITestServer, tiny_stack, tmp_path: Path
) -> None:
    folder = tmp_path / "adapter"
    shutil.copytree(tiny_stack.adapter_dirs["fspo-alice"], folder)
    fmt = json.loads((folder / "fspo_format.json").read_text())
    fmt["base_model_id"] = "someone/other-base"
    (folder / "fspo_format.json").write_text(json.dumps(fmt))
    with pytest.raises(PromptFormatError, match="other-base"):
        ChatFSPO.from_pretrained(folder, base_url=tgi.url, backend="tgi", adapter_name="fspo-alice")
    assert BASE_MODEL_ID not in str(folder)


def test_prompt_token_budget_is_enforced_with_tgi_tokenizer(
    tgi: TGITestServer, memory: PreferenceMemory, tiny_stack
) -> None:
    tokenizer = tiny_stack.backend.tokenizer
    full = _llm(tgi, memory).build_prompt("Review Dune.", user_id="user2")
    assert len(full.shots) == 3
    budget = len(tokenizer(full.text, add_special_tokens=False)["input_ids"]) - 5
    fmt = PromptFormat(style="chat", num_shots=3, max_prompt_tokens=budget)
    llm = _llm(tgi, memory, prompt_format=fmt)
    assert llm.backend.count_tokens("Review Dune.") == len(
        tokenizer("Review Dune.", add_special_tokens=False)["input_ids"]
    )
    message = llm.invoke("Review Dune.", user_id="user2")
    assert message.response_metadata["dropped_shots"] >= 1
    sent = tgi.requests_to("/v1/chat/completions")[0].body["messages"][-1]["content"]
    assert "yes-user2-0" not in sent  # the oldest shot went first
    assert "yes-user2-2" in sent
    assert len(tokenizer(sent, add_special_tokens=False)["input_ids"]) <= budget
    assert tgi.requests_to("/tokenize")


def test_token_count_is_none_without_a_tokenizer() -> None:
    from tests.tgi_server import ScriptedBackend

    with TGITestServer(ScriptedBackend()) as server:
        backend = TGIBackend(server.url)
        assert backend.count_tokens("hello") is None
        assert [r.status for r in server.requests] == [404]
        assert TGIBackend(server.url, remote_token_count=False).count_tokens("x") is None
        assert len(server.requests) == 1
        assert server.spec_violations == []
