"""Judges and metrics of `fspo eval` (no torch): both-order logic, ties, aggregation.

The LLM judge runs on a real `BaseChatModel` subclass that answers by rule from the prompt it
is given (`RuleChatModel`), so the prompt, the two orders and the parsing are all exercised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from fspo_train.eval.judges import ChatModelJudge, FunctionJudge, Judgement, as_judge, compare_all
from fspo_train.eval.metrics import PairLogProbs, implicit_reward_accuracy, win_rate

_BLOCKS = re.compile(
    r"## User Description\n(?P<user>.*?)\n\n## Instruction\n(?P<q>.*?)\n\n"
    r"## Output \(m\)\n(?P<m>.*?)\n\n## Output \(M\)\n(?P<M>.*?)\n\nWhich",
    re.DOTALL,
)


class RuleChatModel(BaseChatModel):
    """A chat model that reads the judge prompt and answers with `rule(user, m, M)`."""

    rule: Callable[[str, str, str], str]
    prompts: list[str] = []  # noqa: RUF012 - a per-instance record (pydantic copies it)

    @property
    def _llm_type(self) -> str:
        return "rule-judge"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = str(messages[-1].content)
        self.prompts.append(text)
        match = _BLOCKS.search(text)
        assert match, f"unexpected judge prompt: {text!r}"
        answer = self.rule(match["user"], match["m"], match["M"])
        return ChatResult(generations=[ChatGeneration(message=AIMessage(answer))])


def prefers_polite(user: str, m: str, big_m: str) -> str:
    """Consistent: the output that says 'please' wins, whatever its position."""
    return "m" if "please" in m else "M"


def by_description(user: str, m: str, big_m: str) -> str:
    """Consistent and user-aware: short answers for users who like them, else long ones."""
    shorter_first = len(m) <= len(big_m)
    wants_short = "short" in user
    return "m" if shorter_first == wants_short else "M"


def test_consistent_verdict_is_a_win_or_a_loss() -> None:
    judge = ChatModelJudge(RuleChatModel(rule=prefers_polite))
    assert judge.compare("Open the door?", "Polite user.", "please open it", "open it") == 1.0
    assert judge.compare("Open the door?", "Polite user.", "open it", "please open it") == 0.0


def test_both_orders_are_asked() -> None:
    model = RuleChatModel(rule=prefers_polite)
    ChatModelJudge(model).compare("Q?", "User.", "please A", "B")
    assert len(model.prompts) == 2
    first, second = (_BLOCKS.search(p) for p in model.prompts)
    assert first
    assert second
    assert (first["m"], first["M"]) == ("please A", "B")
    assert (second["m"], second["M"]) == ("B", "please A")


@pytest.mark.parametrize("answer", ["m", "M"])
def test_position_bias_is_a_tie(answer: str) -> None:
    judge = ChatModelJudge(RuleChatModel(rule=lambda u, m, big_m: answer))
    items = [Judgement(f"Q{i}?", "User.", f"a{i}", f"b{i}") for i in range(5)]
    scores = compare_all(judge, items)
    assert scores == [0.5] * 5
    result = win_rate(scores)
    assert (result.win_rate, result.ties, result.wins, result.losses) == (0.5, 5, 0, 0)


def test_user_description_decides() -> None:
    judge = ChatModelJudge(RuleChatModel(rule=by_description))
    short, long = "Yes.", "Yes, and here is a long explanation of why."
    assert judge.compare("Q?", "Likes short answers.", short, long) == 1.0
    assert judge.compare("Q?", "Likes detailed answers.", short, long) == 0.0


@pytest.mark.parametrize("template", ["**{}**", "{}.", "`{}`", " {} \n", "Output ({})"])
@pytest.mark.parametrize(("winner", "expected"), [("A", 1.0), ("B", 0.0)])
def test_decorated_identifiers_parse(template: str, winner: str, expected: float) -> None:
    def rule(user: str, m: str, big_m: str) -> str:
        return template.format("m" if m == winner else "M")

    judge = ChatModelJudge(RuleChatModel(rule=rule))
    assert judge.compare("Q?", None, "A", "B") == expected
    assert judge.unparsed == 0


def test_unparseable_verdict_counts_as_undecided() -> None:
    judge = ChatModelJudge(RuleChatModel(rule=lambda u, m, big_m: "Both are fine, honestly."))
    assert judge.compare("Q?", "User.", "a", "b") == 0.5
    assert judge.unparsed == 2


def test_missing_description_is_said_in_the_prompt() -> None:
    model = RuleChatModel(rule=prefers_polite)
    ChatModelJudge(model).compare("Q?", None, "please a", "b")
    assert "(no description given)" in model.prompts[0]


def test_function_judge_accepts_scores_bools_and_labels() -> None:
    assert FunctionJudge(lambda q, d, a, b: 0.25).compare("q", None, "a", "b") == 0.25
    assert FunctionJudge(lambda q, d, a, b: False).compare("q", None, "a", "b") == 0.0
    assert FunctionJudge(lambda q, d, a, b: "tie").compare("q", None, "a", "b") == 0.5
    assert FunctionJudge(lambda q, d, a, b: "B").compare("q", None, "a", "b") == 0.0
    with pytest.raises(ValueError, match="'maybe'"):
        FunctionJudge(lambda q, d, a, b: "maybe").compare("q", None, "a", "b")
    with pytest.raises(ValueError, match=r"1\.5"):
        FunctionJudge(lambda q, d, a, b: 1.5).compare("q", None, "a", "b")


def test_as_judge() -> None:
    assert isinstance(as_judge(RuleChatModel(rule=prefers_polite)), ChatModelJudge)
    fj = FunctionJudge(lambda q, d, a, b: True)
    assert as_judge(fj) is fj
    assert as_judge(lambda q, d, a, b: True).compare("q", None, "a", "b") == 1.0
    with pytest.raises(TypeError, match="compare"):
        as_judge(42)


def test_win_rate_aggregation() -> None:
    result = win_rate([1.0, 1.0, 0.5, 0.0, 0.75])
    assert result.wins == 2
    assert result.losses == 1
    assert result.ties == 2
    assert result.n == 5
    assert result.win_rate == pytest.approx(3.25 / 5)
    with pytest.raises(ValueError, match="No comparisons"):
        win_rate([])
    with pytest.raises(ValueError, match=r"-0\.1"):
        win_rate([-0.1])


def test_accuracy_tie_rule_and_margins() -> None:
    same = [PairLogProbs(-2.0, -3.0, -2.0, -3.0)] * 4  # policy == reference
    result = implicit_reward_accuracy(same, beta=0.1)
    assert result.accuracy == 0.5
    assert result.ties == 4
    assert result.margin == 0.0

    pairs = [
        PairLogProbs(-1.0, -4.0, -2.0, -2.0),  # chosen up, rejected down: right
        PairLogProbs(-4.0, -1.0, -2.0, -2.0),  # wrong
        PairLogProbs(-1.0, -1.5, -3.0, -3.0),  # both up, chosen more: right
    ]
    result = implicit_reward_accuracy(pairs, beta=0.5)
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.ties == 0
    assert result.chosen_reward == pytest.approx(0.5 * ((1.0) + (-2.0) + (2.0)) / 3)
    assert result.margin == pytest.approx(0.5 * (3.0 - 3.0 + 0.5) / 3)
    with pytest.raises(ValueError, match="beta"):
        implicit_reward_accuracy(pairs, beta=0)


@pytest.mark.parametrize(
    "name",
    [
        "fspo_train.eval.items",
        "fspo_train.eval.judges",
        "fspo_train.eval.metrics",
        "fspo_train.publish.model_card",
        "fspo_train.eval.plots",
        "fspo_train.publish.hub",
    ],
)
def test_docstring_examples_run(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_compare_all_chunks_keep_the_order() -> None:
    model = RuleChatModel(rule=prefers_polite)
    judge = ChatModelJudge(model)
    items = [
        Judgement(f"Q{i}?", "User.", *(("please a", "b") if i % 3 else ("a", "please b")))
        for i in range(7)
    ]
    scores = compare_all(judge, items, chunk_size=3)
    assert scores == [0.0 if i % 3 == 0 else 1.0 for i in range(7)]
    assert len(model.prompts) == 14
