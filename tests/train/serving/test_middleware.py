"""`FSPOMiddleware` in a real agent over the real in-process model (tiny Llama + LoRA adapters).

Two users with different canary examples talk to one `create_agent` agent. What the backend
received (`RecordingLocalBackend`: the real `LocalBackend`, recording the rendered prompt, the
adapter, the token ids and the PEFT adapter active in `model.generate`) proves that each call
carried only that user's examples and ran the user's adapter.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat
from tests.recording import RecordingLocalBackend

pytestmark = pytest.mark.train

pytest.importorskip("torch")
create_agent = pytest.importorskip("langchain.agents").create_agent
FSPOMiddleware = pytest.importorskip("langchain_fspo.middleware").FSPOMiddleware

CANARY = {"ada": "CANARY-ADA-5d1e", "bob": "CANARY-BOB-a0c7"}
ADAPTER = {"ada": "alpha", "bob": "beta"}
CANARY_RE = re.compile(r"CANARY-[A-Z]+-[0-9a-f]{4}")


@dataclass
class Context:
    user_id: str


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]) -> RecordingLocalBackend:
    return RecordingLocalBackend(
        tiny_model_dir,
        adapters={name: tiny_adapter_dirs[name] for name in ("alpha", "beta")},
        default_max_tokens=4,
    )


@pytest.fixture(autouse=True)
def _fresh_records(backend: RecordingLocalBackend) -> None:
    backend.reset()


def _fill(memory: PreferenceMemory) -> PreferenceMemory:
    for user, canary in CANARY.items():
        for i in range(2):
            memory.add(
                user,
                prompt=f"{user} question {i}?",
                chosen=f"{canary} liked answer {i}",
                rejected=f"{canary} disliked answer {i}",
            )
    return memory


@pytest.fixture
def llm(backend: RecordingLocalBackend, tiny_adapter_dirs: dict[str, Path]) -> ChatFSPO:
    """The agent's model: no memory and no user of its own (the middleware brings them)."""
    return ChatFSPO(
        backend=backend,
        prompt_format=PromptFormat.from_pretrained(tiny_adapter_dirs["alpha"]),
        model="alpha",
        max_tokens=4,
    )


def _ask(agent: Any, user: str) -> Any:
    result = agent.invoke(
        {"messages": [{"role": "user", "content": "What should I read next?"}]},
        context=Context(user_id=user),
    )
    return result["messages"][-1]


def _assert_calls(
    backend: RecordingLocalBackend, memory: PreferenceMemory, users: list[str]
) -> None:
    """Each call carried one user's examples only, and ran that user's adapter in generate.

    Concurrent calls arrive in any order, so each call's user is read from its canary; the users
    seen must then be exactly `users` (as a multiset).
    """
    assert len(backend.calls) == len(users)
    unclaimed = list(backend.generate_calls)
    seen = []
    for call in backend.calls:
        rendered = "\n".join(str(m["content"]) for m in call.prompt.messages)
        canaries = set(CANARY_RE.findall(rendered))
        assert len(canaries) == 1, canaries  # never two users' examples in one prompt
        user = next(u for u, c in CANARY.items() if c in canaries)
        seen.append(user)
        assert call.prompt.example_ids == [e.id for e in memory.list(user)]
        assert call.adapter == ADAPTER[user]
        # What model.generate read: the same tokens, the user's canary, the user's adapter.
        generated = next(g for g in unclaimed if g["input_ids"] == call.input_ids)
        unclaimed.remove(generated)
        decoded = backend.tokenizer.decode(generated["input_ids"])
        assert set(CANARY_RE.findall(decoded)) == {CANARY[user]}
        assert generated["active_adapter"] == ADAPTER[user]
    assert sorted(seen) == sorted(users)
    assert unclaimed == []


def test_two_users_get_their_own_examples_and_adapter(
    llm: ChatFSPO, backend: RecordingLocalBackend, tmp_path: Path
) -> None:
    with PreferenceMemory.sqlite(tmp_path / "prefs.db") as memory:
        _fill(memory)
        agent = create_agent(
            model=llm,
            tools=[],
            middleware=[FSPOMiddleware(memory=memory, adapter=ADAPTER)],
            context_schema=Context,
        )
        users = ["ada", "bob", "bob", "ada"]
        answers = [_ask(agent, u) for u in users]

        assert [a.response_metadata["user_id"] for a in answers] == users
        assert [a.response_metadata["adapter"] for a in answers] == [ADAPTER[u] for u in users]
        _assert_calls(backend, memory, users)


def test_the_agents_store_async_and_concurrent_calls(
    llm: ChatFSPO, backend: RecordingLocalBackend
) -> None:
    store = InMemoryStore()
    memory = _fill(PreferenceMemory(store))
    agent = create_agent(
        model=llm,
        tools=[],
        middleware=[FSPOMiddleware(adapter=ADAPTER)],
        context_schema=Context,
        store=store,
    )

    async def both() -> list[Any]:
        return [
            await agent.ainvoke(
                {"messages": [{"role": "user", "content": "Hi?"}]}, context=Context(user_id=u)
            )
            for u in ("bob", "ada")
        ]

    asyncio.run(both())
    users = ["ada", "bob"] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda u: _ask(agent, u), users))

    assert [a.response_metadata["user_id"] for a in answers] == users
    _assert_calls(backend, memory, ["bob", "ada", *users])
