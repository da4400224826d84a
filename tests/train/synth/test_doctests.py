"""The docstring examples of `fspo_train.synth` run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "fspo_train.synth.domain",
    "fspo_train.synth.estimate",
    "fspo_train.synth.ids",
    "fspo_train.synth.models",
    "fspo_train.synth.prompts",
    "fspo_train.synth.ratelimit",
    "fspo_train.synth.schemas",
    "fspo_train.synth.stages.disagreement",
    "fspo_train.synth.store",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
