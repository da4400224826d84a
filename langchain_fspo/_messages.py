"""Turn LangChain messages into the FSPO query and the surrounding chat turns.

Rules (the same for every backend):

- The query is the text of the **last** `HumanMessage`; it becomes the FSPO "# Task" block.
- `style="chat"`: every other message is kept, in order, around the FSPO user message
  (which takes the last human message's place). System messages are merged, with the
  format's own `system_prompt` first, into one leading system message (many chat templates
  accept only one, at the start). Their text is neutralised like any user text.
- `style="paper"`: the prompt is raw markdown with no place for turns, so only the last
  human message is used; system messages and earlier turns are dropped (logged at debug).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_fspo.prompt_format import neutralize

__all__ = ["SplitMessages", "split_messages", "to_chat_turn"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitMessages:
    """A conversation split around its last human message."""

    query: str
    """Text of the last human message."""
    systems: list[str] = field(default_factory=list)
    """Texts of the system messages, in order."""
    before: list[BaseMessage] = field(default_factory=list)
    """Non-system messages before the last human message."""
    after: list[BaseMessage] = field(default_factory=list)
    """Non-system messages after it (tool results in an agent loop)."""


def _text(message: BaseMessage) -> str:
    return str(message.text)


def split_messages(messages: list[BaseMessage]) -> SplitMessages:
    """Split `messages` around the last `HumanMessage`.

    Raises:
        ValueError: There is no human message (nothing to answer).
    """
    last = next(
        (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)),
        None,
    )
    if last is None:
        roles = [m.type for m in messages]
        msg = (
            f"ChatFSPO needs a human message to answer; got messages of types {roles}. "
            "Pass a string or end the conversation with a HumanMessage."
        )
        raise ValueError(msg)
    systems = [_text(m) for m in messages if isinstance(m, SystemMessage)]
    before = [m for m in messages[:last] if not isinstance(m, SystemMessage)]
    after = [m for m in messages[last + 1 :] if not isinstance(m, SystemMessage)]
    return SplitMessages(query=_text(messages[last]), systems=systems, before=before, after=after)


def to_chat_turn(message: BaseMessage, special_tokens: tuple[str, ...]) -> dict[str, Any]:
    """One OpenAI-style message for a kept turn, its text neutralised."""
    content = neutralize(_text(message), special_tokens)
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": content}
    if isinstance(message, AIMessage):
        return {"role": "assistant", "content": content}
    if isinstance(message, ToolMessage):
        return {"role": "tool", "content": content, "tool_call_id": message.tool_call_id}
    if isinstance(message, ChatMessage):
        return {"role": message.role, "content": content}
    return {"role": "user", "content": content}
