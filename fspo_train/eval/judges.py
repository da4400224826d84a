"""Pluggable user-aware judges for pairwise win rates.

A judge compares two answers to one question *for one user* and returns a score in [0, 1]:
1 when answer `a` is preferred, 0 when `b` is, 0.5 for a tie.

- `ChatModelJudge`: any LangChain chat model with an AlpacaEval-style pairwise prompt that
  shows the user's description; the outputs are labelled "m" and "M" and the model answers
  with the identifier only. Each pair is judged in both orders; a verdict that flips with the
  order (position bias) is a tie (0.5).
- `FunctionJudge`: a programmatic judge for synthetic domains, from any callable returning a
  score, a bool, or "a"/"b"/"tie".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

__all__ = [
    "JUDGE_SYSTEM_PROMPT",
    "JUDGE_USER_PROMPT",
    "ChatModelJudge",
    "FunctionJudge",
    "Judge",
    "Judgement",
    "as_judge",
    "compare_all",
    "judge_name",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judgement:
    """One pairwise comparison to judge: is `a` a better answer than `b` for this user?"""

    question: str
    user_description: str | None
    a: str
    b: str


@runtime_checkable
class Judge(Protocol):
    """Compares two answers for one user; 1.0 = `a` preferred, 0.0 = `b`, 0.5 = tie."""

    def compare(self, question: str, user_description: str | None, a: str, b: str) -> float:
        """Score answer `a` against answer `b` for the user described."""
        ...


JUDGE_SYSTEM_PROMPT = (
    "You are a careful evaluator of personalised assistants. You decide which of two outputs "
    "a specific user would prefer, judging from the user's description, not from your own "
    "taste. Longer is not better unless this user would want it."
)

JUDGE_USER_PROMPT = """\
Two models answered the same instruction for the user described below. Decide which output \
this user would prefer.

## User Description
{user_description}

## Instruction
{question}

## Output (m)
{output_m}

## Output (M)
{output_M}

Which output would this user prefer? Answer with the identifier only: m or M."""

_VERDICT = re.compile(r"^\W*(?:(?i:output|answer|identifier)\W*)?(m|M)\b")


def _parse_verdict(text: str) -> str | None:
    """'m', 'M', or None when the answer is not an identifier."""
    match = _VERDICT.match(text.strip())
    return match.group(1) if match else None


def _content_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = [
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
    ]
    return "".join(parts)


class ChatModelJudge:
    """A LangChain chat model as a user-aware pairwise judge (both orders, ties count half).

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> from langchain_core.messages import AIMessage
        >>> always_m = GenericFakeChatModel(messages=iter([AIMessage("m"), AIMessage("m")]))
        >>> ChatModelJudge(always_m).compare("Q?", "Likes puns.", "a", "b")  # position bias
        0.5
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        system_prompt: str = JUDGE_SYSTEM_PROMPT,
        user_prompt: str = JUDGE_USER_PROMPT,
        max_concurrency: int = 4,
    ) -> None:
        """Wrap `model`; the prompts must use the fields of `JUDGE_USER_PROMPT`."""
        self.model = model
        self.system_prompt = system_prompt
        self.user_prompt = user_prompt
        self.max_concurrency = max_concurrency
        self.unparsed = 0
        """How many verdicts were not "m" or "M" (each counted as undecided, 0.5)."""

    @property
    def name(self) -> str:
        """A readable name for reports."""
        model = getattr(self.model, "model_name", None) or getattr(self.model, "model", None)
        return f"{type(self.model).__name__}({model})" if model else type(self.model).__name__

    def messages(self, item: Judgement, *, swap: bool) -> list[BaseMessage]:
        """The judge prompt, with `a` as output m (or as output M when `swap`)."""
        first, second = (item.b, item.a) if swap else (item.a, item.b)
        text = self.user_prompt.format(
            user_description=item.user_description or "(no description given)",
            question=item.question,
            output_m=first,
            output_M=second,
        )
        return [SystemMessage(self.system_prompt), HumanMessage(text)]

    def _order_score(self, message: BaseMessage, *, swap: bool) -> float:
        verdict = _parse_verdict(_content_text(message))
        if verdict is None:
            self.unparsed += 1
            logger.warning("Judge answered %r, not 'm' or 'M'; counted as undecided.", message)
            return 0.5
        a_label = "M" if swap else "m"
        return 1.0 if verdict == a_label else 0.0

    def compare_many(self, items: Sequence[Judgement]) -> list[float]:
        """Judge every comparison in both orders (one batched call); scores in [0, 1]."""
        prompts = [self.messages(item, swap=swap) for item in items for swap in (False, True)]
        if not prompts:
            return []
        answers = self.model.batch(
            prompts,  # type: ignore[arg-type]
            config={"max_concurrency": self.max_concurrency},
        )
        scores = []
        for i in range(len(items)):
            forward = self._order_score(answers[2 * i], swap=False)
            backward = self._order_score(answers[2 * i + 1], swap=True)
            scores.append((forward + backward) / 2)
        return scores

    def compare(self, question: str, user_description: str | None, a: str, b: str) -> float:
        """Score `a` against `b`: 1 if preferred in both orders, 0 if `b` is, else 0.5."""
        return self.compare_many([Judgement(question, user_description, a, b)])[0]


class FunctionJudge:
    """A programmatic judge from a callable `fn(question, user_description, a, b)`.

    `fn` may return a score in [0, 1], a bool (`a` preferred?), or "a" / "b" / "tie".

    Example:
        >>> shorter = FunctionJudge(
        ...     lambda q, d, a, b: "tie" if len(a) == len(b) else len(a) < len(b)
        ... )
        >>> shorter.compare("Q?", None, "short", "much longer")
        1.0
    """

    def __init__(self, fn: Callable[[str, str | None, str, str], Any], name: str = "") -> None:
        """Wrap `fn`; `name` is shown in reports (default: the function's name)."""
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def compare(self, question: str, user_description: str | None, a: str, b: str) -> float:
        """Score `a` against `b` with the wrapped function."""
        verdict = self.fn(question, user_description, a, b)
        if isinstance(verdict, bool):
            return 1.0 if verdict else 0.0
        if isinstance(verdict, str):
            table = {"a": 1.0, "b": 0.0, "tie": 0.5}
            if verdict.lower() not in table:
                msg = f"A judge function returned {verdict!r}; expected 'a', 'b' or 'tie'."
                raise ValueError(msg)
            return table[verdict.lower()]
        score = float(verdict)
        if not 0.0 <= score <= 1.0:
            msg = f"A judge function returned {score}; scores must be in [0, 1]."
            raise ValueError(msg)
        return score


def as_judge(obj: Any) -> Judge:
    """A `Judge` from a judge, a LangChain chat model, or a callable.

    Example:
        >>> as_judge(lambda q, d, a, b: True).compare("q", None, "a", "b")
        1.0
    """
    if isinstance(obj, BaseChatModel):
        return ChatModelJudge(obj)
    if isinstance(obj, Judge):
        return obj
    if callable(obj):
        return FunctionJudge(obj)
    msg = (
        f"Cannot use {type(obj).__name__} as a judge: give a LangChain chat model, an object "
        "with `compare(question, user_description, a, b) -> float`, or such a function."
    )
    raise TypeError(msg)


def judge_name(judge: Judge) -> str:
    """A readable name of `judge` for reports."""
    return str(getattr(judge, "name", type(judge).__name__))


def compare_all(
    judge: Judge, items: Sequence[Judgement], *, chunk_size: int = 32, desc: str = "judging"
) -> list[float]:
    """Judge every comparison, in chunks with a progress bar (batched with `compare_many`)."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

    many = getattr(judge, "compare_many", None)
    scores: list[float] = []
    with tqdm(total=len(items), desc=desc, leave=False, disable=len(items) <= chunk_size) as bar:
        for start in range(0, len(items), chunk_size):
            chunk = items[start : start + chunk_size]
            if callable(many):
                scores += list(many(chunk))
            else:
                scores += [judge.compare(i.question, i.user_description, i.a, i.b) for i in chunk]
            bar.update(len(chunk))
    return scores
