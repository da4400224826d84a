"""Which serving engines take a LoRA adapter as it is, read from its `adapter_config.json`.

`adapter_problems(folder_or_repo)` reads the file through `langchain_fspo.artifact`;
`engine_problems(config)` judges a config already read (or the one `fspo train` is about to
write).

The rules come from the engines' sources:

- vLLM 0.32 (`vllm/lora/peft_helper.py`, `vllm/config/lora.py`) refuses, at load time, a rank
  above `--max-lora-rank` (itself one of `VLLM_MAX_LORA_RANKS`), `modules_to_save` other than
  a classifier head, DoRA, LoRA bias (`bias` other than "none", `lora_bias`) and
  initialisations that change the base weights (PiSSA, OLoRA, CorDA, LoftQ). It accepts LoRA on
  `embed_tokens` / `lm_head` for models that declare them (Llama does).
- TGI 3.3 (`server/text_generation_server/models/__init__.py`) applies LoRA to the layers in
  `TGI_LORA_MODULES` only and drops every other adapter weight (embeddings, `lm_head`,
  `modules_to_save`) with a log warning: it serves the adapter without them.
- SGLang infers `--max-lora-rank` and `--lora-target-modules` from the adapters given at
  launch; an adapter loaded later must fit both (no refusal to predict from the file alone).

Example:
    >>> problems = engine_problems({"r": 32, "target_modules": ["q_proj", "lm_head"]})
    >>> [(p.engine, p.verdict) for p in problems]
    [('TGI', 'drops')]
    >>> vllm_max_lora_rank({"r": 32})
    32
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_fspo.artifact import read_adapter_config

__all__ = [
    "TGI_LORA_MODULES",
    "VLLM_MAX_LORA_RANKS",
    "EngineProblem",
    "adapter_problems",
    "adapter_rank",
    "describe_problems",
    "engine_problems",
    "vllm_max_lora_rank",
]

VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM's `--max-lora-rank` accepts."""
VLLM_DEFAULT_MAX_LORA_RANK = 16
TGI_LORA_MODULES = frozenset(
    {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    | {"qkv_proj", "c_fc", "c_proj"}
)
"""Layers TGI applies LoRA to (the last three exist in some architectures only)."""
_VLLM_STRING_INITS = {"gaussian", "eva", "orthogonal", "mica", "lora_ga"}
"""String `init_lora_weights` vLLM loads (booleans always load)."""


@dataclass(frozen=True)
class EngineProblem:
    """One reason an engine does not serve an adapter as trained."""

    engine: str
    """`vLLM` or `TGI`."""
    verdict: Literal["refuses", "drops"]
    """`refuses`: loading fails; `drops`: it loads, without part of the adapter."""
    reason: str


def adapter_rank(config: Mapping[str, Any]) -> int:
    """The largest LoRA rank in the adapter (`r`, or a larger `rank_pattern` entry)."""
    ranks = [int(config.get("r") or 0)]
    pattern = config.get("rank_pattern") or {}
    ranks.extend(int(v) for v in pattern.values())
    return max(ranks)


def vllm_max_lora_rank(config: Mapping[str, Any]) -> int:
    """The smallest `--max-lora-rank` vLLM accepts that serves this adapter.

    Raises:
        ValueError: The rank is above every value vLLM accepts.
    """
    rank = adapter_rank(config)
    for allowed in VLLM_MAX_LORA_RANKS:
        if allowed >= rank:
            return allowed
    msg = f"LoRA rank {rank} is above vLLM's largest --max-lora-rank ({VLLM_MAX_LORA_RANKS[-1]})."
    raise ValueError(msg)


def _modules(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _vllm_problems(config: Mapping[str, Any]) -> list[str]:
    reasons = []
    rank = adapter_rank(config)
    if rank > VLLM_MAX_LORA_RANKS[-1]:
        reasons.append(f"rank {rank} is above the largest --max-lora-rank (512)")
    saved = [m for m in _modules(config.get("modules_to_save")) if m not in {"classifier", "score"}]
    if saved:
        reasons.append(f"modules_to_save {saved} (only classifier heads are supported)")
    if config.get("use_dora"):
        reasons.append("DoRA (use_dora)")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        reasons.append("LoRA bias (bias/lora_bias)")
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() not in _VLLM_STRING_INITS:
        reasons.append(f"init_lora_weights={init!r} changes the base weights")
    return reasons


def _tgi_problems(config: Mapping[str, Any]) -> list[str]:
    reasons = []
    targets = _modules(config.get("target_modules"))
    if len(targets) == 1 and targets[0] in {"all-linear", "all"}:
        return [f"target_modules={targets[0]!r}: TGI applies LoRA only to {_tgi_list()}"]
    dropped = sorted({t.rsplit(".", 1)[-1] for t in targets} - TGI_LORA_MODULES)
    if dropped:
        reasons.append(f"LoRA on {dropped} (TGI applies it only to {_tgi_list()})")
    saved = _modules(config.get("modules_to_save"))
    if saved:
        reasons.append(f"modules_to_save {saved}")
    return reasons


def _tgi_list() -> str:
    return ", ".join(sorted(TGI_LORA_MODULES))


def engine_problems(config: Mapping[str, Any]) -> list[EngineProblem]:
    """Every engine that would refuse the adapter, or drop part of it, and why.

    A rank above vLLM's default `--max-lora-rank` is no problem here: the server is launched
    with a larger one (`vllm_max_lora_rank` says which).
    """
    problems = [EngineProblem("vLLM", "refuses", r) for r in _vllm_problems(config)]
    problems += [EngineProblem("TGI", "drops", r) for r in _tgi_problems(config)]
    return problems


def adapter_problems(
    adapter_dir_or_repo: str | Path, revision: str | None = None, *, token: str | None = None
) -> list[EngineProblem]:
    """`engine_problems` of the adapter in a folder or Hub repo (its `adapter_config.json`).

    Raises:
        AdapterNotFoundError: No `adapter_config.json`, or one without its base model.
    """
    return engine_problems(read_adapter_config(adapter_dir_or_repo, revision, token=token))


def describe_problems(problems: list[EngineProblem]) -> str:
    """One line per problem, e.g. `- vLLM refuses it: DoRA (use_dora)`."""
    return "\n".join(f"- {p.engine} {p.verdict} it: {p.reason}" for p in problems)
