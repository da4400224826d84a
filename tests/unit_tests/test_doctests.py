"""The runnable examples in public docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "langchain_fspo.preference",
    "langchain_fspo._neutralize",
    "langchain_fspo.memory",
    "langchain_fspo.prompt_format",
    "langchain_fspo.engine_limits",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0
    assert result.failed == 0
