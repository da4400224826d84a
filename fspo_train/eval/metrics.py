"""Evaluation metrics: implicit-reward accuracy and pairwise win rate (pure Python, no torch).

Implicit reward (DPO/IPO, paper Eq. 4): r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x)), with the
log-probabilities summed over the completion tokens. A pair is ranked correctly when
r(x, chosen) > r(x, rejected).

Tie rule: a pair whose reward margin is within `tie_tolerance` of zero counts as half a
correct ranking, so a policy equal to its reference scores exactly 0.5 (chance), not 0 as a
strict `>` would give (the official code's `rewards/accuracies`). Win rates follow the same
rule: a judged comparison scores 1 (win), 0 (loss) or anything in between (0.5: tie).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "AccuracyResult",
    "PairLogProbs",
    "WinRateResult",
    "implicit_reward_accuracy",
    "ranking_score",
    "win_rate",
]

DEFAULT_TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PairLogProbs:
    """Summed completion log-probabilities of one preference pair under policy and reference."""

    policy_chosen: float
    policy_rejected: float
    reference_chosen: float
    reference_rejected: float

    def rewards(self, beta: float) -> tuple[float, float]:
        """(reward of chosen, reward of rejected) = β · log-ratio policy / reference."""
        return (
            beta * (self.policy_chosen - self.reference_chosen),
            beta * (self.policy_rejected - self.reference_rejected),
        )


@dataclass(frozen=True)
class AccuracyResult:
    """Implicit-reward accuracy over a set of pairs."""

    accuracy: float
    """Share of pairs ranked correctly (ties count half)."""
    margin: float
    """Mean reward margin, r(chosen) - r(rejected)."""
    chosen_reward: float
    rejected_reward: float
    ties: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class WinRateResult:
    """Pairwise win rate of a method against a baseline."""

    win_rate: float
    """Mean score: wins count 1, ties 0.5 (order-inconsistent verdicts), losses 0."""
    wins: int
    ties: int
    losses: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-ready dict."""
        return asdict(self)


def _ranking(margin: float, tie_tolerance: float) -> float:
    if abs(margin) <= tie_tolerance:
        return 0.5
    return 1.0 if margin > 0 else 0.0


def ranking_score(
    pair: PairLogProbs, beta: float, *, tie_tolerance: float = DEFAULT_TIE_TOLERANCE
) -> float:
    """1.0 when the implicit reward ranks the pair right, 0.0 when wrong, 0.5 for a tie.

    Example:
        >>> ranking_score(PairLogProbs(-1.0, -5.0, -2.0, -2.0), beta=0.1)
        1.0
    """
    chosen, rejected = pair.rewards(beta)
    return _ranking(chosen - rejected, tie_tolerance)


def implicit_reward_accuracy(
    pairs: Iterable[PairLogProbs],
    beta: float,
    *,
    tie_tolerance: float = DEFAULT_TIE_TOLERANCE,
) -> AccuracyResult:
    """Implicit-reward accuracy, mean margin and mean rewards of `pairs`.

    Example:
        >>> pairs = [PairLogProbs(-1.0, -5.0, -2.0, -2.0), PairLogProbs(-3.0, -3.0, -3.0, -3.0)]
        >>> implicit_reward_accuracy(pairs, beta=0.1).accuracy  # one right, one tie
        0.75
    """
    if beta <= 0:
        msg = f"`beta` must be > 0, got {beta}."
        raise ValueError(msg)
    rewards = [pair.rewards(beta) for pair in pairs]
    if not rewards:
        msg = "No pairs to score: the evaluation split is empty."
        raise ValueError(msg)
    scores = [_ranking(chosen - rejected, tie_tolerance) for chosen, rejected in rewards]
    correct = sum(scores)
    ties = scores.count(0.5)
    n = len(rewards)
    return AccuracyResult(
        accuracy=correct / n,
        margin=sum(c - r for c, r in rewards) / n,
        chosen_reward=sum(c for c, _ in rewards) / n,
        rejected_reward=sum(r for _, r in rewards) / n,
        ties=ties,
        n=n,
    )


def win_rate(scores: Sequence[float]) -> WinRateResult:
    """Aggregate per-comparison scores in [0, 1] (1 = win, 0.5 = tie, 0 = loss).

    Example:
        >>> win_rate([1.0, 0.5, 0.0, 1.0]).win_rate
        0.625
    """
    if not scores:
        msg = "No comparisons to aggregate."
        raise ValueError(msg)
    for score in scores:
        if not 0.0 <= score <= 1.0:
            msg = f"A judge score must be in [0, 1], got {score}."
            raise ValueError(msg)
    wins = sum(1 for s in scores if s == 1.0)
    losses = sum(1 for s in scores if s == 0.0)
    return WinRateResult(
        win_rate=sum(scores) / len(scores),
        wins=wins,
        ties=len(scores) - wins - losses,
        losses=losses,
        n=len(scores),
    )
