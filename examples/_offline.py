"""Shared by the examples: tiny FSPO adapters built offline, so every example runs anywhere.

The tiny model has random weights: its answers are gibberish, but every step around it (the
memory, the prompt, the adapter per call, the agent, the recorded choices) is the real code.
Pass `--adapter <folder or Hub repo>` to an example to run a real FSPO adapter instead.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

__all__ = ["quiet", "tiny_adapter"]


def quiet() -> None:
    """Silence progress bars and library warnings (call before importing transformers)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def tiny_adapter(workdir: str | Path | None, name: str = "tiny-adapter", seed: int = 1) -> Path:
    """A tiny random FSPO adapter (and its base model) in `workdir`, built once and reused.

    Args:
        workdir: Folder to build in (reused by later runs); None: a new temporary folder.
        name: The adapter's folder name (also its name in calls).
        seed: Seed of the LoRA weights (two seeds: two adapters that answer differently).
    """
    from fspo_train.testing import build_tiny_adapter, build_tiny_base_model

    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="fspo-example-"))
    base = root / "tiny-base"
    if not (base / "model.safetensors").is_file():
        print(f"Building a tiny random model offline in {base} ...", flush=True)
        build_tiny_base_model(base)
    adapter = root / name
    if not (adapter / "fspo_format.json").is_file():
        build_tiny_adapter(base, adapter, seed=seed)
    return adapter
