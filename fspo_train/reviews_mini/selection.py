"""Choose each method's hyperparameters on the validation split, by one rule for every method.

The rule (`select_on_validation`): for each method, the candidate (a grid point: learning
rate, epochs, ...) with the highest validation score; ties go to the cheaper candidate
(fewer training steps), then to the earlier one in the grid. The test split plays no part:
the caller evaluates it once, with the points chosen here. Every method, FSPO and the
baselines and the oracle alike, goes through the same rule, so none is tuned with more care
than another.

Example:
    >>> scores = {
    ...     "fspo": [Candidate("lr=3e-4", 70.0, 200), Candidate("lr=6e-4", 75.0, 200)],
    ...     "oracle": [Candidate("lr=3e-4", 80.0, 100), Candidate("lr=6e-4", 80.0, 200)],
    ... }
    >>> {m: c.name for m, c in select_on_validation(scores).items()}
    {'fspo': 'lr=6e-4', 'oracle': 'lr=3e-4'}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Candidate", "select_on_validation"]


@dataclass(frozen=True)
class Candidate:
    """One hyperparameter setting of one method, scored on the validation split."""

    name: str
    """The grid point, e.g. `lr=6e-4,epochs=1`."""
    validation_score: float
    """Implicit-reward accuracy (%) on validation pairs, against the common reference."""
    steps: int
    """Optimizer steps the setting trains for (the tie-break: cheaper wins)."""


def select_on_validation(
    candidates: Mapping[str, Sequence[Candidate]], *, tolerance: float = 1e-9
) -> dict[str, Candidate]:
    """The chosen candidate of each method: best validation score, ties to fewer steps.

    Equal steps too: the first in grid order. Raises `ValueError` for a method without
    candidates.
    """
    chosen = {}
    for method, options in candidates.items():
        if not options:
            msg = f"No candidates for method {method!r}: its grid is empty."
            raise ValueError(msg)
        best = max(c.validation_score for c in options)
        tied = [c for c in options if c.validation_score >= best - tolerance]
        chosen[method] = min(tied, key=lambda c: c.steps)  # min keeps the first of equals
    return chosen
