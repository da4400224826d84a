"""95% confidence intervals for the evaluation's rates (pure Python, no scipy).

- Over comparisons (`wilson_interval`): a win rate or an accuracy is a mean of scores in
  {0, 0.5, 1} (ties count half). The Wilson score interval is computed with the score sum as
  the number of successes, which treats a tie as half a win; with no ties it is the exact
  Wilson interval of a binomial proportion.
- Across seeds (`seed_interval`): the mean of one number per seed, with a Student-t interval
  (the seeds' spread, not the comparisons').
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Z_95", "seed_interval", "t_quantile_95", "wilson_interval"]

Z_95 = 1.959963984540054
"""The standard normal's 97.5% quantile."""

_T_95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042,
}  # fmt: skip
"""Student t 97.5% quantiles by degrees of freedom (a missing df uses the next smaller one)."""


def t_quantile_95(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (normal above 30).

    Example:
        >>> t_quantile_95(2)
        4.303
    """
    if df < 1:
        msg = f"Degrees of freedom must be >= 1, got {df}."
        raise ValueError(msg)
    if df > max(_T_95):
        return Z_95
    return _T_95[max(k for k in _T_95 if k <= df)]


def wilson_interval(scores: Sequence[float], z: float = Z_95) -> tuple[float, float]:
    """The 95% Wilson interval (fractions) of the mean of `scores` in [0, 1].

    Example:
        >>> lo, hi = wilson_interval([1.0] * 8 + [0.0] * 2)
        >>> round(lo, 3), round(hi, 3)
        (0.49, 0.943)
    """
    n = len(scores)
    if not n:
        msg = "No scores: an interval needs at least one comparison."
        raise ValueError(msg)
    p = sum(scores) / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def seed_interval(
    values: Sequence[float], bounds: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of one value per seed with its 95% Student-t interval.

    One seed has no spread: its interval is the value itself (the report says so). `bounds`
    clips the interval to the values' range (a percentage cannot exceed 100, however few
    the seeds and wide their spread).

    Example:
        >>> seed_interval([70.0, 74.0, 72.0])
        (72.0, 67.0313, 76.9687)
        >>> seed_interval([60.0, 100.0, 95.0], bounds=(0.0, 100.0))  # unbounded: up to 139.1
        (85.0, 30.8551, 100.0)
    """
    n = len(values)
    if not n:
        msg = "No values: an interval needs at least one seed."
        raise ValueError(msg)
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile_95(n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, round(low, 4), round(high, 4)
