"""`langchain_fspo._conversation`: the messages and the user of a call, as `ChatFSPO` reads them."""

from __future__ import annotations

import doctest
import importlib

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from langchain_fspo._conversation import (
    resolve_user,
    split_messages,
    to_messages,
    with_configured_user,
)
from langchain_fspo.errors import InvalidExampleError


@pytest.mark.parametrize(
    "name",
    [
        "langchain_fspo._conversation",
        "langchain_fspo.chat_models._call",
        "langchain_fspo.chat_models._convert",
    ],
)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0


def test_user_order_is_keyword_then_config_then_default() -> None:
    config: RunnableConfig = {"configurable": {"user_id": "cfg"}}
    assert resolve_user("kw", config, "field") == "kw"
    assert resolve_user(None, config, "field") == "cfg"
    assert resolve_user(None, {}, "field") == "field"
    assert resolve_user(None, {}, None) is None


def test_the_ambient_config_is_read_when_none_is_given() -> None:
    token = var_child_runnable_config.set({"configurable": {"user_id": "ambient"}})
    try:
        assert resolve_user(None, None, "field") == "ambient"
    finally:
        var_child_runnable_config.reset(token)


def test_validate_checks_given_ids_but_not_the_default() -> None:
    config: RunnableConfig = {"configurable": {"user_id": 7}}
    assert resolve_user(None, config, None) == "7"
    with pytest.raises(InvalidExampleError, match="must be a str"):
        resolve_user(None, config, None, validate=True)
    with pytest.raises(InvalidExampleError, match="non-empty"):
        resolve_user("", None, None, validate=True)
    assert resolve_user(None, {}, "field", validate=True) == "field"


def test_with_configured_user_only_fills_a_missing_user() -> None:
    config: RunnableConfig = {"configurable": {"user_id": "cfg"}}
    assert with_configured_user(config, {"user_id": "kw", "seed": 1}) == {
        "user_id": "kw",
        "seed": 1,
    }
    assert with_configured_user(config, {"seed": 1}) == {"seed": 1, "user_id": "cfg"}
    assert with_configured_user({}, {"seed": 1}) == {"seed": 1}


def test_to_messages_reads_every_input_form() -> None:
    messages = [SystemMessage("Be brief."), HumanMessage("Hi")]
    assert to_messages(messages) is messages
    assert to_messages(ChatPromptValue(messages=messages)) == messages
    assert to_messages([("system", "Be brief."), ("human", "Hi")]) == messages
    assert to_messages("Hi") == [HumanMessage("Hi")]


def test_split_keeps_the_turns_around_the_last_human_message() -> None:
    split = split_messages(
        [
            SystemMessage("S"),
            HumanMessage("first"),
            AIMessage("answer"),
            HumanMessage("query"),
            AIMessage("after"),
        ]
    )
    assert split.query == "query"
    assert split.systems == ["S"]
    assert [m.text for m in split.before] == ["first", "answer"]
    assert [m.text for m in split.after] == ["after"]
    with pytest.raises(ValueError, match="needs a human message"):
        split_messages([SystemMessage("S")])
