"""bf16 on CPU: `fspo train --bf16` runs, and prefix sharing is as accurate as stock TRL in bf16.

Tolerance. The float64 exactness tests (`test_prefix_sharing_trainer.py`) show both paths compute
the same function; in bf16 they round differently (the packed sequence has other matmul shapes),
so neither is exact. The claim tested is that prefix sharing adds no error of its own beyond
bf16 rounding: against a float64 run of the same model and batch, its distance to stock TRL's
bf16 result is at most twice stock's own bf16 error, and never more than one bf16 unit
roundoff (2^-8) of the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import TrainerCallback
from transformers.utils import is_torch_bf16_available_on_device
from trl import DPOConfig, DPOTrainer

from fspo_train.cli import build_parser
from fspo_train.data.loaders import write_records
from fspo_train.trainer._prefix_synthetic import byte_tokenizer, random_causal_lm, synthetic_pairs
from fspo_train.trainer.prefix_sharing import PrefixSharingDPOTrainer
from fspo_train.trainer.run import train
from tests.train.records import toy_records
from tests.train.trainer.test_run import _config

pytestmark = [
    pytest.mark.train,
    pytest.mark.skipif(
        not is_torch_bf16_available_on_device("cpu"), reason="this torch has no CPU bf16"
    ),
]

BATCH = 4
BF16_UNIT = 2.0**-8
"""bf16 keeps 8 significant bits: the unit roundoff of one rounding."""


def _trainer(cls: type[Any], dtype: torch.dtype, tmp_path: Path) -> Any:
    model = random_causal_lm(hidden_size=32, num_layers=2).to(dtype)
    args = DPOConfig(
        output_dir=str(tmp_path / f"{cls.__name__}-{dtype}"),
        per_device_train_batch_size=BATCH,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        loss_type=["ipo"],
        beta=0.1,
        gradient_checkpointing=True,
        use_cpu=True,
        bf16=dtype == torch.bfloat16,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    torch.manual_seed(1)  # the same LoRA initialisation for every trainer
    return cls(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(synthetic_pairs(BATCH, (24, 48), (2, 10), seed=3)),
        processing_class=byte_tokenizer(),
        peft_config=LoraConfig(
            r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False
        ),
    )


def _first_batch(trainer: Any) -> dict[str, float]:
    batch = trainer._prepare_inputs(
        trainer.data_collator([trainer.train_dataset[i] for i in range(BATCH)])
    )
    trainer.model.train()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    values = {key: values[-1] for key, values in trainer._metrics["train"].items()}
    trainer._metrics["train"].clear()
    return {"loss": float(loss), **values}


def _update(trainer: Any) -> dict[str, torch.Tensor]:
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    return {
        n: (p.detach().double() - before[n].double())
        for n, p in trainer.model.named_parameters()
        if p.requires_grad
    }


def test_prefix_sharing_in_bf16_is_as_accurate_as_stock_trl(tmp_path: Path) -> None:
    exact = _trainer(DPOTrainer, torch.float64, tmp_path)
    stock = _trainer(DPOTrainer, torch.bfloat16, tmp_path)
    shared = _trainer(PrefixSharingDPOTrainer, torch.bfloat16, tmp_path)
    assert shared.prefix_sharing
    assert next(shared.model.get_base_model().parameters()).dtype == torch.bfloat16

    truth, ours, theirs = _first_batch(exact), _first_batch(stock), _first_batch(shared)
    for key in ("loss", "logps/chosen", "logps/rejected", "rewards/margins"):
        stock_error = abs(ours[key] - truth[key])
        assert stock_error > 0, key  # bf16 did round: the comparison means something
        tolerance = min(max(2 * stock_error, 1e-12), BF16_UNIT * abs(truth[key]))
        assert abs(theirs[key] - ours[key]) <= tolerance, (key, truth[key], ours[key], theirs[key])

    # One SGD step: the shared update is as close to the float64 update as stock's is.
    step_exact, step_stock, step_shared = _update(exact), _update(stock), _update(shared)
    for name, reference in step_exact.items():
        stock_error = float((step_stock[name] - reference).abs().max())
        shared_error = float((step_shared[name] - reference).abs().max())
        scale = float(reference.abs().max())
        assert shared_error <= 2 * stock_error + BF16_UNIT * scale, name


class _DtypeProbe(TrainerCallback):
    """Records the dtype of each stage's base model weights when it starts training."""

    def __init__(self) -> None:
        self.dtypes: list[torch.dtype] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.dtypes.append(next(base.parameters()).dtype)


def test_bf16_flag_trains_both_stages_in_bf16_on_cpu(tmp_path: Path, tiny_model_dir: Path) -> None:
    args = build_parser().parse_args(["train", "--bf16"])
    assert args.bf16 is True
    data = write_records(tmp_path / "prefs.jsonl", toy_records())
    probe = _DtypeProbe()
    config = _config(tiny_model_dir, tmp_path / "out", train_file=str(data), bf16=True)
    result = train(config.replace(max_steps=1), callbacks=[probe])
    assert probe.dtypes == [torch.bfloat16, torch.bfloat16]
    for key in ("stage1/train_loss", "stage2/train_loss"):
        assert torch.isfinite(torch.tensor(result.metrics[key])), key
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
