"""`EvalConfig`: what `fspo eval` evaluates, and the defaults it reads from a training run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fspo_train.eval.methods import BASE
from fspo_train.trainer.config import CONFIG_FILENAME, DEFAULT_BETA
from langchain_fspo.artifact import find_adapters, read_adapter_config
from langchain_fspo.errors import AdapterNotFoundError

__all__ = ["EvalConfig", "adapter_base_model", "default_splits", "find_stage1_adapter", "run_beta"]

logger = logging.getLogger(__name__)

SPLITS_DIRNAME = "splits"
_DEFAULT_SPLITS = {"trained": "test_questions.jsonl", "held_out": "test_users.jsonl"}


@dataclass
class EvalConfig:
    """What to evaluate and how."""

    adapter: Path
    """The FSPO adapter folder (with `fspo_format.json`)."""
    splits: dict[str, Path] | None = None
    """Split name -> preference JSONL of the queries to evaluate (e.g. trained, held_out).
    Default: the training run's `splits/` (`test_questions.jsonl` as `trained`: trained
    users on held-out questions; `test_users.jsonl` as `held_out`: users never trained on)."""
    shots: Path | None = None
    """JSONL of extra shot records (default: the run's `splits/train.jsonl` when the splits
    are defaulted). Shots always come from the same user, never with the query's question."""
    base_model: str | None = None
    """Default: `fspo_format.json` `base_model_id`, else `adapter_config.json`."""
    reference: Path | None = None
    """Accuracy reference adapter; default the stage-1 adapter, else the base model."""
    pref_ft_adapter: Path | None = None
    """Stage-1 adapter; default: found in a subfolder of `adapter`."""
    ipo_adapter: Path | None = None
    """A 0-shot (non-personalised) IPO adapter, for the `ipo` baseline."""
    methods: list[str] | None = None
    """Default: every method whose inputs are available."""
    baseline: str = BASE
    beta: float | None = None
    """β of the implicit reward; default: the run's `fspo_train_config.yaml`, else training's
    default (0.005, the paper's).
    (Accuracy does not depend on β > 0; the reported rewards and margins scale with it.)"""
    num_shots: int | None = None
    """Default: the format's `num_shots`."""
    max_new_tokens: int = 128
    batch_size: int = 8
    max_items: int | None = None
    """Evaluate at most this many queries per split (seeded sample)."""
    seed: int = 0
    accuracy: bool = True
    win_rate: bool = True
    output_dir: Path | None = None
    """Default: `adapter` (so `fspo publish` puts the results in the model card)."""
    device: str | None = None


def default_splits(adapter_dir: str | Path) -> tuple[dict[str, Path], Path | None]:
    """The evaluation splits a training run saved (`splits/`), and its shot pool.

    Returns `({"trained": test_questions.jsonl, "held_out": test_users.jsonl}, train.jsonl)`,
    leaving out empty or missing files.

    Raises:
        ValueError: The run saved no non-empty split.
    """
    folder = Path(adapter_dir) / SPLITS_DIRNAME
    splits = {
        name: folder / filename
        for name, filename in _DEFAULT_SPLITS.items()
        if (folder / filename).is_file() and (folder / filename).stat().st_size > 0
    }
    if not splits:
        msg = (
            f"No evaluation data given and {folder} holds no held-out split. Pass "
            "--split NAME=JSONL, or train with `holdout_users` / `holdout_question_fraction`."
        )
        raise ValueError(msg)
    train = folder / "train.jsonl"
    return splits, (train if train.is_file() else None)


def find_stage1_adapter(adapter_dir: str | Path) -> Path | None:
    """The stage-1 (Pref-FT) adapter saved in a subfolder of a training output, if any."""
    found = find_adapters(adapter_dir)
    preferred = [p for p in found if any(k in p.name.lower() for k in ("pref", "stage1", "sft"))]
    if len(preferred) == 1:
        return preferred[0]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        logger.warning("Several adapters in %s (%s); give the stage-1 one.", adapter_dir, found)
    return None


def run_beta(adapter: Path, default: float = DEFAULT_BETA) -> float:
    """β the run was trained with (`fspo_train_config.yaml`), else `default` (training's)."""
    import yaml

    path = adapter / CONFIG_FILENAME
    if path.is_file():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("beta"), int | float):
            return float(data["beta"])
    return default


def adapter_base_model(adapter: Path) -> str | None:
    """The base model named in the adapter's `adapter_config.json`, if any."""
    if not adapter.is_dir():
        return None
    try:
        value = read_adapter_config(adapter).get("base_model_name_or_path")
    except AdapterNotFoundError:
        return None
    return str(value) if value else None
