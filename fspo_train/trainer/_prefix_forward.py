"""The prefix-shared model forward: attention mask, fused LM head call, and unpacking.

`install_prefix_sharing_forward` wraps the forward that TRL's `add_fused_lm_head` put on the base
model. When a call carries the packed keys of `_prefix_pack` and asks for the fused LM
head (as `DPOTrainer._compute_loss` and `compute_ref_log_probs` do), the wrapper runs the model on
the packed rows with a 4D attention mask and restarted position ids, scores the packed next-token
labels, and returns the per-token fields in TRL's standard ``(2B, L - 1)`` layout, so the rest of
TRL's loss and metrics code runs unchanged. Any other call (generation, a plain forward) drops the
packed keys and runs the original forward on the standard batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from transformers import PreTrainedModel
from trl.trainer.utils import FusedCausalLMOutput

from fspo_train.trainer._prefix_pack import (
    KEY_INDEX,
    KEY_INPUT_IDS,
    KEY_POSITION_IDS,
    KEY_SEGMENT_IDS,
    PACKED_KEYS,
    SEGMENT_SHARED,
)

__all__ = ["install_prefix_sharing_forward", "prefix_sharing_attention_mask"]

_MARKER = "_fspo_prefix_sharing"
IGNORE_INDEX = -100
_PER_TOKEN_FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


def prefix_sharing_attention_mask(
    segment_ids: torch.Tensor, attn_implementation: str, dtype: torch.dtype
) -> torch.Tensor:
    """The ``(B, 1, Lp, Lp)`` mask: causal, and each branch sees the shared prefix and itself.

    Query ``i`` may attend key ``j`` when ``j <= i`` and key ``j`` is shared or in the same segment
    as ``i``. Padding (its own segment) attends to padding, so no row is fully masked.

    Args:
        segment_ids: ``(B, Lp)`` segment of each packed token.
        attn_implementation: ``"sdpa"`` (a boolean mask, True = attend) or ``"eager"`` (an additive
            mask, 0 or the most negative value of ``dtype``).
        dtype: dtype of the additive mask for ``"eager"``.

    Returns:
        The 4D mask, which transformers' `create_causal_mask` passes to the attention as is.

    Example:
        >>> segments = torch.tensor([[0, 0, 1, 2]])  # shared, shared, chosen, rejected
        >>> prefix_sharing_attention_mask(segments, "sdpa", torch.float32)[0, 0].int().tolist()
        [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 1]]
    """
    length = segment_ids.shape[1]
    positions = torch.arange(length, device=segment_ids.device)
    causal = positions[None, :] <= positions[:, None]
    keys = segment_ids[:, None, :]
    visible = (keys == SEGMENT_SHARED) | (keys == segment_ids[:, :, None])
    allowed = (causal[None] & visible)[:, None]
    if attn_implementation == "eager":
        zeros = torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device)
        return zeros.masked_fill(~allowed, torch.finfo(dtype).min)
    return allowed


def _unpack(packed: torch.Tensor, index: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    gathered = packed.reshape(-1)[index.clamp(min=0)]
    return gathered.masked_fill(~valid, 0)


def _packed_forward(
    inner: Callable[..., Any],
    model: PreTrainedModel,
    packed: dict[str, torch.Tensor],
    kwargs: dict[str, Any],
) -> FusedCausalLMOutput:
    input_ids: torch.Tensor = kwargs.pop("input_ids")
    kwargs.pop("attention_mask", None)
    kwargs.pop("position_ids", None)
    labels: torch.Tensor = kwargs.pop("labels")
    num_items_in_batch = kwargs.pop("num_items_in_batch", None)
    index = packed[KEY_INDEX]
    if index.shape != (input_ids.shape[0], input_ids.shape[1] - 1):
        msg = (
            f"prefix sharing index has shape {tuple(index.shape)}, expected "
            f"{(input_ids.shape[0], input_ids.shape[1] - 1)} for input_ids of shape "
            f"{tuple(input_ids.shape)}; build the batch with PrefixSharingCollator"
        )
        raise ValueError(msg)
    packed_ids = packed[KEY_INPUT_IDS]
    valid = index >= 0
    # Both rows of a pair write the same label at a shared position (they predict the same token).
    packed_labels = torch.full_like(packed_ids, IGNORE_INDEX).reshape(-1)
    packed_labels[index[valid]] = labels[:, 1:][valid].to(packed_labels.dtype)
    mask_dtype = model.dtype if model.dtype.is_floating_point else torch.float32
    mask = prefix_sharing_attention_mask(
        packed[KEY_SEGMENT_IDS],
        model.config._attn_implementation,  # noqa: SLF001 - transformers' switch
        mask_dtype,
    )
    outputs = inner(
        input_ids=packed_ids,
        attention_mask=mask,
        position_ids=packed[KEY_POSITION_IDS],
        shift_labels=packed_labels.view(packed_ids.shape),
        fused_lm_head=True,
        **kwargs,
    )
    fields: dict[str, torch.Tensor | None] = {}
    for name in _PER_TOKEN_FIELDS:
        value = getattr(outputs, name)
        fields[name] = None if value is None else _unpack(value, index, valid)
    label_mask = (labels[:, 1:] != IGNORE_INDEX) & valid
    log_probs = fields["log_probs"]
    if log_probs is None:  # pragma: no cover - the fused head always returns log_probs
        msg = "the fused LM head returned no log_probs"
        raise RuntimeError(msg)
    denominator = (
        label_mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    )
    loss = -log_probs.sum() / denominator
    return FusedCausalLMOutput(
        loss=loss, label_mask=label_mask, aux_loss=outputs.aux_loss, **fields
    )


def install_prefix_sharing_forward(model: PreTrainedModel) -> None:
    """Wrap ``model.forward`` (already given TRL's fused LM head) to run packed batches shared.

    Idempotent. Calls without the packed keys, or without ``fused_lm_head=True``, run the
    original forward on the standard batch (the packed keys are dropped).

    Args:
        model: the base causal LM (for a PEFT model, ``peft_model.get_base_model()``), after
            `trl.trainer.utils.add_fused_lm_head`.
    """
    inner = model.forward
    if getattr(inner, _MARKER, False):
        return

    @functools.wraps(inner)
    def forward(*args: Any, **kwargs: Any) -> Any:
        packed = {key: kwargs.pop(key) for key in PACKED_KEYS if key in kwargs}
        if (
            len(packed) != len(PACKED_KEYS)
            or args
            or not kwargs.get("fused_lm_head", False)
            or kwargs.get("shift_labels") is not None
            or kwargs.get("labels") is None
            or kwargs.get("input_ids") is None
        ):
            return inner(*args, **kwargs)
        kwargs.pop("fused_lm_head")
        kwargs.pop("shift_labels", None)
        return _packed_forward(inner, model, packed, kwargs)

    setattr(forward, _MARKER, True)
    model.forward = forward
