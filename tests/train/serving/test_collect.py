"""`ChatFSPO.compare` on the real in-process model (tiny Llama + LoRA): the collection loop.

compare → the user picks → `record` → the next prompt for that user carries the choice as a
preferred/dispreferred pair; a tie never does. `RecordingLocalBackend` (the real
`LocalBackend`, recording) shows what each candidate was generated with.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import ComparisonError
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import neutralize
from tests.recording import RecordingLocalBackend

pytestmark = pytest.mark.train

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]) -> RecordingLocalBackend:
    return RecordingLocalBackend(
        tiny_model_dir, adapters={"alpha": tiny_adapter_dirs["alpha"]}, default_max_tokens=6
    )


@pytest.fixture(autouse=True)
def _fresh_records(backend: RecordingLocalBackend) -> None:
    backend.reset()


@pytest.fixture
def memory(tmp_path: Path) -> PreferenceMemory:
    with PreferenceMemory.sqlite(tmp_path / "prefs.db") as memory:
        memory.add("ada", prompt="Tea or coffee?", chosen="ADA-TEA", rejected="ADA-COFFEE")
        yield memory


def test_compare_record_then_the_next_prompt_carries_the_choice(
    llm: ChatFSPO, backend: RecordingLocalBackend, memory: PreferenceMemory
) -> None:
    cmp = llm.compare("Recommend a film.", user_id="ada", seed=11)

    assert cmp.a.text.strip()
    assert cmp.b.text.strip()
    assert cmp.a.text.strip() != cmp.b.text.strip()
    assert cmp.attempts == len(backend.calls) >= 2
    assert {c.seed for c in (cmp.a, cmp.b)} <= {11 + i for i in range(len(backend.calls) + 1)}
    # Both candidates were personalised: the user's example was in both prompts.
    assert [c.prompt.example_ids for c in backend.calls] == [
        [e.id for e in memory.list("ada")]
    ] * len(backend.calls)
    assert all(c.adapter == "alpha" for c in backend.calls)

    cmp.record(memory, "b")
    prompt = llm.build_prompt("Recommend a book.", user_id="ada")
    newest = prompt.shots[-1]
    assert (newest.prompt, newest.chosen, newest.rejected) == (
        "Recommend a film.",
        cmp.b.text,
        cmp.a.text,
    )
    text = prompt.messages[-1]["content"]
    special = llm.prompt_format.special_tokens
    chosen = text.index(f"## Preferred Response \n{neutralize(cmp.b.text, special)}\n")
    rejected = text.index(f"## Dispreferred Response \n{neutralize(cmp.a.text, special)}\n")
    assert text.index("## Question \nRecommend a film.") < chosen < rejected
    assert len(prompt.shots) == 2


def test_the_same_seed_gives_the_same_comparison(llm: ChatFSPO) -> None:
    first = llm.compare("Recommend a film.", user_id="ada", seed=5)
    again = llm.compare("Recommend a film.", user_id="ada", seed=5)
    assert (first.a, first.b) == (again.a, again.b)


def test_a_tie_is_kept_but_never_shown(llm: ChatFSPO, memory: PreferenceMemory) -> None:
    cmp = llm.compare("Recommend a film.", user_id="ada", seed=3)
    cmp.record(memory, "tie")
    assert [c.choice for c in memory.list_choices("ada")] == ["tie"]
    text = llm.build_prompt("Recommend a book.", user_id="ada").messages[-1]["content"]
    assert "Recommend a film." not in text
    assert "ADA-TEA" in text


def test_base_mode_runs_the_adapter_then_the_base_model(
    llm: ChatFSPO, backend: RecordingLocalBackend
) -> None:
    cmp = llm.compare("Recommend a film.", user_id="ada", seed=2, mode="base")
    adapters = [c.adapter for c in backend.calls]
    assert adapters[:2] == ["alpha", None]
    assert {cmp.a.adapter, cmp.b.adapter} == {"alpha", None}


def test_near_greedy_sampling_cannot_produce_two_answers(
    llm: ChatFSPO, backend: RecordingLocalBackend
) -> None:
    with pytest.raises(ComparisonError, match="no two different"):
        llm.compare("Recommend a film.", user_id="ada", temperature=1e-4, seed=0, max_attempts=2)
    assert len(backend.calls) == 3
    assert len({tuple(g["input_ids"]) for g in backend.generate_calls}) == 1


def test_acompare_on_the_real_model(llm: ChatFSPO, memory: PreferenceMemory) -> None:
    cmp = asyncio.run(llm.acompare("Recommend a film.", user_id="ada", seed=11))
    assert cmp.a.text.strip() != cmp.b.text.strip()
    asyncio.run(cmp.arecord(memory, "a"))
    assert memory.list("ada")[-1].chosen == cmp.a.text
