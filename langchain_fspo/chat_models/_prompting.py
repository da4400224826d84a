"""The one rendering step of a `ChatFSPO` call: the user's shots and the conversation, in a prompt.

Rules (the same for every backend):

- The query is the text of the **last** `HumanMessage`; it becomes the FSPO "# Task" block.
- `style="chat"`: every other message is kept, in order, around the FSPO user message
  (which takes the last human message's place). System messages are merged, with the
  format's own `system_prompt` first, into one leading system message (many chat templates
  accept only one, at the start). Their text is neutralised like any user text.
- `style="paper"`: the prompt is raw markdown with no place for turns, so only the last
  human message is used; system messages and earlier turns are dropped (logged at debug).
- With `PromptFormat.max_prompt_tokens`, the kept turns and system text count against the
  budget too; the oldest shots are dropped first (`PromptFormat.render`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, ToolMessage

from langchain_fspo._conversation import SplitMessages, split_messages
from langchain_fspo._neutralize import special_token_finder
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt, neutralize

__all__ = ["PromptBuilder", "ShotSource", "TokenCounter"]

logger = logging.getLogger(__name__)

TokenCounter = Callable[[str], int | None]
"""A backend's `count_tokens`: tokens in a text, or None when it cannot count."""


@runtime_checkable
class ShotSource(Protocol):
    """Where `ChatFSPO` reads a user's examples: `PreferenceMemory`, or anything alike."""

    def select(
        self, user_id: str, query: str | None = None, k: int = 8, strategy: Any = "recent"
    ) -> list[PreferenceExample]:
        """Up to `k` of the user's examples, oldest first ([] for an unknown user)."""
        ...

    async def aselect(
        self, user_id: str, query: str | None = None, k: int = 8, strategy: Any = "recent"
    ) -> list[PreferenceExample]:
        """Async `select`."""
        ...


def _chat_turn(message: BaseMessage, special_tokens: tuple[str, ...]) -> dict[str, Any]:
    """One OpenAI-style message for a kept turn, its text neutralised."""
    finder = special_token_finder(special_tokens)
    content = neutralize(str(message.text), special_tokens, finder=finder)
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": content}
    if isinstance(message, AIMessage):
        return {"role": "assistant", "content": content}
    if isinstance(message, ToolMessage):
        return {"role": "tool", "content": content, "tool_call_id": message.tool_call_id}
    if isinstance(message, ChatMessage):
        return {"role": message.role, "content": content}
    return {"role": "user", "content": content}


def _budget_counter(
    fmt: PromptFormat,
    count_tokens: TokenCounter,
    counter_name: str,
    systems: list[str],
    turns: list[dict[str, Any]],
) -> Callable[[str], int] | None:
    """A counter for the token budget that also counts the kept turns and system text."""
    if fmt.max_prompt_tokens is None:
        return None
    if count_tokens("") is None:
        logger.warning(
            "`max_prompt_tokens` is set but the %s backend cannot count tokens; the "
            "budget is not enforced.",
            counter_name,
        )
        return None
    others = [*systems, *(str(t["content"]) for t in turns)]
    fixed = sum(count_tokens(text) or 0 for text in others)

    def counter(text: str) -> int:
        return (count_tokens(text) or 0) + fixed

    return counter


def _render(
    fmt: PromptFormat,
    split: SplitMessages,
    shots: list[PreferenceExample],
    count_tokens: TokenCounter,
    counter_name: str,
) -> RenderedPrompt:
    turns: list[dict[str, Any]] = []
    systems: list[str] = []
    if fmt.style == "chat":
        finder = special_token_finder(fmt.special_tokens)
        systems = [neutralize(s, fmt.special_tokens, finder=finder) for s in split.systems]
        turns = [_chat_turn(m, fmt.special_tokens) for m in split.before]
        after = [_chat_turn(m, fmt.special_tokens) for m in split.after]
    else:
        after = []
        if split.systems or split.before or split.after:
            logger.debug(
                "style='paper' uses only the last human message; %d other message(s) "
                "were left out.",
                len(split.systems) + len(split.before) + len(split.after),
            )
    budget = _budget_counter(fmt, count_tokens, counter_name, systems, [*turns, *after])
    rendered = fmt.render(shots, split.query, count_tokens=budget)
    if fmt.style == "paper":
        return rendered
    system_texts = ([fmt.system_prompt] if fmt.system_prompt else []) + systems
    head = [{"role": "system", "content": "\n\n".join(system_texts)}] if system_texts else []
    fspo_message = {"role": "user", "content": rendered.text}
    return replace(rendered, messages=[*head, *turns, fspo_message, *after])


@dataclass(frozen=True)
class PromptBuilder:
    """Builds a call's prompt: split the messages, select the user's shots, render, budget.

    `build` and `abuild` are twins: they differ only in how the memory is read.
    """

    prompt_format: PromptFormat
    """The adapter's prompt format."""
    memory: ShotSource | None
    """Where the user's examples are read (None: zero-shot)."""
    strategy: Any
    """The memory's shot selection strategy."""
    count_tokens: TokenCounter
    """The backend's token counter (used only with `max_prompt_tokens`)."""
    backend_name: str
    """The backend's name, for the warning when it cannot count tokens."""

    def build(self, messages: list[BaseMessage], user_id: str | None) -> RenderedPrompt:
        """The prompt for `messages` and the user's shots (see the module docstring)."""
        split = split_messages(messages)
        shots: list[PreferenceExample] = []
        if self.memory is not None and user_id is not None and self.prompt_format.num_shots:
            shots = list(
                self.memory.select(
                    user_id,
                    query=split.query,
                    k=self.prompt_format.num_shots,
                    strategy=self.strategy,
                )
            )
        return _render(self.prompt_format, split, shots, self.count_tokens, self.backend_name)

    async def abuild(self, messages: list[BaseMessage], user_id: str | None) -> RenderedPrompt:
        """Async `build` (the memory is read with `aselect`)."""
        split = split_messages(messages)
        shots: list[PreferenceExample] = []
        if self.memory is not None and user_id is not None and self.prompt_format.num_shots:
            shots = list(
                await self.memory.aselect(
                    user_id,
                    query=split.query,
                    k=self.prompt_format.num_shots,
                    strategy=self.strategy,
                )
            )
        return _render(self.prompt_format, split, shots, self.count_tokens, self.backend_name)
