"""The runnable examples in the benchmark's pure-Python modules stay true (no torch)."""

from __future__ import annotations

import pytest

from tests.doctests import assert_examples_run

MODULES = [
    "fspo_train.eval.intervals",
    "fspo_train.reviews_mini.report",
    "fspo_train.reviews_mini.seeds",
    "fspo_train.reviews_mini.selection",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    assert_examples_run(name)
