"""Fixtures shared by the in-process serving tests.

Each test module defines its own `backend` (which adapters it loads) and, where it needs one,
`memory`; `llm` puts a `ChatFSPO` over them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat
from tests.recording import RecordingLocalBackend


@pytest.fixture
def llm(
    backend: RecordingLocalBackend, memory: PreferenceMemory, tiny_adapter_dirs: dict[str, Path]
) -> ChatFSPO:
    """`ChatFSPO` on adapter alpha (and its own prompt contract), short answers."""
    return ChatFSPO(
        backend=backend,
        prompt_format=PromptFormat.from_pretrained(tiny_adapter_dirs["alpha"]),
        model="alpha",
        memory=memory,
        max_tokens=6,
    )
