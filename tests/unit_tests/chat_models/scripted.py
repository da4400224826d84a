"""What the `ChatFSPO` unit tests share: prompt formats and a model over a scripted backend."""

from __future__ import annotations

from typing import Any

from langchain_fspo.backends.base import Backend
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.prompt_format import PromptFormat
from tests.recording import ScriptedBackend

CHAT = PromptFormat(style="chat", num_shots=2, system_prompt="Be kind.")
PAPER = PromptFormat(style="paper", num_shots=2)
RAT = PromptFormat(style="chat", num_shots=2, rationale="user_description")


def scripted_model(backend: Backend | None = None, **kwargs: Any) -> ChatFSPO:
    """`ChatFSPO` on adapter "alpha" with the `CHAT` format over `backend` (default: scripted)."""
    defaults: dict[str, Any] = {
        "backend": backend or ScriptedBackend(),
        "prompt_format": CHAT,
        "model": "alpha",
    }
    return ChatFSPO(**{**defaults, **kwargs})
