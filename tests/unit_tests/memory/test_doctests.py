"""The runnable examples in the memory and selection docstrings are correct."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "langchain_fspo.memory",
    "langchain_fspo.memory._layout",
    "langchain_fspo.memory._memory",
    "langchain_fspo.memory._records",
    "langchain_fspo.memory._vector_search",
    "langchain_fspo.selection",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
