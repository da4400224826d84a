"""Session fixtures shared by every test layer: a tiny model and LoRA adapters built offline.

They are built once per session into a temporary folder (a few seconds) and must be treated
as read-only. torch/transformers/peft are imported only when a test asks for them, so unit
tests that never use these fixtures stay torch-free.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_fspo.prompt_format import PromptFormat
from tests.hub_fixtures import hub_server_fixture  # noqa: F401 - the `hub_server` fixture

TINY_ADAPTER_SEEDS = {"alpha": 1, "beta": 2, "paper": 3, "rat": 4}
"""Adapters built by `tiny_adapter_dirs`; each seed gives different LoRA weights."""


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama (hidden 64) with a byte-level BPE tokenizer and chat template."""
    pytest.importorskip("torch", reason="needs the [local] extra")
    from fspo_train.testing.tiny import build_tiny_base_model

    return build_tiny_base_model(tmp_path_factory.mktemp("tiny-base") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_adapter_dirs(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """LoRA adapters over `tiny_model_dir`, each with its own `fspo_format.json`.

    - `alpha`, `beta`: `style="chat"`, K=4 (different weights: they answer differently).
    - `paper`: `style="paper"`, K=4 (raw text, no chat template).
    - `rat`: `style="chat"`, K=4, `rationale="user_description"`.
    """
    from transformers import AutoTokenizer

    from fspo_train.testing.tiny import build_tiny_adapter

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    template_sha = PromptFormat.template_sha256(tokenizer.chat_template)
    common = {
        "num_shots": 4,
        "base_model_id": str(tiny_model_dir.resolve()),
        "special_tokens": tuple(tokenizer.all_special_tokens),
    }
    formats = {
        "alpha": PromptFormat(style="chat", chat_template_sha256=template_sha, **common),
        "beta": PromptFormat(style="chat", chat_template_sha256=template_sha, **common),
        "paper": PromptFormat(style="paper", **common),
        "rat": PromptFormat(
            style="chat", rationale="user_description", chat_template_sha256=template_sha, **common
        ),
    }
    root = tmp_path_factory.mktemp("tiny-adapters")
    return {
        name: build_tiny_adapter(
            tiny_model_dir, root / name, prompt_format=formats[name], seed=TINY_ADAPTER_SEEDS[name]
        )
        for name in TINY_ADAPTER_SEEDS
    }
