"""`ChatFSPO.compare` and `Comparison.record` without torch: the search, the order, the loop.

`SeededBackend` is a test double of the abstract `Backend` interface (the same kind as
`ScriptedBackend` in test_chat_models.py): it answers a pure function of the adapter and the
sampling seed it received, so the retry rules can be pinned exactly. The real tiny model
runs the same loop in `tests/train/serving/test_collect.py`.
"""

from __future__ import annotations

import doctest
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

import langchain_fspo.collect
from langchain_fspo.backends.base import Generation, GenerationParams
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.collect import Candidate, Comparison, swap_order
from langchain_fspo.errors import ComparisonError, InvalidExampleError
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt
from tests.unit_tests.chat_models.test_base import ScriptedBackend

CHAT = PromptFormat(style="chat", num_shots=4)

Reply = Callable[[str | None, GenerationParams], str]


def _by_seed(adapter: str | None, params: GenerationParams) -> str:
    return f"{adapter or 'base'} answer, seed {params.seed}, temperature {params.temperature}"


class SeededBackend(ScriptedBackend):
    """Test double: the answer is `reply(adapter, params)`; every call is recorded."""

    def __init__(self, reply: Reply = _by_seed, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reply_for = reply

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        self._record(prompt, adapter, params)
        return Generation(text=self.reply_for(adapter, params), finish_reason="stop")

    def sent(self) -> list[tuple[str | None, float | None, int | None]]:
        return [(adapter, params.temperature, params.seed) for _, adapter, params in self.calls]


def _llm(backend: SeededBackend, memory: PreferenceMemory | None = None, **kw: Any) -> ChatFSPO:
    return ChatFSPO(backend=backend, prompt_format=CHAT, model="alpha", memory=memory, **kw)


def _first_seed(*, swapped: bool) -> int:
    return next(s for s in range(100) if swap_order(s) is swapped)


# ---------------------------------------------------------------- the search


def test_sample_mode_draws_two_seeds_of_the_adapter_and_labels_them_in_seeded_order() -> None:
    backend = SeededBackend()
    seed = _first_seed(swapped=False)
    cmp = _llm(backend).compare("Recommend a book.", user_id="ada", seed=seed)

    assert backend.sent() == [("alpha", 1.0, seed), ("alpha", 1.0, seed + 1)]
    assert cmp.a.text == f"alpha answer, seed {seed}, temperature 1.0"
    assert cmp.b.text == f"alpha answer, seed {seed + 1}, temperature 1.0"
    assert (cmp.a.label, cmp.b.label) == ("a", "b")
    assert cmp.a.source() == {"adapter": "alpha", "temperature": 1.0, "seed": seed}
    assert cmp.prompt == "Recommend a book."
    assert cmp.user_id == "ada"
    assert cmp.attempts == 2


def test_the_order_is_a_seeded_coin_so_either_source_can_be_shown_first() -> None:
    flips = [swap_order(s) for s in range(64)]
    assert flips == [swap_order(s) for s in range(64)]
    assert 16 < sum(flips) < 48  # a fair coin, not a constant

    seed = _first_seed(swapped=True)
    backend = SeededBackend()
    cmp = _llm(backend).compare("Q?", user_id="ada", seed=seed)
    assert cmp.b.seed == seed  # the first generated answer is shown second
    assert cmp.a.seed == seed + 1
    assert cmp["a"] is cmp.a
    assert cmp["b"] is cmp.b
    with pytest.raises(KeyError, match="'c'"):
        cmp["c"]


def test_an_answer_equal_to_the_first_is_drawn_again_with_new_seeds() -> None:
    seed = _first_seed(swapped=False)

    def reply(adapter: str | None, params: GenerationParams) -> str:
        # Seeds seed and seed+1 agree (up to whitespace); seed+3 says something else.
        return {seed: "Same answer.", seed + 1: "  Same answer."}.get(
            params.seed or 0, f"Other {params.seed}."
        )

    backend = SeededBackend(reply)
    cmp = _llm(backend).compare("Q?", user_id="ada", seed=seed)

    assert [s for _, _, s in backend.sent()] == [seed, seed + 1, seed + 3]
    assert (cmp.a.text, cmp.b.text) == ("Same answer.", f"Other {seed + 3}.")
    assert cmp.attempts == 3


def test_an_empty_first_answer_is_replaced_before_the_second_is_drawn() -> None:
    seed = _first_seed(swapped=False)
    backend = SeededBackend(lambda _a, p: "   " if p.seed == seed else f"Answer {p.seed}.")
    cmp = _llm(backend).compare("Q?", user_id="ada", seed=seed)

    assert [s for _, _, s in backend.sent()] == [seed, seed + 2, seed + 3]
    assert (cmp.a.text, cmp.b.text) == (f"Answer {seed + 2}.", f"Answer {seed + 3}.")


def test_identical_answers_every_time_raise_after_max_attempts() -> None:
    backend = SeededBackend(lambda _a, _p: "Always this.")
    with pytest.raises(ComparisonError, match=r"3 attempt\(s\).*'Always this\.'.*temperature"):
        _llm(backend).compare("Q?", user_id="ada", seed=7, max_attempts=3)
    assert len(backend.calls) == 4  # the first answer, then three tries for a different one


def test_base_mode_puts_the_adapter_against_the_base_model_then_samples_both() -> None:
    seed = _first_seed(swapped=False)

    def reply(adapter: str | None, params: GenerationParams) -> str:
        return "Tie." if params.seed is None else _by_seed(adapter, params)

    backend = SeededBackend(reply)
    cmp = _llm(backend, temperature=0.7).compare("Q?", user_id="ada", seed=seed, mode="base")

    # Try 0: the model's own settings (temperature 0.7, no seed) for the adapter and the base.
    # They agree, so try 1 samples the base model with the next seed.
    assert backend.sent() == [("alpha", 0.7, None), (None, 0.7, None), (None, 0.7, seed + 3)]
    assert cmp.a.adapter == "alpha"
    assert cmp.b.adapter is None
    assert cmp.a.source() == {"adapter": "alpha", "temperature": None, "seed": None}


def test_call_keywords_reach_both_candidates_and_model_selects_the_adapter() -> None:
    backend = SeededBackend()
    _llm(backend).compare("Q?", user_id="ada", seed=1, model="beta", max_tokens=5, top_k=3)
    assert [a for a, _, _ in backend.sent()] == ["beta", "beta"]
    assert {(p.max_tokens, p.top_k) for _, _, p in backend.calls} == {(5, 3)}


def test_temperature_and_seed_default_to_the_models_then_to_sampling_at_one() -> None:
    backend = SeededBackend()
    _llm(backend, temperature=0.4, seed=11).compare("Q?", user_id="ada")
    assert backend.sent() == [("alpha", 0.4, 11), ("alpha", 0.4, 12)]

    backend = SeededBackend()
    _llm(backend).compare("Q?", user_id="ada")
    (_, t1, s1), (_, t2, s2) = backend.sent()
    assert (t1, t2) == (1.0, 1.0)
    assert s1 is not None
    assert s2 == s1 + 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "must be above 0"),
        ({"mode": "both"}, "'sample' or 'base'"),
        ({"max_attempts": 0}, "at least 1"),
    ],
)
def test_bad_settings_are_refused_before_any_call(kwargs: dict[str, Any], match: str) -> None:
    backend = SeededBackend()
    with pytest.raises(ValueError, match=match):
        _llm(backend).compare("Q?", user_id="ada", **kwargs)
    assert backend.calls == []


def test_base_mode_needs_an_adapter() -> None:
    llm = ChatFSPO(backend=SeededBackend(), prompt_format=CHAT)
    with pytest.raises(ValueError, match="no adapter is set"):
        llm.compare("Q?", user_id="ada", mode="base")


def test_the_prompt_is_the_last_human_message_of_a_conversation() -> None:
    backend = SeededBackend()
    messages = [SystemMessage("Be brief."), HumanMessage("First?"), HumanMessage("Second?")]
    cmp = _llm(backend).compare(messages, user_id="ada", seed=0)
    assert cmp.prompt == "Second?"
    sent = backend.calls[0][0].messages
    assert sent[0] == {"role": "system", "content": "Be brief."}


# ---------------------------------------------------------------- users


def test_the_user_comes_from_the_call_then_the_config_then_the_model() -> None:
    memory = PreferenceMemory()
    memory.add("ada", prompt="Ada's?", chosen="ADA-SHOT", rejected="ADA-NOT")
    memory.add("bob", prompt="Bob's?", chosen="BOB-SHOT", rejected="BOB-NOT")
    backend = SeededBackend()
    llm = _llm(backend, memory, user_id="bob")

    assert llm.compare("Q?", seed=0).user_id == "bob"
    config = {"configurable": {"user_id": "ada"}}
    cmp = llm.compare("Q?", config, seed=0)
    assert cmp.user_id == "ada"
    assert all("ADA-SHOT" in p.text and "BOB" not in p.text for p, _, _ in backend.calls[2:])
    assert cmp.a.example_ids == cmp.b.example_ids == [e.id for e in memory.list("ada")]


def test_a_comparison_without_a_user_records_only_with_an_explicit_user() -> None:
    memory = PreferenceMemory()
    cmp = _llm(SeededBackend()).compare("Q?", seed=0)
    assert cmp.user_id is None
    with pytest.raises(InvalidExampleError, match="without a user"):
        cmp.record(memory, "a")
    cmp.record(memory, "a", user_id="cy")
    assert memory.list("cy")[0].chosen == cmp.a.text


# ---------------------------------------------------------------- the loop


def test_compare_record_a_then_the_next_prompt_prefers_it(memory, users) -> None:
    ada, bob = users("ada"), users("bob")
    backend = SeededBackend()
    llm = _llm(backend, memory)
    cmp = llm.compare("Recommend a film.", user_id=ada, seed=3)

    record = cmp.record(memory, "a", ui="test")

    assert record.choice == "a"
    assert record.metadata == {
        "comparison": {"a": cmp.a.source(), "b": cmp.b.source()},
        "ui": "test",
    }
    text = llm.build_prompt("Recommend a book.", user_id=ada).text
    block = (
        f"## Question \nRecommend a film.\n## Preferred Response \n{cmp.a.text}\n"
        f"## Dispreferred Response \n{cmp.b.text}\n"
    )
    assert block in text
    assert cmp.a.text not in llm.build_prompt("Recommend a book.", user_id=bob).text


def test_record_b_prefers_b(memory, users) -> None:
    ada = users("ada")
    llm = _llm(SeededBackend(), memory)
    cmp = llm.compare("Q?", user_id=ada, seed=3)
    cmp.record(memory, "b")
    (example,) = memory.list(ada)
    assert (example.prompt, example.chosen, example.rejected) == ("Q?", cmp.b.text, cmp.a.text)


@pytest.mark.parametrize("choice", ["tie", "neither"])
def test_ties_and_neither_are_kept_but_never_shown(memory, users, choice) -> None:
    ada = users("ada")
    llm = _llm(SeededBackend(), memory)
    cmp = llm.compare("Recommend a film.", user_id=ada, seed=3)

    cmp.record(memory, choice)

    assert [c.choice for c in memory.list_choices(ada)] == [choice]
    assert memory.list(ada) == []
    prompt = llm.build_prompt("Recommend a book.", user_id=ada)
    assert prompt.shots == []
    assert cmp.a.text not in prompt.text
    assert cmp.b.text not in prompt.text


def test_an_unknown_choice_is_refused_and_nothing_is_written() -> None:
    memory = PreferenceMemory()
    cmp = _llm(SeededBackend()).compare("Q?", user_id="ada", seed=0)
    with pytest.raises(InvalidExampleError, match="'c'"):
        cmp.record(memory, "c")
    assert memory.list_choices("ada") == []


async def test_acompare_and_arecord_run_the_same_loop() -> None:
    memory = PreferenceMemory()
    seed = _first_seed(swapped=True)
    backend = SeededBackend(lambda _a, p: "Same." if p.seed in {seed, seed + 1} else f"A {p.seed}.")
    llm = _llm(backend, memory)

    cmp = await llm.acompare("Q?", user_id="ada", seed=seed)

    assert [s for _, _, s in backend.sent()] == [seed, seed + 1, seed + 3]
    assert (cmp.a.text, cmp.b.text) == (f"A {seed + 3}.", "Same.")  # shown in swapped order
    await cmp.arecord(memory, "b")
    (example,) = await memory.alist("ada")
    assert (example.chosen, example.rejected) == ("Same.", f"A {seed + 3}.")


async def test_acompare_raises_like_compare() -> None:
    backend = SeededBackend(lambda _a, _p: "Always.")
    with pytest.raises(ComparisonError):
        await _llm(backend).acompare("Q?", user_id="ada", max_attempts=2)
    assert len(backend.calls) == 3


def test_a_hand_made_comparison_records_too() -> None:
    memory = PreferenceMemory()
    cmp = Comparison(
        prompt="Tea?",
        user_id="ada",
        a=Candidate(label="a", text="Yes."),
        b=Candidate(label="b", text="No."),
    )
    cmp.record(memory, "a")
    assert memory.list("ada")[0].rejected == "No."


def test_module_docstring_examples_run() -> None:
    result = doctest.testmod(langchain_fspo.collect, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
