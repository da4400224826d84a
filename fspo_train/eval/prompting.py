"""Token ids of what a method reads and is scored on, through its `PromptFormat`, as in training.

Prompts are rendered by `PromptFormat.render` only and tokenized by `fspo_train.data.tokenization`,
exactly as the trainer tokenized its episodes (the chat template applied to the whole
conversation). With the format's `max_prompt_tokens` the oldest shots are dropped until the
prompt and the answer fit.

Prompt modes (`fspo_train.eval.methods.PromptMode`): `few_shot` renders the user's shots and
the question (under RAT the answer starts with the user description); `zero_shot` the question
alone; `oracle` the question and the true user description; `oracle_answer` the question, with
the true description teacher-forced at the start of the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fspo_train.data.tokenization import completion_token_ids, prompt_token_ids, token_counter
from fspo_train.eval.items import EvalItem, Query
from fspo_train.eval.methods import PromptMode
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt

__all__ = ["Prompter", "generation_prompts", "tokenize_items"]


def _true_description(item: Query, mode: PromptMode) -> str:
    """The item's true user description, which `oracle` prompts and RAT answers need."""
    description = item.user_description
    who = getattr(item, "user_id", "a user")
    if mode == "oracle" and not description:
        msg = f"User {who!r} has no user_description; the oracle baseline needs one."
        raise ValueError(msg)
    if description is None:
        msg = f"rationale='user_description' needs a user_description; {who!r} has none."
        raise ValueError(msg)
    return description


class Prompter:
    """Prompt and completion token ids for one model's `PromptFormat`, as training made them.

    Example:
        ```python
        prompter = Prompter(PromptFormat.from_pretrained("out/run"), tokenizer)
        prompt, completion = prompter.pair(shots, "Review 'Heat'.", "Tense!", None)
        ```
    """

    def __init__(self, fmt: PromptFormat, tokenizer: Any) -> None:
        """Token ids for `fmt`, by `tokenizer` (the base model's)."""
        self.fmt = fmt
        self.tokenizer = tokenizer
        self.count_tokens = token_counter(fmt, tokenizer) if fmt.max_prompt_tokens else None

    @property
    def writes_description(self) -> bool:
        """Whether the format is RAT: the model writes the user description, then answers."""
        return self.fmt.rationale == "user_description"

    def prompt(
        self,
        shots: Sequence[PreferenceExample],
        question: str,
        *,
        user_description: str | None = None,
        reserve_tokens: int = 0,
    ) -> list[int]:
        """Prompt token ids (generation prompt included); `user_description` goes in the prompt."""
        return prompt_token_ids(
            self.fmt,
            self.tokenizer,
            self._render(shots, question, user_description, reserve_tokens),
        )

    def pair(
        self,
        shots: Sequence[PreferenceExample],
        question: str,
        response: str,
        description: str | None,
        *,
        user_description: str | None = None,
        reserve_tokens: int = 0,
    ) -> tuple[list[int], list[int]]:
        """(prompt ids, completion ids) of `response`, as training tokenizes them.

        Under RAT the completion starts with `description` (the true one, teacher-forced), as
        in training; it is the same for the chosen and the rejected response, so it cancels in
        the margin. `user_description` goes in the prompt (the `oracle` mode).
        """
        rendered = self._render(shots, question, user_description, reserve_tokens)
        prompt = prompt_token_ids(self.fmt, self.tokenizer, rendered)
        text = self.fmt.completion(response, user_description=description)
        return prompt, completion_token_ids(self.fmt, self.tokenizer, rendered, text, prompt)

    def prefix(self, description: str | None) -> str:
        """The start of the answer when the description is given (teacher forcing)."""
        if description is None:
            return ""
        marker = "\x00"
        content = self.fmt.completion(marker, user_description=description)
        return content[: content.index(marker)]

    def prefixed_prompt(
        self,
        shots: Sequence[PreferenceExample],
        question: str,
        description: str,
        *,
        reserve_tokens: int = 0,
    ) -> list[int]:
        """Prompt ids followed by the answer's start: the true description, then the header."""
        ids = self.tokenizer(self.prefix(description), add_special_tokens=False)["input_ids"]
        prompt = self.prompt(shots, question, reserve_tokens=reserve_tokens)
        return prompt + [int(i) for i in ids]

    def item_ids(self, item: EvalItem, mode: PromptMode) -> tuple[list[int], list[int], list[int]]:
        """Prompt, chosen-completion and rejected-completion ids of `item` in `mode`.

        Over the token budget the oldest shots go, keeping room for the longer completion.
        """
        description = None
        if mode == "oracle_answer" or (mode == "few_shot" and self.writes_description):
            description = _true_description(item, mode)
        reserve = 0
        if self.count_tokens is not None:
            texts = [
                self.fmt.completion(r, user_description=description)
                for r in (item.chosen, item.rejected)
            ]
            reserve = 1 + max(
                len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts
            )
        shots = item.shots if mode == "few_shot" else ()
        in_prompt = _true_description(item, mode) if mode == "oracle" else None
        kwargs: dict[str, Any] = {"user_description": in_prompt, "reserve_tokens": reserve}
        prompt, chosen = self.pair(shots, item.question, item.chosen, description, **kwargs)
        _, rejected = self.pair(shots, item.question, item.rejected, description, **kwargs)
        return prompt, chosen, rejected

    def generation_ids(self, query: Query, mode: PromptMode, *, budget: int) -> list[int]:
        """Prompt ids to generate from (with the teacher-forced answer start, `oracle_answer`)."""
        if mode == "oracle_answer":
            return self.prefixed_prompt(
                (), query.question, _true_description(query, mode), reserve_tokens=budget
            )
        shots = query.shots if mode == "few_shot" else ()
        in_prompt = _true_description(query, mode) if mode == "oracle" else None
        return self.prompt(shots, query.question, user_description=in_prompt, reserve_tokens=budget)

    def _render(
        self,
        shots: Sequence[PreferenceExample],
        question: str,
        user_description: str | None,
        reserve_tokens: int,
    ) -> RenderedPrompt:
        return self.fmt.render(
            list(shots),
            question,
            user_description=user_description,
            count_tokens=self.count_tokens,
            reserve_tokens=reserve_tokens,
        )


def tokenize_items(
    fmt: PromptFormat, tokenizer: Any, items: Sequence[EvalItem], mode: PromptMode
) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Prompt, chosen-completion and rejected-completion token ids of each item.

    Tokenized exactly as training does; under RAT the few-shot completions start with the
    user's description, as in training (it cancels in the margin). Over the format's token
    budget the oldest shots are dropped, keeping room for the answer.
    """
    prompter = Prompter(fmt, tokenizer)
    ids = [prompter.item_ids(item, mode) for item in items]
    return [p for p, _, _ in ids], [c for _, c, _ in ids], [r for _, _, r in ids]


def generation_prompts(
    fmt: PromptFormat,
    tokenizer: Any,
    items: Sequence[Query],
    mode: PromptMode,
    *,
    max_new_tokens: int = 0,
) -> list[list[int]]:
    """Prompt token ids to generate from, within the format's budget (if any)."""
    prompter = Prompter(fmt, tokenizer)
    return [prompter.generation_ids(item, mode, budget=max_new_tokens) for item in items]
