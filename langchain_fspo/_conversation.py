"""Read a LangChain call: its messages, the query among them, and whose call it is.

Pure helpers shared by `ChatFSPO` and `collect` (which must not import the chat model):

- The query is the text of the **last** `HumanMessage` (`split_messages`); what surrounds it
  is kept apart for the chat model's rendering rules (`chat_models._prompting`).
- The user of a call is its `user_id=` keyword, else `config["configurable"]["user_id"]`
  (the ambient config when none is given), else the model's default (`resolve_user`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config

from langchain_fspo.preference import validate_user_id

__all__ = [
    "SplitMessages",
    "configured_user",
    "resolve_user",
    "split_messages",
    "to_messages",
    "with_configured_user",
]


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


def to_messages(value: LanguageModelInput | Sequence[BaseMessage]) -> list[BaseMessage]:
    """The messages of a call's input: a string, messages (or their dicts/tuples), a prompt value.

    Example:
        >>> [m.type for m in to_messages("Hi")]
        ['human']
    """
    if isinstance(value, list) and all(isinstance(m, BaseMessage) for m in value):
        return value
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, str):
        return [HumanMessage(content=value)]
    return convert_to_messages(value)


def configured_user(config: RunnableConfig | None) -> Any:
    """`config["configurable"]["user_id"]` (of the ambient config when `config` is None)."""
    return (ensure_config(config).get("configurable") or {}).get("user_id")


def resolve_user(
    user_id: str | None,
    config: RunnableConfig | None,
    default: str | None,
    *,
    validate: bool = False,
) -> str | None:
    """The call's user: `user_id`, then `config["configurable"]["user_id"]`, then `default`.

    Args:
        user_id: The call's `user_id=` keyword.
        config: The call's runnable config (None: the ambient one).
        default: The model's own `user_id`.
        validate: Check the keyword or configured id with `validate_user_id` (else a
            configured id is taken as `str(...)`).

    Example:
        >>> resolve_user(None, {"configurable": {"user_id": "ada"}}, "bob")
        'ada'
        >>> resolve_user(None, {}, "bob")
        'bob'
    """
    if user_id is not None:
        return validate_user_id(user_id) if validate else user_id
    configured = configured_user(config)
    if configured is not None:
        return validate_user_id(configured) if validate else str(configured)
    return default


def with_configured_user(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with `user_id` taken from `config` when the call names no user.

    The user id in `config["configurable"]` does not reach `BaseChatModel._generate` on its
    own (LangChain passes only callbacks, tags and metadata down), so the entry points that
    receive the config turn it into the `user_id` keyword.
    """
    if kwargs.get("user_id") is not None:
        return kwargs
    configured = configured_user(config)
    return {**kwargs, "user_id": configured} if configured is not None else kwargs
