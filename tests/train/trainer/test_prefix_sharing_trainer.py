"""`PrefixSharingDPOTrainer` against TRL's stock `DPOTrainer`: same loss, metrics and update.

Both trainers get the same tiny random Llama (float64), the same LoRA adapter (random B, so the
policy differs from the reference), gradient checkpointing, and the same byte-tokenized pairs
with prompts and answers of different lengths, so batches are padded.
"""

from __future__ import annotations

import logging

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, PrefixTuningConfig, get_peft_model
from trl import DPOConfig, DPOTrainer

from fspo_train.trainer._prefix_synthetic import byte_tokenizer, random_causal_lm, synthetic_pairs
from fspo_train.trainer.prefix_sharing import (
    PrefixSharingCollator,
    PrefixSharingDPOTrainer,
    prefix_sharing_unsupported_reason,
    with_prefix_sharing,
)

pytestmark = pytest.mark.train

BATCH = 4


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture(scope="module")
def dataset():
    return Dataset.from_list(synthetic_pairs(2 * BATCH, (24, 48), (2, 10), seed=3))


def _trainer(cls, tokenizer, dataset, tmp_path, *, loss_type="ipo", model=None, **overrides):
    if model is None:
        model = random_causal_lm(hidden_size=32, num_layers=2).to(torch.float64)
    args = DPOConfig(
        output_dir=str(tmp_path / cls.__name__),
        per_device_train_batch_size=BATCH,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        loss_type=[loss_type],
        beta=0.1,
        gradient_checkpointing=True,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        **overrides,
    )
    torch.manual_seed(1)  # the same LoRA initialisation for both trainers
    return cls(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False
        ),
    )


def _first_batch_loss(trainer, size=BATCH):
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(size)])
    batch = trainer._prepare_inputs(batch)
    trainer.model.train()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    metrics = {key: values[-1] for key, values in trainer._metrics["train"].items()}
    trainer._metrics["train"].clear()
    return loss, metrics, batch


def _trainable(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("loss_type", "precompute", "weighting"),
    [
        ("ipo", False, False),
        ("sigmoid", False, False),
        ("ipo", True, False),
        ("sigmoid", False, True),
    ],
)
def test_first_batch_loss_metrics_and_one_step_match_stock_dpo_trainer(
    loss_type, precompute, weighting, tokenizer, dataset, tmp_path
):
    options = {
        "loss_type": loss_type,
        "precompute_ref_log_probs": precompute,
        "use_weighting": weighting,  # WPO: uses the fused head's log_sum_sq_probs
    }
    stock = _trainer(DPOTrainer, tokenizer, dataset, tmp_path, **options)
    shared = _trainer(PrefixSharingDPOTrainer, tokenizer, dataset, tmp_path, **options)
    assert shared.prefix_sharing
    assert shared.prefix_sharing_fallback_reason is None
    assert isinstance(shared.data_collator, PrefixSharingCollator)
    if precompute:  # the precompute pass in __init__ already ran shared
        for column in ("ref_chosen_logps", "ref_rejected_logps"):
            torch.testing.assert_close(
                torch.tensor(shared.train_dataset[column]),
                torch.tensor(stock.train_dataset[column]),
                rtol=1e-6,
                atol=0.0,
            )
    assert _trainable(stock).keys() == _trainable(shared).keys()
    for name, value in _trainable(stock).items():
        assert torch.equal(value, _trainable(shared)[name]), name

    loss_stock, metrics_stock, batch_stock = _first_batch_loss(stock)
    loss_shared, metrics_shared, batch_shared = _first_batch_loss(shared)
    assert torch.equal(batch_stock["input_ids"], batch_shared["input_ids"])
    assert batch_stock["attention_mask"].sum(dim=1).unique().numel() > 1  # padded batch
    # The shared batch processes fewer tokens than the two sequences per pair.
    shared_tokens = (batch_shared["prefix_sharing_segment_ids"] != 3).sum()
    assert shared_tokens < 0.8 * batch_stock["attention_mask"].sum()
    torch.testing.assert_close(loss_shared, loss_stock, rtol=1e-7, atol=0.0)
    assert metrics_stock.keys() == metrics_shared.keys()
    assert metrics_stock["rewards/margins"] != 0.0
    for key, value in metrics_stock.items():
        assert metrics_shared[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key

    before = _trainable(stock)
    stock.train()
    shared.train()
    after_stock, after_shared = _trainable(stock), _trainable(shared)
    moved = [n for n in before if not torch.equal(before[n], after_stock[n])]
    assert len(moved) == len(before)  # every LoRA matrix was updated
    for name, value in after_stock.items():
        step = (value - before[name]).abs().max()
        torch.testing.assert_close(after_shared[name], value, rtol=0.0, atol=1e-5 * step)
    assert shared.state.log_history[0]["loss"] == pytest.approx(
        stock.state.log_history[0]["loss"], rel=1e-6
    )
    # Evaluation goes through the same path (prediction_step -> compute_loss).
    held_out = Dataset.from_list(synthetic_pairs(BATCH, (30, 40), (3, 8), seed=9))
    eval_stock = stock.evaluate(held_out)
    eval_shared = shared.evaluate(held_out)
    assert eval_shared["eval_loss"] == pytest.approx(eval_stock["eval_loss"], rel=1e-6)
    assert eval_shared["eval_rewards/margins"] == pytest.approx(
        eval_stock["eval_rewards/margins"], rel=1e-4, abs=1e-6
    )


def test_sliding_window_model_falls_back_with_a_logged_reason(tokenizer, dataset, tmp_path, caplog):
    model = random_causal_lm("mistral", hidden_size=32, num_layers=2, sliding_window=16)
    with caplog.at_level(logging.WARNING, logger="fspo_train.trainer.prefix_sharing"):
        trainer = _trainer(
            PrefixSharingDPOTrainer, tokenizer, dataset, tmp_path, model=model, max_length=128
        )
    assert not trainer.prefix_sharing
    assert "sliding_window=16" in str(trainer.prefix_sharing_fallback_reason)
    assert any("Prefix sharing is off" in r.getMessage() for r in caplog.records)
    assert not isinstance(trainer.data_collator, PrefixSharingCollator)
    trainer.train()
    assert trainer.state.global_step == 1


def test_sliding_window_longer_than_max_length_is_exact_and_supported():
    model = random_causal_lm("mistral", hidden_size=32, num_layers=1, sliding_window=64)
    assert prefix_sharing_unsupported_reason(model, max_length=64) is None
    assert "sliding_window" in str(prefix_sharing_unsupported_reason(model, max_length=65))
    assert "sliding_window" in str(prefix_sharing_unsupported_reason(model, max_length=None))


def test_unsupported_models_are_named_with_the_reason():
    model = random_causal_lm(hidden_size=32, num_layers=1)
    model.config._attn_implementation = "flash_attention_2"
    assert "attn_implementation 'flash_attention_2'" in str(
        prefix_sharing_unsupported_reason(model)
    )
    model.config._attn_implementation = "sdpa"
    model.config.model_type = "gpt2"
    assert "model_type 'gpt2'" in str(prefix_sharing_unsupported_reason(model))
    prompt_learning = get_peft_model(
        random_causal_lm(hidden_size=32, num_layers=1),
        PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2),
    )
    assert "prompt-learning" in str(prefix_sharing_unsupported_reason(prompt_learning))
    assert "not a transformers" in str(prefix_sharing_unsupported_reason(torch.nn.Linear(2, 2)))


class SummedIPOTrainer(DPOTrainer):
    """A DPOTrainer subclass with its own loss, calling the model as TRL does (like FSPO's)."""

    def _compute_loss(self, model, inputs, return_outputs):
        non_model = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}
        kwargs = {k: v for k, v in inputs.items() if k not in non_model}
        mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(mask == 0, -100)
        outputs = model(**kwargs, labels=labels, fused_lm_head=True, use_cache=False)
        logps = (outputs.log_probs * mask[:, 1:]).sum(dim=1)
        chosen, rejected = logps.chunk(2)
        ref_chosen, ref_rejected = self.compute_ref_log_probs(self.ref_model or model, inputs)
        h = (chosen - ref_chosen) - (rejected - ref_rejected)
        return ((h - 1 / (2 * self.beta)) ** 2).mean()


def test_with_prefix_sharing_keeps_a_subclass_loss_exact(tokenizer, dataset, tmp_path):
    shared_class = with_prefix_sharing(SummedIPOTrainer)
    assert shared_class.__name__ == "PrefixSharingSummedIPOTrainer"
    assert with_prefix_sharing(SummedIPOTrainer) is shared_class
    assert with_prefix_sharing(shared_class) is shared_class
    assert with_prefix_sharing(DPOTrainer) is PrefixSharingDPOTrainer
    with pytest.raises(TypeError, match="DPOTrainer subclass"):
        with_prefix_sharing(int)
    plain = _trainer(SummedIPOTrainer, tokenizer, dataset, tmp_path)
    shared = _trainer(shared_class, tokenizer, dataset, tmp_path)
    assert shared.prefix_sharing
    loss_plain, _, _ = _first_batch_loss(plain)
    loss_shared, _, batch = _first_batch_loss(shared)
    assert "prefix_sharing_index" in batch
    torch.testing.assert_close(loss_shared, loss_plain, rtol=1e-7, atol=0.0)


def _fspo_records():
    from fspo_train.data.records import PreferenceRecord

    return [
        PreferenceRecord(
            user_id=user,
            question=f"Question {i} for {user}: why does the fox jump {'high ' * i}?",
            chosen=f"The {user} answer {i}: a quick brown fox.",
            rejected=f"No{'pe' * i}.",
            question_id=f"q{i}",
        )
        for user in ("kid", "expert", "poet")
        for i in range(6)
    ]


@pytest.mark.parametrize("style", ["paper", "chat"])
def test_fspo_train_stage2_shares_prefixes_by_default_and_matches_the_standard_path(
    tiny_model_dir, tmp_path, style
):
    from fspo_train.data.episodes import build_episodes
    from fspo_train.data.training_data import build_training_rows
    from fspo_train.trainer.config import FSPOTrainConfig
    from fspo_train.trainer.preference_trainer import FSPOPreferenceTrainer
    from fspo_train.trainer.prefix_sharing import PrefixSharingMixin
    from fspo_train.trainer.stages import build_preference_trainer, preference_trainer_class
    from fspo_train.trainer.tokenizer import build_prompt_format, load_tokenizer

    config = FSPOTrainConfig(
        model_name_or_path=str(tiny_model_dir),
        output_dir=str(tmp_path),
        style=style,
        num_shots=2,
        max_steps=1,
        per_device_train_batch_size=3,
        beta=0.05,
        use_cpu=True,
        resume=False,
    )
    assert config.prefix_sharing
    assert issubclass(preference_trainer_class(config), PrefixSharingMixin)
    off = config.replace(prefix_sharing=False)
    assert preference_trainer_class(off) is FSPOPreferenceTrainer

    tokenizer = load_tokenizer(config)
    fmt = build_prompt_format(config, tokenizer)
    episodes = build_episodes(_fspo_records(), num_shots=2, seed=0)
    rows = build_training_rows(episodes, fmt, tokenizer, max_length=512)
    losses = {}
    for name, cfg in (("shared", config), ("standard", off)):
        trainer = build_preference_trainer(cfg, rows, tokenizer, None)
        assert getattr(trainer, "prefix_sharing", False) is (name == "shared")
        torch.manual_seed(1)
        with torch.no_grad():  # move the policy away from the reference
            for param_name, param in trainer.model.named_parameters():
                if ".default." in param_name:
                    param.add_(0.05 * torch.randn_like(param))
        assert len(trainer.train_dataset) >= 3
        loss, _, batch = _first_batch_loss(trainer, 3)
        assert ("prefix_sharing_index" in batch) is (name == "shared")
        losses[name] = loss
    assert abs(losses["standard"].item() - (1 / (2 * 0.05)) ** 2) > 1e-3
    torch.testing.assert_close(losses["shared"], losses["standard"], rtol=1e-5, atol=0.0)
