"""The runnable examples in public docstrings stay true."""

from __future__ import annotations

import pytest

from tests.doctests import assert_examples_run

MODULES = [
    "langchain_fspo.preference",
    "langchain_fspo._neutralize",
    "langchain_fspo.memory",
    "langchain_fspo.prompt_format",
    "langchain_fspo.engine_limits",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    assert_examples_run(name)
