"""How `LocalBackend` attaches a LoRA adapter folder to its model with PEFT.

Users name adapters freely (`fspo-v1.2`, the folder's name); PEFT keeps adapters in
`torch.nn.ModuleDict`s, whose keys cannot hold a dot or shadow an attribute, so each adapter
gets a PEFT-safe internal name (`peft_name`). The folder is checked before PEFT touches the
model (`check_loadable`: the config parses as a PEFT config, the weights file is readable
safetensors), and whatever PEFT still raises becomes an `AdapterNotFoundError` naming the
folder. torch and peft are imported inside the functions only.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from langchain_fspo.artifact import ADAPTER_CONFIG_FILENAME, ADAPTER_WEIGHTS_FILENAME
from langchain_fspo.errors import AdapterNotFoundError, FSPOError

__all__ = ["attach", "check_loadable", "peft_name"]

_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def peft_name(name: str, taken: Collection[str]) -> str:
    """A PEFT-safe adapter name for `name`, unique among `taken` (`name` itself when safe).

    Example:
        >>> peft_name("alpha", []), peft_name("fspo-v1.2", []), peft_name("a.b", ["a_b"])
        ('alpha', 'fspo-v1_2', 'a_b_2')
        >>> peft_name("keys", [])  # an attribute of ModuleDict
        'adapter_keys'
    """
    import torch

    safe = name if _SAFE.fullmatch(name) else re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if hasattr(torch.nn.ModuleDict(), safe) or safe[0].isdigit():
        safe = f"adapter_{safe}"
    candidate, n = safe, 1
    while candidate in taken:
        n += 1
        candidate = f"{safe}_{n}"
    return candidate


def check_loadable(folder: Path) -> None:
    """Raise `AdapterNotFoundError` unless PEFT can read `folder`'s config and weights."""
    import peft
    from safetensors import safe_open

    config = folder / ADAPTER_CONFIG_FILENAME
    try:
        peft.PeftConfig.from_pretrained(str(folder))
    except Exception as e:
        msg = (
            f"{config} is not a PEFT adapter config PEFT can read ({type(e).__name__}: {e}). "
            "Save the adapter again with PEFT or fspo_train."
        )
        raise AdapterNotFoundError(msg) from e
    weights = folder / ADAPTER_WEIGHTS_FILENAME
    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except Exception as e:
        msg = (
            f"{weights} is not a readable safetensors file ({type(e).__name__}: {e}). "
            "Copy or save the adapter again."
        )
        raise AdapterNotFoundError(msg) from e


def attach(model: Any, folder: Path, name: str, *, first: bool) -> Any:
    """`model` with the adapter in `folder` attached as `name`; returns the (PEFT) model.

    Raises:
        AdapterNotFoundError: PEFT could not load it (another base model's adapter, say).
    """
    import peft

    try:
        if first:
            return peft.PeftModel.from_pretrained(
                model, str(folder), adapter_name=name, is_trainable=False
            )
        model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
    except FSPOError:
        raise
    except Exception as e:
        if not first and name in getattr(model, "peft_config", {}):
            model.delete_adapter(name)  # leave no half-loaded adapter behind
        msg = (
            f"PEFT could not load the adapter in {folder} ({type(e).__name__}: {e}). Check "
            "that it was trained on this base model (`base_model_name_or_path` in "
            f"{ADAPTER_CONFIG_FILENAME})."
        )
        raise AdapterNotFoundError(msg) from e
    return model
