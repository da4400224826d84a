"""The preference losses of the paper, as pure functions of sequence log-probabilities.

Log-probabilities are **sums** over the response tokens, as in the paper (arXiv 2502.19312,
Eq. 6) and the authors' released code. TRL's own `loss_type="ipo"` divides them by the response
length first, which changes the objective; `ipo_loss` here is the paper's Eq. 6.

Example:
    >>> import torch
    >>> pc, pr = torch.tensor([-10.0]), torch.tensor([-12.0])
    >>> rc, rr = torch.tensor([-11.0]), torch.tensor([-11.0])
    >>> losses, h = ipo_loss(pc, pr, rc, rr, beta=0.5)
    >>> h.item(), losses.item()  # h = (-10 + 11) - (-12 + 11) = 2; (2 - 1/(2*0.5))^2 = 1
    (2.0, 1.0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

__all__ = ["dpo_loss", "ipo_loss", "log_ratio_difference", "sequence_logps"]


def sequence_logps(
    logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor
) -> torch.Tensor:
    """Summed log-probability of the completion tokens of each sequence.

    Args:
        logits: `(batch, seq, vocab)` next-token logits.
        input_ids: `(batch, seq)` tokens.
        completion_mask: `(batch, seq)`, 1 on the tokens whose log-probability is summed.

    Returns:
        `(batch,)` tensor: sum over t with mask[t] = 1 of log p(input_ids[t] | input_ids[<t]).
    """
    logps = F.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:].unsqueeze(-1)
    token_logps = torch.gather(logps, 2, targets).squeeze(-1)
    return (token_logps * completion_mask[:, 1:].to(token_logps.dtype)).sum(dim=1)


def log_ratio_difference(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
) -> torch.Tensor:
    """H = log pi(y_w)/pi_ref(y_w) - log pi(y_l)/pi_ref(y_l), per pair."""
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's IPO loss (Eq. 6): `(h - 1/(2 beta))^2` per pair.

    Returns:
        `(losses, h)`, both `(batch,)`.
    """
    h = log_ratio_difference(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return (h - 1.0 / (2.0 * beta)) ** 2, h


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO (conservative with `label_smoothing` > 0): `-log sigmoid(beta h)`, per pair.

    Returns:
        `(losses, h)`, both `(batch,)`.
    """
    h = log_ratio_difference(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    losses = (
        -F.logsigmoid(beta * h) * (1 - label_smoothing) - F.logsigmoid(-beta * h) * label_smoothing
    )
    return losses, h
