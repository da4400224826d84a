"""The memory fixture of the `ChatFSPO` unit tests."""

from __future__ import annotations

import pytest

from langchain_fspo.memory import PreferenceMemory


@pytest.fixture
def memory() -> PreferenceMemory:
    """Three examples of "ada" and one of "bob" (their texts name them: `ADA-CHOSEN-0`, ...)."""
    memory = PreferenceMemory()
    for i in range(3):
        memory.add(
            "ada", prompt=f"Ada question {i}?", chosen=f"ADA-CHOSEN-{i}", rejected=f"ADA-REJ-{i}"
        )
    memory.add("bob", prompt="Bob question?", chosen="BOB-CHOSEN", rejected="BOB-REJ")
    return memory
