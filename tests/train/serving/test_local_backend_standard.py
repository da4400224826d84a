"""LangChain's standard integration tests for `ChatFSPO` on the in-process backend.

The model is the tiny random Llama with LoRA adapters: its answers are gibberish, but every
call really runs through memory, `PromptFormat`, transformers `generate` and PEFT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from langchain_fspo.prompt_format import PromptFormat
from tests.standard_suite import FSPOIntegrationTests, NoToolsNoSchema

pytestmark = pytest.mark.train

pytest.importorskip("torch")

_SHARED: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _tiny_backend(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]) -> None:
    if "backend" not in _SHARED:
        from langchain_fspo.backends.local import LocalBackend

        _SHARED["backend"] = LocalBackend(
            tiny_model_dir,
            adapters={name: tiny_adapter_dirs[name] for name in ("alpha", "beta")},
            default_max_tokens=8,
        )
        _SHARED["format"] = PromptFormat.from_pretrained(tiny_adapter_dirs["alpha"])


class TestChatFSPOLocalStandard(NoToolsNoSchema, FSPOIntegrationTests):
    @property
    def backend_params(self) -> dict[str, Any]:
        return {"backend": _SHARED["backend"], "model": "alpha"}

    @property
    def prompt_format(self) -> PromptFormat:
        """The adapter's own contract (K=4; the two standard examples fill half)."""
        format_: PromptFormat = _SHARED["format"]
        return format_

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        params = super().standard_chat_model_params
        params["max_tokens"] = 8
        return params

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "beta"
