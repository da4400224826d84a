"""The stage-2 TRL trainer of `fspo_train.trainer.stages` (the API is `fspo_train.train()`).

`FSPOPreferenceTrainer` is TRL's `DPOTrainer` with two changes:

1. It accepts rows that are already tokenized (`prompt_ids`, `chosen_ids`, `rejected_ids`),
   because `fspo_train.data.tokenization` tokenizes exactly as serving does (no BOS for the paper
   style), which TRL's own text path does not guarantee.
2. `fspo_loss="ipo"` computes the paper's IPO (Eq. 6) on **summed** log-probabilities with
   `losses.ipo_loss`; TRL's `loss_type="ipo"` averages them per token. DPO is TRL's
   sigmoid loss unchanged.

The reference model is whatever `DPOTrainer` uses: for a `PeftModel` that already carries the
stage-1 adapter, TRL copies it into a frozen adapter named "ref", so the reference is the
stage-1 policy; with full fine-tuning it is a second copy loaded from the stage-1 folder.
"""

from __future__ import annotations

from typing import Any

import torch
from datasets import Dataset, IterableDataset
from trl import DPOConfig, DPOTrainer

from fspo_train.trainer.losses import ipo_loss

__all__ = ["PRETOKENIZED_COLUMNS", "FSPOPreferenceTrainer"]

PRETOKENIZED_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}


class FSPOPreferenceTrainer(DPOTrainer):
    """`DPOTrainer` on pre-tokenized FSPO episodes, with the paper's summed-log-prob IPO.

    Args:
        fspo_loss: `"ipo"` (paper Eq. 6, summed log-probs) or `"dpo"` (TRL sigmoid).
        **kwargs: Everything `DPOTrainer` takes.
    """

    def __init__(self, *args: Any, fspo_loss: str = "ipo", **kwargs: Any) -> None:
        if fspo_loss not in ("ipo", "dpo"):
            msg = f"`fspo_loss` must be 'ipo' or 'dpo', got {fspo_loss!r}."
            raise ValueError(msg)
        self.fspo_loss = fspo_loss
        super().__init__(*args, **kwargs)

    def _prepare_dataset(
        self,
        dataset: Dataset | IterableDataset,
        processing_class: Any,
        args: DPOConfig,
        dataset_name: str,
    ) -> Dataset | IterableDataset:
        columns = set(dataset.column_names or [])
        if set(PRETOKENIZED_COLUMNS) <= columns:
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        if self.fspo_loss != "ipo":
            return super()._compute_loss(model, inputs, return_outputs)
        if return_outputs:
            msg = "FSPOPreferenceTrainer does not return logits; use compute_metrics=None."
            raise NotImplementedError(msg)
        mode = "train" if model.training else "eval"
        completion_mask = inputs["completion_mask"]
        shift_mask = completion_mask[:, 1:]
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        per_token = outputs.log_probs[:, -shift_mask.size(1) :]
        logps = (per_token * shift_mask.to(per_token.dtype)).sum(dim=1)
        chosen_logps, rejected_logps = logps.chunk(2, dim=0)  # the batch is [chosen; rejected]
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self.compute_ref_log_probs(self.ref_model or model, inputs)
        losses, h = ipo_loss(chosen_logps, rejected_logps, ref_chosen, ref_rejected, self.beta)
        loss = losses.mean()
        self._log_pair_metrics(mode, chosen_logps, rejected_logps, ref_chosen, ref_rejected, h)
        return loss

    def _log_pair_metrics(
        self,
        mode: str,
        chosen_logps: torch.Tensor,
        rejected_logps: torch.Tensor,
        ref_chosen: torch.Tensor,
        ref_rejected: torch.Tensor,
        h: torch.Tensor,
    ) -> None:
        gather = self.accelerator.gather_for_metrics
        chosen_rewards = self.beta * (chosen_logps - ref_chosen).detach()
        rejected_rewards = self.beta * (rejected_logps - ref_rejected).detach()
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        accuracy = (chosen_rewards > rejected_rewards).float()
        metrics["rewards/accuracies"].append(gather(accuracy).mean().item())
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(gather(chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather(rejected_logps.detach()).mean().item())
        metrics["ipo/h"].append(gather(h.detach()).mean().item())
