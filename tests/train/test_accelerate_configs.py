"""The accelerate configs in examples/accelerate/ load with accelerate's own reader.

`test_distributed.py` runs ddp.yaml (2 processes on CPU); the others need GPUs (bench/gpu_check.sh
runs fsdp.yaml on one), so here they are read as `accelerate launch` reads them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

from fspo_train.cli import build_parser

pytestmark = pytest.mark.train

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "accelerate"
EXPECTED = {
    "single_gpu.yaml": DistributedType.NO,
    "ddp.yaml": DistributedType.MULTI_GPU,
    "fsdp.yaml": DistributedType.FSDP,
    "deepspeed_zero3.yaml": DistributedType.DEEPSPEED,
}


def test_every_config_is_listed() -> None:
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "kind"), sorted(EXPECTED.items()))
def test_config_loads_as_accelerate_reads_it(name: str, kind: DistributedType) -> None:
    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type == kind
    assert config.mixed_precision == "no"  # precision is `fspo train`'s setting, one knob
    assert config.use_cpu is False
    text = (CONFIGS / name).read_text(encoding="utf-8")
    assert f"--config_file examples/accelerate/{name} -m fspo_train train" in text
    if kind == DistributedType.FSDP:
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        # The launch line turns the Trainer's checkpointing off: the flag exists.
        assert "--no-gradient-checkpointing" in text
        args = build_parser().parse_args(["train", "--no-gradient-checkpointing"])
        assert args.gradient_checkpointing is False
    if kind == DistributedType.DEEPSPEED:
        assert config.deepspeed_config["zero_stage"] == 3
        assert config.deepspeed_config["zero3_save_16bit_model"] is True
