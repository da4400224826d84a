"""Running a module's docstring examples as a test."""

from __future__ import annotations

import doctest
import importlib


def assert_examples_run(name: str, optionflags: int = doctest.NORMALIZE_WHITESPACE) -> None:
    """Import module `name` and run its docstring examples: at least one, none failing."""
    result = doctest.testmod(importlib.import_module(name), optionflags=optionflags)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0
