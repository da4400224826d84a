"""Prefix-shared preference training: the few-shot prompt is computed once per pair.

FSPO prompts are long (K shots of question + two responses, thousands of tokens) and answers are
short. TRL's `DPOTrainer` runs each pair as two sequences, ``prompt + chosen`` and
``prompt + rejected``, so the prompt goes through the model twice (policy and reference). Here a
pair is one sequence ``[prompt, chosen, rejected]`` in which each answer attends to the prompt and
to itself but not to the other answer, and both answers' position ids restart at the end of the
prompt. Every hidden state of an answer token is then the one of the standard path, so the
log-probabilities, the loss and the gradients are the same (up to floating-point summation order),
for about ``(P + 2R) / (2P + 2R)`` of the token compute (54% for P=3000, R=250).

`PrefixSharingDPOTrainer` is a thin `trl.DPOTrainer` subclass: it adds the packed layout to each
batch (`PrefixSharingCollator`) and wraps the model forward that TRL's fused LM head uses
(`install_prefix_sharing_forward`), which hands the per-token log-probabilities back in TRL's
standard layout. TRL's loss code (``loss_type=["ipo"]``, sigmoid, ...), reference handling (PEFT
adapter disabling or a reference model), metrics and logging run unchanged. Models it cannot run
exactly fall back to the standard path, with the reason logged
(`prefix_sharing_unsupported_reason`).

Why a 4D attention mask with SDPA (and not flex attention or a KV cache):

* **Compatibility.** transformers 5 (`masking_utils._preprocess_mask_arguments`) passes a 4D mask
  to the attention as is, for every model built on `create_causal_mask`; the mask is an input of
  the decoder layers, so gradient checkpointing recomputes them unchanged, and LoRA layers see
  ordinary activations. Position ids are an ordinary forward argument.
* **Exactness of gradients.** One forward holds the prompt and both answers, so the gradient of
  both answers flows into the prompt's activations by ordinary autograd. A KV-cache formulation
  (prompt forward, then both answers on a duplicated ``past_key_values``) needs the cache to stay
  in the graph, which transformers disables under gradient checkpointing (``use_cache=False``), and
  re-running a checkpointed layer would append to the cache a second time.
* **Speed and memory.** The mask costs ``B * Lp^2`` bytes (49 MB for B=4, Lp=3,500). SDPA with an
  explicit mask runs the memory-efficient kernel on CUDA (the flash kernel takes no mask), the
  kernel TRL's padded batches already use whenever a batch has padding; the wasted
  chosen-to-rejected attention block is ``C * R`` of ``Lp^2 / 2`` scores. Flex attention's
  `BlockMask` would skip the masked blocks, but on CPU it requires `torch.compile` (slow to warm up,
  nothing to gain at these sizes) and transformers builds its own block mask from a 2D mask;
  FlashAttention-2 varlen cannot express "two branches over one prefix" without two calls. FA2
  users therefore fall back to the standard path, with the reason logged.

Measured (`bench/train_throughput.py`, `bench/results/train_throughput_cpu.md`; CPU only so far):
1.7x TRL's pairs/s at P=1000, R=100 and 1.4x at P=600, R=200, with the same loss on the same
batch. The reference model is frozen, so ``precompute_ref_log_probs=True`` is exact too and
removes the reference forward from every step (its one-off pass is also shared here): 2.2x and
1.8x per step together.

Example:
    >>> from fspo_train.trainer.prefix_sharing import PrefixSharingDPOTrainer
    >>> trainer = PrefixSharingDPOTrainer(  # doctest: +SKIP
    ...     model=model, args=DPOConfig(loss_type=["ipo"], beta=0.005), train_dataset=pairs
    ... )
    >>> trainer.prefix_sharing  # doctest: +SKIP
    True
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from transformers import PreTrainedModel
from trl import DPOTrainer

from fspo_train.trainer._prefix_forward import (
    install_prefix_sharing_forward,
    prefix_sharing_attention_mask,
)
from fspo_train.trainer._prefix_pack import PrefixSharingCollator, pack_preference_batch

__all__ = [
    "SUPPORTED_ATTENTION",
    "SUPPORTED_MODEL_TYPES",
    "PrefixSharingCollator",
    "PrefixSharingDPOTrainer",
    "PrefixSharingMixin",
    "install_prefix_sharing_forward",
    "pack_preference_batch",
    "prefix_sharing_attention_mask",
    "prefix_sharing_unsupported_reason",
    "with_prefix_sharing",
]

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
"""Decoder families with rotary position ids and full causal attention built by `create_causal_mask`
(exactness tested on tiny random models of each)."""

SUPPORTED_ATTENTION = frozenset({"sdpa", "eager"})
"""Attention implementations that accept an arbitrary 4D mask."""


def _base_model(model: Any) -> Any:
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def prefix_sharing_unsupported_reason(model: Any, max_length: int | None = None) -> str | None:
    """Why the prefix-shared forward cannot run ``model`` exactly, or None when it can.

    Args:
        model: a causal LM, or a PEFT model around one.
        max_length: the longest standard sequence (``DPOConfig.max_length``); a sliding-window
            model is exact only when no sequence is longer than its window.

    Returns:
        A sentence naming the unsupported property and what to change, or None.

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> config = LlamaConfig(
        ...     hidden_size=16,
        ...     intermediate_size=32,
        ...     num_hidden_layers=1,
        ...     num_attention_heads=2,
        ...     vocab_size=32,
        ...     attn_implementation="sdpa",
        ... )
        >>> prefix_sharing_unsupported_reason(LlamaForCausalLM(config)) is None
        True
    """
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        return "prompt-learning PEFT adapters prepend virtual tokens to every sequence"
    base = _base_model(model)
    if not isinstance(base, PreTrainedModel):
        return f"{type(base).__name__} is not a transformers PreTrainedModel"
    config = base.config
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return (
            f"model_type {model_type!r} is not among the families verified exact "
            f"({', '.join(sorted(SUPPORTED_MODEL_TYPES))})"
        )
    attention = getattr(config, "_attn_implementation", None)
    if attention not in SUPPORTED_ATTENTION:
        return (
            f"attn_implementation {attention!r} takes no custom 4D attention mask; load the model "
            "with attn_implementation='sdpa' to share the prompt"
        )
    if "position_ids" not in inspect.signature(type(base).forward).parameters:
        return f"{type(base).__name__}.forward takes no position_ids"
    if any(
        getattr(config, name, None)
        for name in ("num_experts", "num_local_experts", "n_routed_experts")
    ):
        return "mixture-of-experts models count router statistics per token"
    layer_types = getattr(config, "layer_types", None) or []
    if any(kind != "full_attention" for kind in layer_types):
        return f"layer_types {sorted(set(layer_types))} include non-full attention layers"
    window = getattr(config, "sliding_window", None)
    uses_window = getattr(config, "use_sliding_window", True)
    if window is not None and uses_window and (max_length is None or max_length > int(window)):
        return (
            f"sliding_window={window} is shorter than max_length={max_length}; the packed mask "
            "has no window. Set max_length <= sliding_window"
        )
    return None


class PrefixSharingMixin:
    """Turns prefix sharing on in any `trl.DPOTrainer` subclass (put it first in the bases).

    After construction, ``prefix_sharing`` says whether the shared path is on, and
    ``prefix_sharing_fallback_reason`` why not when it is off (also logged at WARNING level).
    Vision datasets and unsupported models (see `prefix_sharing_unsupported_reason`) use the
    standard path. A subclass that overrides ``_compute_loss`` keeps the shared path as long as
    it calls the model (and ``compute_ref_log_probs``) with the batch keys, as TRL does.
    """

    prefix_sharing: bool
    """Whether batches run through the prefix-shared forward."""
    prefix_sharing_fallback_reason: str | None
    """Why the standard path is used, or None."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_prefix_sharing()

    def _precompute_ref_logps(self, *args: Any, **kwargs: Any) -> Any:
        # `DPOTrainer.__init__` precomputes the reference log-probs (precompute_ref_log_probs)
        # after adding the fused LM head: share the prompt in that pass too.
        self._setup_prefix_sharing()
        return super()._precompute_ref_logps(*args, **kwargs)  # type: ignore[misc]

    def _setup_prefix_sharing(self) -> None:
        trainer: Any = self
        if hasattr(self, "prefix_sharing"):  # already set up (precompute pass)
            return
        reason = self._prefix_sharing_reason()
        self.prefix_sharing = reason is None
        self.prefix_sharing_fallback_reason = reason
        if reason is not None:
            logger.warning("Prefix sharing is off, using TRL's standard DPO forward: %s", reason)
            return
        for model in (trainer.model, trainer.ref_model):
            if model is not None:
                install_prefix_sharing_forward(_base_model(trainer.accelerator.unwrap_model(model)))
        trainer.data_collator = PrefixSharingCollator(
            trainer.data_collator,
            pad_token_id=self._prefix_pad_token_id(),
            pad_to_multiple_of=getattr(trainer.args, "pad_to_multiple_of", None),
        )
        logger.info("Prefix sharing is on: each pair's prompt is computed once per forward")

    def _prefix_pad_token_id(self) -> int:
        trainer: Any = self
        pad = getattr(trainer.data_collator, "pad_token_id", None)
        if pad is None:
            pad = getattr(getattr(trainer, "_tokenizer", None), "pad_token_id", None)
        return int(pad) if pad is not None else 0

    def _prefix_sharing_reason(self) -> str | None:
        trainer: Any = self
        if not isinstance(trainer, DPOTrainer):
            return f"{type(trainer).__name__} is not a trl.DPOTrainer"
        if getattr(trainer, "_is_vision_dataset", False):
            return "vision datasets are not supported"
        for model in (trainer.model, trainer.ref_model):
            if model is None:
                continue
            reason = prefix_sharing_unsupported_reason(
                trainer.accelerator.unwrap_model(model), getattr(trainer.args, "max_length", None)
            )
            if reason is not None:
                return reason
        return None


class PrefixSharingDPOTrainer(PrefixSharingMixin, DPOTrainer):
    """`trl.DPOTrainer` that computes each pair's prompt once (see the module docstring).

    Same arguments and behaviour as `DPOTrainer`; see `PrefixSharingMixin` for the attributes
    ``prefix_sharing`` and ``prefix_sharing_fallback_reason``.

    Example:
        >>> trainer = PrefixSharingDPOTrainer(  # doctest: +SKIP
        ...     model=model,
        ...     args=DPOConfig(output_dir="out", loss_type=["ipo"], beta=0.005),
        ...     train_dataset=dataset,
        ...     processing_class=tokenizer,
        ...     peft_config=LoraConfig(r=16, target_modules="all-linear"),
        ... )
        >>> trainer.train()  # doctest: +SKIP
    """


_WITH_PREFIX_SHARING: dict[type[Any], type[Any]] = {}


def with_prefix_sharing(trainer_class: type[Any]) -> type[Any]:
    """A subclass of the `trl.DPOTrainer` subclass ``trainer_class`` with prefix sharing on.

    Args:
        trainer_class: `DPOTrainer` or a subclass of it.

    Returns:
        ``trainer_class`` itself when it already shares prefixes, else a (cached) subclass named
        ``PrefixSharing<Name>`` with `PrefixSharingMixin` first in its bases.

    Raises:
        TypeError: ``trainer_class`` is not a `DPOTrainer` subclass.

    Example:
        >>> from trl import DPOTrainer
        >>> with_prefix_sharing(DPOTrainer).__name__
        'PrefixSharingDPOTrainer'
    """
    if not (isinstance(trainer_class, type) and issubclass(trainer_class, DPOTrainer)):
        msg = f"with_prefix_sharing needs a trl.DPOTrainer subclass, got {trainer_class!r}"
        raise TypeError(msg)
    if issubclass(trainer_class, PrefixSharingMixin):
        return trainer_class
    if trainer_class is DPOTrainer:
        return PrefixSharingDPOTrainer
    if trainer_class not in _WITH_PREFIX_SHARING:
        _WITH_PREFIX_SHARING[trainer_class] = type(
            f"PrefixSharing{trainer_class.__name__}",
            (PrefixSharingMixin, trainer_class),
            {"__doc__": f"{trainer_class.__name__} with prefix sharing (`PrefixSharingMixin`)."},
        )
    return _WITH_PREFIX_SHARING[trainer_class]
