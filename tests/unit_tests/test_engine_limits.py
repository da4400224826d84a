"""`engine_limits`: the adapters vLLM refuses or TGI serves in part, and vLLM's rank flag."""

from __future__ import annotations

import pytest

from langchain_fspo.engine_limits import describe_problems, engine_problems, vllm_max_lora_rank

DEFAULT = {
    "r": 16,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def test_the_training_default_fits_every_engine() -> None:
    assert engine_problems(DEFAULT) == []


@pytest.mark.parametrize(
    ("rank", "flag"), [(4, 8), (8, 8), (16, 16), (24, 32), (300, 320), (512, 512)]
)
def test_vllm_rank_flag_is_the_smallest_allowed_value(rank: int, flag: int) -> None:
    assert vllm_max_lora_rank({"r": rank}) == flag
    assert vllm_max_lora_rank({"r": 4, "rank_pattern": {"q_proj": rank}}) == max(flag, 8)


def test_each_refusal_names_engine_and_reason() -> None:
    config = {
        **DEFAULT,
        "r": 1024,
        "target_modules": [*DEFAULT["target_modules"], "lm_head"],
        "modules_to_save": ["embed_tokens"],
        "use_dora": True,
        "bias": "all",
        "init_lora_weights": "pissa",
    }
    text = describe_problems(engine_problems(config))
    for fragment in (
        "vLLM refuses it: rank 1024",
        "vLLM refuses it: modules_to_save ['embed_tokens']",
        "vLLM refuses it: DoRA",
        "vLLM refuses it: LoRA bias",
        "vLLM refuses it: init_lora_weights='pissa'",
        "TGI drops it: LoRA on ['lm_head']",
        "TGI drops it: modules_to_save ['embed_tokens']",
    ):
        assert fragment in text
    with pytest.raises(ValueError, match="above vLLM's largest"):
        vllm_max_lora_rank(config)


def test_all_linear_is_flagged_for_tgi() -> None:
    (problem,) = engine_problems({"r": 8, "target_modules": "all-linear"})
    assert (problem.engine, problem.verdict) == ("TGI", "drops")
