"""`FSPOMiddleware` in real `create_agent` graphs, without torch.

The agents are real (`langchain.agents.create_agent`, LangGraph runtime, context, store); the
model is a real `ChatFSPO` over `ScriptedBackend`, the `Backend` test double of
test_chat_models.py that records the prompt, adapter and parameters of every call. The real
tiny model runs the two-user canary test in `tests/train/serving/test_middleware.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.store.memory import InMemoryStore
from pydantic import BaseModel

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import AdapterNotFoundError, AgentConfigError, InvalidExampleError
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.middleware import FSPOMiddleware
from langchain_fspo.prompt_format import PromptFormat
from tests.unit_tests.chat_models.test_base import ScriptedBackend

CHAT = PromptFormat(style="chat", num_shots=4)
USERS = ("ada", "bob")


@dataclass
class Context:
    user_id: str


class DictContext(TypedDict):
    user_id: str


class ModelContext(BaseModel):
    account: str


def _fill(memory: PreferenceMemory, tag: str = "") -> PreferenceMemory:
    for user in USERS:
        memory.add(
            user,
            prompt=f"{user} question?",
            chosen=f"{user.upper()}{tag}-CHOSEN",
            rejected=f"{user.upper()}{tag}-REJECTED",
        )
    return memory


@pytest.fixture
def memory() -> PreferenceMemory:
    return _fill(PreferenceMemory())


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(adapters=("alpha", "beta", "gamma"))


def _llm(backend: ScriptedBackend, **kwargs: Any) -> ChatFSPO:
    return ChatFSPO(backend=backend, prompt_format=CHAT, model="alpha", **kwargs)


def _ask(agent: Any, **kwargs: Any) -> AIMessage:
    result = agent.invoke({"messages": [{"role": "user", "content": "Hello?"}]}, **kwargs)
    message = result["messages"][-1]
    assert isinstance(message, AIMessage)
    return message


def _owners(backend: ScriptedBackend) -> list[set[str]]:
    """Per backend call, the users whose examples were in the prompt."""
    return [{u for u in USERS if f"{u.upper()}-CHOSEN" in p.text} for p, _, _ in backend.calls]


# ---------------------------------------------------------------- users


def test_each_call_uses_the_user_in_the_agents_context(backend, memory) -> None:
    agent = create_agent(
        _llm(backend),
        tools=[],
        middleware=[FSPOMiddleware(memory=memory)],
        context_schema=Context,
    )
    answers = [_ask(agent, context=Context(user_id=u)) for u in ("ada", "bob", "ada")]

    assert _owners(backend) == [{"ada"}, {"bob"}, {"ada"}]
    assert [a.response_metadata["user_id"] for a in answers] == ["ada", "bob", "ada"]
    assert answers[1].response_metadata["example_ids"] == [e.id for e in memory.list("bob")]


def test_dict_and_pydantic_contexts_and_a_custom_key(backend, memory) -> None:
    agent = create_agent(
        _llm(backend), middleware=[FSPOMiddleware(memory=memory)], context_schema=DictContext
    )
    _ask(agent, context={"user_id": "bob"})
    keyed = create_agent(
        _llm(backend),
        middleware=[FSPOMiddleware(memory=memory, user_key="account")],
        context_schema=ModelContext,
    )
    _ask(keyed, context=ModelContext(account="ada"))
    assert _owners(backend) == [{"bob"}, {"ada"}]


def test_the_configurable_user_id_is_used_without_a_context(backend, memory) -> None:
    agent = create_agent(_llm(backend), middleware=[FSPOMiddleware(memory=memory)])
    _ask(agent, config={"configurable": {"user_id": "bob"}})
    assert _owners(backend) == [{"bob"}]


def test_the_context_wins_over_the_configurable_user(backend, memory) -> None:
    agent = create_agent(
        _llm(backend), middleware=[FSPOMiddleware(memory=memory)], context_schema=Context
    )
    _ask(agent, context=Context(user_id="ada"), config={"configurable": {"user_id": "bob"}})
    assert _owners(backend) == [{"ada"}]


def test_a_resolver_function_replaces_the_lookup(backend, memory) -> None:
    seen: list[ModelRequest[Any]] = []

    def resolve(request: ModelRequest[Any]) -> str:
        seen.append(request)
        return "bob"

    agent = create_agent(
        _llm(backend),
        middleware=[FSPOMiddleware(memory=memory, resolve_user=resolve)],
        context_schema=Context,
    )
    _ask(agent, context=Context(user_id="ada"))
    assert _owners(backend) == [{"bob"}]
    assert len(seen) == 1
    assert seen[0].runtime.context == Context(user_id="ada")


def test_no_user_answers_zero_shot_or_fails_when_required(backend, memory) -> None:
    agent = create_agent(_llm(backend), middleware=[FSPOMiddleware(memory=memory)])
    answer = _ask(agent)
    assert answer.response_metadata["user_id"] is None
    assert backend.calls[-1][0].shots == []

    strict = create_agent(
        _llm(backend), middleware=[FSPOMiddleware(memory=memory, require_user=True)]
    )
    with pytest.raises(AgentConfigError, match=r"found no user.*user_id"):
        _ask(strict)
    assert len(backend.calls) == 1


def test_a_user_id_that_is_not_a_string_is_refused(backend, memory) -> None:
    agent = create_agent(_llm(backend), middleware=[FSPOMiddleware(memory=memory)])
    with pytest.raises(InvalidExampleError, match="must be a str"):
        _ask(agent, context={"user_id": 42})
    assert backend.calls == []


# ---------------------------------------------------------------- adapters


@pytest.mark.parametrize(
    ("adapter", "expected"),
    [
        (None, ["alpha", "alpha"]),
        ("gamma", ["gamma", "gamma"]),
        ({"bob": "beta"}, ["alpha", "beta"]),
        (lambda user: "beta" if user == "ada" else None, ["beta", "alpha"]),
    ],
    ids=["model-default", "fixed", "mapping", "function"],
)
def test_the_adapter_is_chosen_per_user(backend, memory, adapter, expected) -> None:
    agent = create_agent(
        _llm(backend),
        middleware=[FSPOMiddleware(memory=memory, adapter=adapter)],
        context_schema=Context,
    )
    answers = [_ask(agent, context=Context(user_id=u)) for u in USERS]
    assert [a for _, a, _ in backend.calls] == expected
    assert [m.response_metadata["adapter"] for m in answers] == expected


def test_an_adapter_the_backend_does_not_serve_fails_clearly(backend, memory) -> None:
    agent = create_agent(
        _llm(backend),
        middleware=[FSPOMiddleware(memory=memory, adapter={"ada": "nope"})],
        context_schema=Context,
    )
    with pytest.raises(AdapterNotFoundError, match="nope"):
        _ask(agent, context=Context(user_id="ada"))


def test_an_adapter_selector_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(AgentConfigError, match="got int"):
        FSPOMiddleware(adapter=3)
    with pytest.raises(AgentConfigError, match="user_key"):
        FSPOMiddleware(user_key="")


# ---------------------------------------------------------------- memory


def test_the_middlewares_memory_wins_and_the_model_is_not_mutated(backend, memory) -> None:
    model_memory = _fill(PreferenceMemory(), tag="-MODEL")
    llm = _llm(backend, memory=model_memory)
    agent = create_agent(llm, middleware=[FSPOMiddleware(memory=memory)], context_schema=Context)
    _ask(agent, context=Context(user_id="ada"))
    assert "ADA-CHOSEN" in backend.calls[-1][0].text
    assert llm.memory is model_memory

    plain = create_agent(llm, middleware=[FSPOMiddleware()], context_schema=Context)
    _ask(plain, context=Context(user_id="ada"))
    assert "ADA-MODEL-CHOSEN" in backend.calls[-1][0].text


def test_the_models_memory_wins_over_the_agents_store(backend) -> None:
    store = InMemoryStore()
    _fill(PreferenceMemory(store), tag="-STORE")
    llm = _llm(backend, memory=_fill(PreferenceMemory(), tag="-MODEL"))
    agent = create_agent(llm, middleware=[FSPOMiddleware()], context_schema=Context, store=store)
    _ask(agent, context=Context(user_id="bob"))
    assert "BOB-MODEL-CHOSEN" in backend.calls[-1][0].text


def test_without_any_memory_the_agents_store_is_read(backend) -> None:
    store = InMemoryStore()
    stored = _fill(PreferenceMemory(store, namespace=("app", "prefs")), tag="-STORE")
    llm = _llm(backend)
    middleware = FSPOMiddleware(store_namespace=("app", "prefs"))
    agent = create_agent(llm, middleware=[middleware], context_schema=Context, store=store)

    answer = _ask(agent, context=Context(user_id="bob"))
    assert "BOB-STORE-CHOSEN" in backend.calls[-1][0].text
    assert "ADA" not in backend.calls[-1][0].text
    assert answer.response_metadata["example_ids"] == [e.id for e in stored.list("bob")]
    assert llm.memory is None

    off = create_agent(
        llm, middleware=[FSPOMiddleware(use_store=False)], context_schema=Context, store=store
    )
    _ask(off, context=Context(user_id="bob"))
    assert backend.calls[-1][0].shots == []


# ---------------------------------------------------------------- composition and models


class _Settings(AgentMiddleware[Any, Any, Any]):
    """Another middleware that sets a model setting of its own."""

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse]
    ) -> ModelResponse:
        return handler(request.override(model_settings={"temperature": 0.25}))


def test_settings_of_other_middleware_are_kept(backend, memory) -> None:
    agent = create_agent(
        _llm(backend),
        middleware=[_Settings(), FSPOMiddleware(memory=memory, adapter="beta")],
        context_schema=Context,
    )
    _ask(agent, context=Context(user_id="ada"))
    _, adapter, params = backend.calls[-1]
    assert (adapter, params.temperature) == ("beta", 0.25)
    assert _owners(backend) == [{"ada"}]


def test_another_model_is_refused_unless_strict_is_off() -> None:
    def fake() -> GenericFakeChatModel:
        return GenericFakeChatModel(messages=iter([AIMessage("plain answer")]))

    agent = create_agent(fake(), middleware=[FSPOMiddleware()], context_schema=Context)
    with pytest.raises(AgentConfigError, match=r"GenericFakeChatModel.*strict=False"):
        _ask(agent, context=Context(user_id="ada"))

    lenient = create_agent(
        fake(), middleware=[FSPOMiddleware(strict=False)], context_schema=Context
    )
    assert _ask(lenient, context=Context(user_id="ada")).content == "plain answer"


async def test_the_async_agent_path_personalises_too(backend, memory) -> None:
    agent = create_agent(
        _llm(backend),
        middleware=[FSPOMiddleware(memory=memory, adapter={"bob": "beta"})],
        context_schema=Context,
    )
    result = await agent.ainvoke(
        {"messages": [{"role": "user", "content": "Hi?"}]}, context=Context(user_id="bob")
    )
    assert result["messages"][-1].response_metadata["user_id"] == "bob"
    assert _owners(backend) == [{"bob"}]
    assert backend.calls[-1][1] == "beta"


def test_token_streaming_through_the_agent_keeps_the_user(backend, memory) -> None:
    agent = create_agent(
        _llm(backend),
        middleware=[FSPOMiddleware(memory=memory, adapter={"bob": "beta"})],
        context_schema=Context,
    )
    chunks = [
        message
        for message, _ in agent.stream(
            {"messages": [{"role": "user", "content": "Hi?"}]},
            context=Context(user_id="bob"),
            stream_mode="messages",
        )
    ]
    assert "".join(str(c.content) for c in chunks) == backend.reply
    assert len(chunks) > 2  # token by token, not one message
    assert chunks[-1].response_metadata["user_id"] == "bob"
    assert _owners(backend) == [{"bob"}]
    assert backend.calls[-1][1] == "beta"


def test_an_agent_with_tools_still_gets_the_user_and_adapter(backend, memory) -> None:
    from langchain_core.tools import tool

    @tool
    def lookup(title: str) -> str:
        """Look a book up."""
        return f"{title}: in stock"

    agent = create_agent(
        _llm(backend),
        tools=[lookup],
        middleware=[FSPOMiddleware(memory=memory, adapter={"ada": "gamma"})],
        context_schema=Context,
    )
    answer = _ask(agent, context=Context(user_id="ada"))

    _, adapter, params = backend.calls[-1]
    assert adapter == "gamma"
    assert [t["function"]["name"] for t in params.extra["tools"]] == ["lookup"]
    assert _owners(backend) == [{"ada"}]
    assert answer.response_metadata["user_id"] == "ada"
