"""Exactness of the prefix-shared forward against the standard two-sequence DPO forward.

Tiny random Llama-family models on CPU in float64, with a LoRA adapter whose B matrices are random
(``init_lora_weights=False``) so that policy and reference differ. The reference implementation is
the straightforward one: each pair as two right-padded sequences ``prompt + chosen`` and
``prompt + rejected`` (TRL's collator layout), full logits, ``log_softmax``, summed over the answer.
"""

from __future__ import annotations

import random

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch.nn import functional
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import add_fused_lm_head

from fspo_train.trainer._prefix_forward import install_prefix_sharing_forward
from fspo_train.trainer._prefix_pack import SEGMENT_PAD
from fspo_train.trainer._prefix_synthetic import random_causal_lm
from fspo_train.trainer.prefix_sharing import (
    PrefixSharingCollator,
    pack_preference_batch,
    prefix_sharing_attention_mask,
    prefix_sharing_unsupported_reason,
)

pytestmark = pytest.mark.train


def _examples(seed: int, pairs: int = 4, vocab: int = 40) -> list[dict[str, list[int]]]:
    """Pairs with prompts and answers of different lengths, including edge cases."""
    rng = random.Random(seed)
    examples = []
    for i in range(pairs):
        prompt = [rng.randrange(3, vocab) for _ in range(rng.randint(4, 14))]
        chosen = [rng.randrange(3, vocab) for _ in range(rng.randint(1, 6))]
        rejected = [rng.randrange(3, vocab) for _ in range(rng.randint(1, 6))]
        if i == 1:  # answers that start alike: the shared prefix extends into the answers
            rejected = chosen[:1] + rejected
        examples.append({"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected})
    return examples


def _standard_batch(examples, max_length=None, truncation_mode="keep_start"):
    collate = DataCollatorForPreference(
        pad_token_id=0, max_length=max_length, truncation_mode=truncation_mode
    )
    return collate(examples)


@pytest.mark.parametrize(
    ("seed", "max_length", "truncation_mode"),
    [(0, None, "keep_start"), (1, None, "keep_start"), (2, 12, "keep_start"), (3, 9, "keep_end")],
)
def test_packed_context_of_every_prediction_is_the_standard_one(seed, max_length, truncation_mode):
    """Each standard next-token prediction maps to a packed position that sees the same context."""
    batch = _standard_batch(_examples(seed, pairs=5), max_length, truncation_mode)
    packed = pack_preference_batch(batch["input_ids"], batch["attention_mask"])
    ids, pos = packed["prefix_sharing_input_ids"], packed["prefix_sharing_position_ids"]
    seg, index = packed["prefix_sharing_segment_ids"], packed["prefix_sharing_index"]
    mask = prefix_sharing_attention_mask(seg, "sdpa", torch.float32)[:, 0]
    rows, width = ids.shape
    assert ids.shape[0] * 2 == batch["input_ids"].shape[0]
    checked = 0
    for r in range(batch["input_ids"].shape[0]):
        length = int(batch["attention_mask"][r].sum())
        standard = batch["input_ids"][r, :length].tolist()
        assert (index[r, : length - 1] >= 0).all()
        assert (index[r, length - 1 :] == -1).all()
        for t in range(length - 1):
            row, col = divmod(int(index[r, t]), width)
            assert row == r % rows
            visible = mask[row, col].nonzero().flatten()
            order = pos[row, visible].argsort()
            assert ids[row, visible[order]].tolist() == standard[: t + 1]
            assert pos[row, visible[order]].tolist() == list(range(t + 1))
            checked += 1
    assert checked > 20
    # Each pair costs less than its two sequences, and the saving is the shared prefix.
    assert (seg != SEGMENT_PAD).sum() < batch["attention_mask"].sum()


def test_pack_shares_the_prompt_and_restarts_positions():
    batch = _standard_batch([{"prompt_ids": [5, 6, 7], "chosen_ids": [8, 9], "rejected_ids": [10]}])
    packed = pack_preference_batch(batch["input_ids"], batch["attention_mask"])
    assert packed["prefix_sharing_input_ids"].tolist() == [[5, 6, 7, 8, 9, 7, 10]]
    assert packed["prefix_sharing_position_ids"].tolist() == [[0, 1, 2, 3, 4, 2, 3]]
    assert packed["prefix_sharing_segment_ids"].tolist() == [[0, 0, 1, 1, 1, 2, 2]]
    assert packed["prefix_sharing_index"].tolist() == [[0, 1, 2, 3], [0, 1, 5, -1]]


def test_pack_pads_to_multiple_and_collator_keeps_standard_keys():
    collate = PrefixSharingCollator(DataCollatorForPreference(pad_token_id=0), 0, 8)
    batch = collate(_examples(4, pairs=3))
    assert batch["prefix_sharing_input_ids"].shape[1] % 8 == 0
    assert {"input_ids", "attention_mask", "completion_mask"} <= batch.keys()


def test_pack_rejects_odd_and_left_padded_batches():
    with pytest.raises(ValueError, match="2B rows"):
        pack_preference_batch(torch.ones(3, 4, dtype=torch.long), torch.ones(3, 4))
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="right-padded"):
        pack_preference_batch(torch.ones(2, 3, dtype=torch.long), left)


def _lora_model(model_type: str, attn: str, **kwargs):
    model = random_causal_lm(
        model_type, hidden_size=32, num_layers=2, vocab_size=48, attn_implementation=attn, **kwargs
    ).to(torch.float64)
    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(model, config)


def _token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _standard_logps(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: two sequences per pair, summed answer log-probabilities."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    per_token = _token_logps(logits[:, :-1], batch["input_ids"][:, 1:])
    logps = (per_token * batch["completion_mask"][:, 1:]).sum(dim=1)
    return logps.chunk(2)


def _packed_logps(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefix-shared: one packed sequence per pair, outputs mapped back by the index."""
    packed = pack_preference_batch(batch["input_ids"], batch["attention_mask"])
    ids, index = packed["prefix_sharing_input_ids"], packed["prefix_sharing_index"]
    attn = model.get_base_model().config._attn_implementation
    mask = prefix_sharing_attention_mask(packed["prefix_sharing_segment_ids"], attn, torch.float64)
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=packed["prefix_sharing_position_ids"]
    ).logits
    valid = index >= 0
    flat = logits.reshape(-1, logits.shape[-1])[index.clamp(min=0)]
    per_token = _token_logps(flat, batch["input_ids"][:, 1:]).masked_fill(~valid, 0)
    logps = (per_token * batch["completion_mask"][:, 1:]).sum(dim=1)
    return logps.chunk(2)


def _losses(policy, reference, completion_mask, beta):
    """IPO (TRL's length-normalised form) and DPO (sigmoid) losses, written out."""
    (pc, pr), (rc, rr) = policy, reference
    lengths_c, lengths_r = completion_mask.sum(dim=1).chunk(2)
    ipo_delta = (pc - rc) / lengths_c - (pr - rr) / lengths_r
    ipo = ((ipo_delta - 1 / (2 * beta)) ** 2).mean()
    dpo = -functional.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()
    return ipo, dpo


def _float64_rms_norm(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


@pytest.mark.parametrize(
    ("model_type", "attn", "extra", "rtol", "grad_rtol"),
    [
        # transformers computes RMSNorm (and the eager softmax) in float32 even for a float64 model,
        # so float64 summation-order noise between the two layouts (~1e-16) can flip a float32
        # rounding: log-probabilities then agree to ~1e-8 and gradients to ~1e-6 relative.
        ("llama", "sdpa", {}, 1e-7, 1e-5),
        ("llama", "eager", {}, 1e-7, 1e-5),
        ("qwen2", "sdpa", {}, 1e-7, 1e-5),
        ("qwen3", "sdpa", {"head_dim": 8}, 1e-7, 1e-5),
        ("mistral", "sdpa", {"sliding_window": None}, 1e-7, 1e-5),
        # With the norm in float64 too, the two paths agree to float64 precision.
        ("llama-float64-norm", "sdpa", {}, 1e-12, 1e-11),
    ],
)
def test_logps_losses_and_lora_gradients_match_standard_path(
    model_type, attn, extra, rtol, grad_rtol, monkeypatch
):
    if model_type == "llama-float64-norm":
        from transformers.models.llama import modeling_llama

        monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", _float64_rms_norm)
        model_type = "llama"
    model = _lora_model(model_type, attn, **extra)
    assert prefix_sharing_unsupported_reason(model) is None
    batch = _standard_batch(_examples(7, pairs=4))
    results = {}
    for name, forward in (("standard", _standard_logps), ("packed", _packed_logps)):
        model.zero_grad()
        with torch.no_grad(), model.disable_adapter():
            reference = forward(model, batch)
        policy = forward(model, batch)
        ipo, dpo = _losses(policy, reference, batch["completion_mask"], beta=0.1)
        (ipo + dpo).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results[name] = (policy, reference, ipo, dpo, grads)
    std, pck = results["standard"], results["packed"]
    for a, b in zip(std[0] + std[1], pck[0] + pck[1], strict=True):
        torch.testing.assert_close(b, a, rtol=rtol, atol=0.0)
    # The adapter changes the log-probabilities: the losses are not trivially at their init value.
    assert not torch.allclose(std[0][0], std[1][0])
    torch.testing.assert_close(pck[2], std[2], rtol=rtol, atol=0.0)
    torch.testing.assert_close(pck[3], std[3], rtol=rtol, atol=0.0)
    assert len(std[4]) == 2 * 7 * 2  # lora_A and lora_B of 7 linear layers in 2 blocks
    for name, grad in std[4].items():
        scale = grad.abs().max()
        assert scale > 0, name
        torch.testing.assert_close(pck[4][name], grad, rtol=grad_rtol, atol=grad_rtol * scale)


def test_fused_head_wrapper_returns_standard_layout_and_passes_other_calls_through():
    model = _lora_model("llama", "sdpa")
    base = model.get_base_model()
    add_fused_lm_head(base, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    install_prefix_sharing_forward(base)
    install_prefix_sharing_forward(base)  # idempotent
    batch = _standard_batch(_examples(11, pairs=3))
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    packed = pack_preference_batch(batch["input_ids"], batch["attention_mask"])
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    standard = model(**kwargs, labels=labels, fused_lm_head=True)
    shared = model(**kwargs, **packed, labels=labels, fused_lm_head=True)
    for field in ("log_probs", "entropy", "mean_logits"):
        a, b = getattr(standard, field), getattr(shared, field)
        assert a.shape == b.shape == (6, batch["input_ids"].shape[1] - 1)
        # TRL's fused LM head computes in float32.
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert torch.equal(standard.is_top1, shared.is_top1)
    assert torch.equal(standard.label_mask, shared.label_mask)
    torch.testing.assert_close(shared.loss, standard.loss, rtol=1e-6, atol=1e-6)
    # Without fused_lm_head the packed keys are dropped and the plain forward runs.
    plain = model(**kwargs, **packed)
    assert plain.logits.shape[:2] == batch["input_ids"].shape


@pytest.mark.parametrize(
    "module",
    [
        "fspo_train.trainer.prefix_sharing",
        "fspo_train.trainer._prefix_pack",
        "fspo_train.trainer._prefix_forward",
        "fspo_train.trainer._prefix_synthetic",
    ],
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0
    assert result.attempted > 0
