"""`FSPOTrainConfig`: every setting of an FSPO run (both stages), loadable from YAML and flags.

Defaults follow the paper (arXiv 2502.19312) and its released code: 8 shots with the dispreferred
responses shown, Pref-FT LR 1e-7, IPO LR 1e-6, beta 0.005, one epoch per stage, RMSprop,
150 warmup steps, grad-norm clip 10.

Parsing is TRL's `TrlParser` (transformers' `HfArgumentParser`): one flag per field, YAML
values as the parser's defaults, so flags override the YAML (`load_config`). Unknown keys are
an error that names the closest setting.

Example:
    >>> cfg = FSPOTrainConfig(model_name_or_path="tiny", train_file="d.jsonl", output_dir="out")
    >>> cfg.beta, cfg.loss, cfg.num_shots
    (0.005, 'ipo', 8)
    >>> cfg.replace(num_shots=4).num_shots
    4
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

if TYPE_CHECKING:
    from trl import TrlParser

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULT_BETA",
    "FSPOTrainConfig",
    "config_parser",
    "example_config",
    "load_config",
]

CONFIG_FILENAME = "fspo_train_config.yaml"
"""The resolved config, saved beside the trained adapter."""
DEFAULT_BETA = 0.005
"""IPO/DPO β: the paper's (arXiv 2502.19312, App. A.3, Table 5); `fspo eval` falls back to it."""

TGI_LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class FSPOTrainConfig:
    """Configuration of an FSPO training run (Pref-FT, then IPO or DPO).

    Every field can be set in YAML (`fspo train --config run.yaml`) and overridden by a CLI flag
    (`--num-shots 4`). See each field's `help` metadata (`fspo train --help`).
    """

    # --- model and data
    model_name_or_path: str = field(metadata=_help("Base model: Hub id or local folder."))
    train_file: str | None = field(
        default=None, metadata=_help("Training data file (JSONL records or a paper layout).")
    )
    output_dir: str = field(default="fspo-output", metadata=_help("Where the adapter is written."))
    dataset_layout: Literal["records", "elix", "reviews", "roleplay"] = field(
        default="records", metadata=_help("Layout of `train_file` (records = our JSONL schema).")
    )
    strict_data: bool = field(default=False, metadata=_help("Fail on the first bad data line."))
    base_model_revision: str | None = field(default=None, metadata=_help("Base model revision."))
    # --- prompt format
    style: Literal["chat", "paper"] = field(
        default="chat", metadata=_help("`chat` (chat template) or `paper` (raw markdown).")
    )
    num_shots: int = field(
        default=8, metadata=_help("K: shots per episode (the most, with min_shots).")
    )
    min_shots: int | None = field(
        default=None, metadata=_help("Variable K: draw K in [min_shots, num_shots] per episode.")
    )
    episode_passes: int = field(
        default=1, metadata=_help("Reshuffled passes over each user's rows (paper code: 2(K+1)).")
    )
    include_rejected: bool = field(default=True, metadata=_help("Show dispreferred responses."))
    rationale: Literal["none", "user_description"] = field(
        default="none",
        metadata=_help("`user_description` = RAT: write the user description first."),
    )
    system_prompt: str | None = field(default=None, metadata=_help("System message (chat style)."))
    max_prompt_tokens: int | None = field(
        default=None, metadata=_help("Prompt token budget saved in fspo_format.json for serving.")
    )
    max_length: int = field(
        default=8192,
        metadata=_help("Most tokens of prompt + response in training (oldest shots go)."),
    )
    # --- held-out splits (written to output_dir/splits for evaluation)
    holdout_users: float = field(
        default=0, metadata=_help("Held-out users: a count (>= 1) or a fraction (< 1).")
    )
    holdout_question_fraction: float = field(
        default=0.0, metadata=_help("Fraction of questions held out from training users.")
    )
    # --- stages and losses
    run_sft: bool = field(default=True, metadata=_help("Run stage 1, Pref-FT (SFT)."))
    run_preference: bool = field(default=True, metadata=_help("Run stage 2, IPO/DPO."))
    sft_targets: Literal["chosen", "chosen_and_rejected"] = field(
        default="chosen",
        metadata=_help("Pref-FT targets: paper = chosen; official code = both (paper §6.6)."),
    )
    loss: Literal["ipo", "dpo"] = field(
        default="ipo", metadata=_help("ipo = paper Eq. 6 on summed log-probs; dpo = sigmoid DPO.")
    )
    beta: float = field(default=DEFAULT_BETA, metadata=_help("IPO/DPO beta (the paper's 0.005)."))
    sft_learning_rate: float = field(default=1e-7, metadata=_help("Stage 1 learning rate."))
    learning_rate: float = field(default=1e-6, metadata=_help("Stage 2 learning rate."))
    sft_epochs: float = field(default=1.0, metadata=_help("Stage 1 epochs."))
    epochs: float = field(default=1.0, metadata=_help("Stage 2 epochs."))
    max_steps: int = field(
        default=-1, metadata=_help("Cap on steps per stage (-1: epochs decide).")
    )
    per_device_train_batch_size: int = field(default=4, metadata=_help("Batch size per device."))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("Gradient accumulation."))
    warmup_steps: int = field(default=150, metadata=_help("Linear warmup steps (paper 150)."))
    max_grad_norm: float = field(default=10.0, metadata=_help("Gradient clipping (paper 10)."))
    optim: str = field(default="rmsprop", metadata=_help("Optimizer name (transformers)."))
    weight_decay: float = field(default=0.0, metadata=_help("Weight decay."))
    precompute_ref_log_probs: bool = field(
        default=False, metadata=_help("Compute reference log-probs once before stage 2.")
    )
    prefix_sharing: bool = field(
        default=True,
        metadata=_help(
            "Stage 2: run each pair's few-shot prompt once for both answers (exact; "
            "unsupported models fall back to TRL's path with a logged reason)."
        ),
    )
    # --- adapter
    full_finetune: bool = field(
        default=False, metadata=_help("Train all weights instead of LoRA (tiny models).")
    )
    lora_r: int = field(default=16, metadata=_help("LoRA rank."))
    lora_alpha: int = field(default=32, metadata=_help("LoRA alpha."))
    lora_dropout: float = field(default=0.05, metadata=_help("LoRA dropout."))
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(TGI_LORA_MODULES),
        metadata=_help("LoRA target modules (default: the ones TGI can serve)."),
    )
    # --- runtime
    seed: int = field(default=0, metadata=_help("Seed of episodes, splits and training."))
    use_cpu: bool = field(default=False, metadata=_help("Train on CPU (tiny models, tests)."))
    bf16: bool | None = field(
        default=None, metadata=_help("bf16 training (default: when the GPU has it).")
    )
    gradient_checkpointing: bool = field(
        default=True, metadata=_help("Gradient checkpointing (TRL's default; saves memory).")
    )
    logging_steps: int = field(default=10, metadata=_help("Log every N steps."))
    save_steps: int = field(default=500, metadata=_help("Checkpoint every N steps."))
    save_total_limit: int | None = field(default=2, metadata=_help("Checkpoints kept per stage."))
    resume: bool = field(
        default=True,
        metadata=_help("Resume a stopped run from output_dir (stage marker + checkpoint)."),
    )
    report_to: list[str] = field(
        default_factory=lambda: ["none"],
        metadata=_help("Trainer loggers (none, tensorboard, wandb)."),
    )
    dataloader_num_workers: int = field(default=0, metadata=_help("Data loader workers."))

    def __post_init__(self) -> None:
        """Validate values that no type can express."""
        self._check_choices()
        checks = [
            (self.num_shots >= 0, f"`num_shots` must be >= 0, got {self.num_shots}"),
            (
                self.min_shots is None or 0 <= self.min_shots <= self.num_shots,
                f"`min_shots` must be in [0, num_shots={self.num_shots}], got {self.min_shots}",
            ),
            (self.beta > 0, f"`beta` must be > 0, got {self.beta}"),
            (self.max_length > 0, f"`max_length` must be > 0, got {self.max_length}"),
            (self.episode_passes >= 1, f"`episode_passes` must be >= 1, got {self.episode_passes}"),
            (self.run_sft or self.run_preference, "at least one of `run_sft`, `run_preference`"),
            (
                self.system_prompt is None or self.style == "chat",
                "`system_prompt` needs `style: chat` (the paper layout is raw text)",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message + ".")
        modules: Any = self.lora_target_modules
        self.lora_target_modules = [modules] if isinstance(modules, str) else list(modules)
        loggers: Any = self.report_to
        self.report_to = [loggers] if isinstance(loggers, str) else list(loggers)

    # ------------------------------------------------------------------ helpers

    def replace(self, **changes: Any) -> FSPOTrainConfig:
        """A copy with `changes` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON-serialisable)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The config as YAML, in field order."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, directory: str | Path) -> Path:
        """Write `fspo_train_config.yaml` into `directory`."""
        path = Path(directory) / CONFIG_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of all settings."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> FSPOTrainConfig:
        """Load a YAML file, then apply `overrides` (e.g. from the CLI)."""
        return load_config(path, overrides)

    def _check_choices(self) -> None:
        """The parser checks the choices of flags, not of YAML values: check them here."""
        for name, hint in typing.get_type_hints(type(self)).items():
            choices = typing.get_args(hint) if typing.get_origin(hint) is Literal else ()
            value = getattr(self, name)
            if choices and value not in choices:
                msg = f"`{name}` must be one of {list(choices)}, got {value!r}."
                raise ValueError(msg)


def example_config() -> str:
    """The example run config (the repository's `examples/run.yaml`, packaged in the wheel)."""
    packaged = Path(__file__).resolve().parents[1] / "configs" / "run.yaml"
    source_tree = Path(__file__).resolve().parents[2] / "examples" / "run.yaml"
    path = packaged if packaged.is_file() else source_tree
    return path.read_text(encoding="utf-8")


def config_parser(**kwargs: Any) -> TrlParser:
    """TRL's dataclass parser over `FSPOTrainConfig`: one flag per field.

    `--num-shots` or `--num_shots`; booleans as `--flag`, `--flag false`, and `--no-flag` for
    those on by default; `none` sets an optional number to null; lists take several values.
    `kwargs` go to `TrlParser` (e.g. `add_help=False`).
    """
    from trl import TrlParser

    # TRL types its dataclass argument as a `NewType` of Any, which no class matches.
    dataclass_types: Any = FSPOTrainConfig
    parser = TrlParser(dataclass_types, **kwargs)
    # transformers makes an optional boolean (`bf16: bool | None`, None = automatic) demand a
    # value; `--bf16` alone means true, as for the other booleans.
    hints = typing.get_type_hints(FSPOTrainConfig)
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its actions here
        if hints.get(action.dest) == bool | None and action.option_strings:
            action.nargs, action.const = "?", True
    return parser


def _check_keys(data: dict[str, Any], source: str) -> None:
    known = FSPOTrainConfig.field_names()
    unknown = [key for key in data if key not in known]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        msg = f"Unknown setting(s) in {source}: {', '.join(hints)}."
        raise ValueError(msg)
    if "model_name_or_path" not in data:
        msg = f"`model_name_or_path` is required (missing in {source})."
        raise ValueError(msg)


def load_config(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> FSPOTrainConfig:
    r"""Read a YAML config (or nothing), then apply `overrides`; validate the result.

    The values become the defaults of `config_parser()`, which converts the ones given as
    text (`1e-7`, `none`) as it converts flags; whole numbers of float settings become floats.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "run.yaml"
        >>> _ = p.write_text("model_name_or_path: tiny\ntrain_file: d.jsonl\nnum_shots: 4\n")
        >>> load_config(p, {"num_shots": 2}).num_shots
        2
    """
    data: dict[str, Any] = {}
    source = "the overrides"
    if path is not None:
        source = str(path)
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            msg = f"{path} must hold a mapping of settings, got {type(loaded).__name__}."
            raise ValueError(msg)
        data.update(loaded)
    data.update(overrides or {})
    _check_keys(data, source)
    hints = typing.get_type_hints(FSPOTrainConfig)
    data = {k: float(v) if hints[k] is float and type(v) is int else v for k, v in data.items()}
    parser = config_parser(exit_on_error=False)
    parser.set_defaults_with_config(**data)
    try:
        parsed = parser.parse_args_into_dataclasses(args=[], look_for_args_file=False)
    except argparse.ArgumentError as e:
        msg = f"Invalid {source}: {e}."
        raise ValueError(msg) from e
    config: FSPOTrainConfig = parsed[0]
    return config
