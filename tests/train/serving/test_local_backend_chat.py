"""`ChatFSPO` on the real in-process backend (tiny Llama + PEFT adapters) with a real memory.

The canary test is the one that matters most: with many users served by one model, a user's
prompt must never contain another user's examples, whatever the call path (sync, async,
streaming, batched, concurrent).
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory
from tests.recording import RecordingLocalBackend

pytestmark = pytest.mark.train

pytest.importorskip("torch")

CANARY = {"ada": "CANARY-ADA-7f3e", "bob": "CANARY-BOB-91c2"}
CANARY_RE = re.compile(r"CANARY-[A-Z]+-[0-9a-f]{4}")


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]) -> RecordingLocalBackend:
    return RecordingLocalBackend(
        tiny_model_dir,
        adapters={name: tiny_adapter_dirs[name] for name in ("alpha", "beta", "paper")},
        default_max_tokens=6,
    )


@pytest.fixture(autouse=True)
def _fresh_records(backend: RecordingLocalBackend) -> None:
    backend.reset()


@pytest.fixture
def memory(tmp_path: Path) -> PreferenceMemory:
    memory = PreferenceMemory.sqlite(tmp_path / "prefs.db")
    for user, canary in CANARY.items():
        for i in range(3):
            memory.add(
                user,
                prompt=f"{user} question {i}?",
                chosen=f"{canary} preferred answer {i}",
                rejected=f"{canary} dispreferred answer {i}",
            )
    yield memory
    memory.close()


def _canaries(text: str) -> set[str]:
    return set(CANARY_RE.findall(text))


def _assert_isolated(
    backend: RecordingLocalBackend, memory: PreferenceMemory, expected_users: list[str]
) -> None:
    """Every recorded call saw exactly its own user's examples (by text, ids and tokens)."""
    assert len(backend.calls) == len(expected_users)
    assert len(backend.generate_calls) == len(expected_users)
    calls_by_user: dict[str, int] = {}
    for call in backend.calls:
        (owner,) = _canaries(call.prompt.text)  # exactly one user's canary in the prompt
        user = next(u for u, c in CANARY.items() if c == owner)
        calls_by_user[user] = calls_by_user.get(user, 0) + 1
        own_ids = {ex.id for ex in memory.list(user)}
        assert set(call.prompt.example_ids) <= own_ids
        assert len(call.prompt.example_ids) == 3
        decoded = backend.tokenizer.decode(call.input_ids)
        assert _canaries(decoded) == {owner}
    # And what reached model.generate is exactly what the backend rendered, call by call.
    sent = sorted(tuple(g["input_ids"]) for g in backend.generate_calls)
    rendered = sorted(tuple(c.input_ids) for c in backend.calls)
    assert sent == rendered
    expected: dict[str, int] = {}
    for user in expected_users:
        expected[user] = expected.get(user, 0) + 1
    assert calls_by_user == expected


def test_canary_sync_async_and_streaming(
    llm: ChatFSPO, backend: RecordingLocalBackend, memory: PreferenceMemory
) -> None:
    for user, canary in CANARY.items():
        prompt = llm.build_prompt("What should I read?", user_id=user)
        assert _canaries(prompt.messages[-1]["content"]) == {canary}
        assert prompt.example_ids == [ex.id for ex in memory.list(user)]

    message = llm.invoke("What should I read?", user_id="ada")
    assert message.response_metadata["user_id"] == "ada"
    assert message.response_metadata["example_ids"] == [ex.id for ex in memory.list("ada")]
    chunks = list(llm.stream("What should I read?", config={"configurable": {"user_id": "bob"}}))
    assert chunks[-1].response_metadata["user_id"] == "bob"

    async def run() -> None:
        reply = await llm.ainvoke("What should I read?", user_id="bob")
        assert reply.response_metadata["example_ids"] == [ex.id for ex in memory.list("bob")]
        streamed = [c async for c in llm.astream("What should I read?", user_id="ada")]
        assert streamed[-1].response_metadata["user_id"] == "ada"

    asyncio.run(run())
    _assert_isolated(backend, memory, ["ada", "bob", "bob", "ada"])


def test_canary_under_16_concurrent_mixed_calls(
    llm: ChatFSPO, backend: RecordingLocalBackend, memory: PreferenceMemory
) -> None:
    users = ["ada", "bob"] * 8
    configs: list[Any] = [{"configurable": {"user_id": u}} for u in users]

    results = llm.batch(["Q?"] * 16, config=configs)
    assert [r.response_metadata["user_id"] for r in results] == users
    _assert_isolated(backend, memory, users)
    backend.reset()

    results = asyncio.run(llm.abatch(["Q?"] * 16, config=configs))
    assert [r.response_metadata["user_id"] for r in results] == users
    _assert_isolated(backend, memory, users)
    backend.reset()

    async def gather() -> list[Any]:
        async def streamed(user: str) -> AIMessageChunk:
            total: AIMessageChunk | None = None
            async for chunk in llm.astream("Q?", user_id=user):
                total = chunk if total is None else total + chunk
            assert total is not None
            return total

        calls = [
            llm.ainvoke("Q?", user_id=u) if i % 2 else streamed(u) for i, u in enumerate(users)
        ]
        return await asyncio.gather(*calls)

    results = asyncio.run(gather())
    assert [r.response_metadata["user_id"] for r in results] == users
    for result, user in zip(results, users, strict=True):
        assert result.response_metadata["example_ids"] == [ex.id for ex in memory.list(user)]
    _assert_isolated(backend, memory, users)


def test_parameters_reach_model_generate(llm: ChatFSPO, backend: RecordingLocalBackend) -> None:
    llm.invoke(
        "Q?",
        user_id="ada",
        temperature=0.8,
        max_tokens=4,
        top_p=0.9,
        top_k=30,
        seed=3,
        stop=["\n\n"],
        frequency_penalty=0.2,
        presence_penalty=0.1,
        repetition_penalty=1.2,
        model="beta",
    )
    (call,) = backend.generate_calls
    assert call["active_adapter"] == "beta"
    assert (call["do_sample"], call["temperature"], call["top_p"], call["top_k"]) == (
        True,
        0.8,
        0.9,
        30,
    )
    assert call["max_new_tokens"] == 4
    (stops,) = call["stopping_criteria"]  # per row: max_tokens, stop strings, EOS
    assert stops.stops == [["\n\n"]]
    assert call["repetition_penalty"] == 1.2
    assert len(call["logits_processor"]) == 1  # the frequency/presence penalty
    assert backend.calls[0].params.seed == 3


def test_stream_equals_invoke_under_greedy_decoding(llm: ChatFSPO) -> None:
    kwargs: dict[str, Any] = {"user_id": "ada", "temperature": 0, "seed": 0, "max_tokens": 12}
    whole = llm.invoke("Tell me a story.", **kwargs)
    chunks = list(llm.stream("Tell me a story.", **kwargs))
    assert len(chunks) >= 4
    assert "".join(str(c.content) for c in chunks) == whole.content
    assert whole.content
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata == whole.usage_metadata
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] == 12
    assert last.response_metadata["finish_reason"] == whole.response_metadata["finish_reason"]


def test_adapters_answer_differently_and_none_is_the_base(llm: ChatFSPO) -> None:
    answers = {m: llm.invoke("Q?", user_id="ada", model=m).content for m in ("alpha", "beta")}
    assert answers["alpha"] != answers["beta"]
    base = llm.invoke("Q?", user_id="ada", model=None)
    assert base.response_metadata["adapter"] is None


def test_paper_adapter_sends_raw_text_without_special_tokens(
    backend: RecordingLocalBackend, memory: PreferenceMemory, tiny_adapter_dirs: dict[str, Path]
) -> None:
    llm = ChatFSPO.from_pretrained(
        tiny_adapter_dirs["paper"], backend=backend, memory=memory, max_tokens=4
    )
    assert llm.prompt_format.style == "paper"
    llm.invoke("Q?", user_id="bob")
    (call,) = backend.generate_calls
    prompt = backend.calls[0].prompt
    assert (
        call["input_ids"] == backend.tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    )
    assert call["active_adapter"] == "paper"
    assert _canaries(prompt.text) == {CANARY["bob"]}


def test_from_pretrained_builds_a_local_backend_from_a_kit_folder(
    tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path], memory: PreferenceMemory
) -> None:
    from langchain_fspo.backends.local import LocalBackend

    llm = ChatFSPO.from_pretrained(
        tiny_adapter_dirs["beta"],
        memory=memory,
        max_tokens=5,
        backend_kwargs={"default_max_tokens": 5},
    )
    assert isinstance(llm.backend, LocalBackend)
    assert llm.backend.base_model == str(tiny_model_dir.resolve())
    assert llm.model_name == "beta"
    message = llm.invoke("Q?", user_id="ada")
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == 5
    assert message.response_metadata["model_name"] == "beta"
    assert message.response_metadata["backend"] == "local"


def test_class_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Setup / Instantiate / Invoke / Stream / Async blocks of `ChatFSPO` run as written."""
    monkeypatch.chdir(tmp_path)
    doc = ChatFSPO.__doc__ or ""
    blocks = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", doc, re.DOTALL)]
    assert len(blocks) >= 6
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, "<ChatFSPO docstring>", "exec"), namespace)
    message = namespace["msg"]
    assert message.response_metadata["user_id"] == "ada"
    assert len(message.response_metadata["example_ids"]) == 1
    assert namespace["prompt"].shots[0].chosen.startswith("Arrival")
