"""Combine several seeds' results: each number's mean and its 95% interval across seeds.

The interval is Student t over the per-seed values (`fspo_train.eval.intervals.seed_interval`).

Example:
    >>> one = {
    ...     "meta": {"seed": 0, "wall_time_s": 1.0},
    ...     "methods": {
    ...         "fspo": {
    ...             "label": "FSPO",
    ...             "win_rate": {"trained": 70.0},
    ...             "accuracy": {"trained": 80.0},
    ...         }
    ...     },
    ...     "shots_curve": {},
    ... }
    >>> two = {
    ...     "meta": {"seed": 1, "wall_time_s": 2.0},
    ...     "methods": {
    ...         "fspo": {
    ...             "label": "FSPO",
    ...             "win_rate": {"trained": 74.0},
    ...             "accuracy": {"trained": 84.0},
    ...         }
    ...     },
    ...     "shots_curve": {},
    ... }
    >>> combined = combine_seeds([one, two])
    >>> combined["methods"]["fspo"]["win_rate"], combined["meta"]["seeds"]
    ({'trained': 72.0}, [0, 1])
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from fspo_train.eval.intervals import seed_interval
from fspo_train.reviews_mini.report import markdown_table

__all__ = ["combine_seeds"]

PERCENT = (0.0, 100.0)
"""Every combined number is a percentage (win rate, accuracy): intervals stay inside it."""


def _combine(
    per_seed: Sequence[dict[str, float]],
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, list[float]]]:
    """(mean, [low, high], values per seed) for each key present in every seed."""
    keys = [k for k in per_seed[0] if all(k in values for values in per_seed)]
    means, intervals, values = {}, {}, {}
    for key in keys:
        seen = [float(v[key]) for v in per_seed]
        mean, low, high = seed_interval(seen, bounds=PERCENT)
        means[key], intervals[key], values[key] = round(mean, 2), [low, high], seen
    return means, intervals, values


def combine_seeds(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One result from several seeds' results (same methods): means with 95% seed intervals.

    Each method's `win_rate`, `accuracy`, `win_rate_by_user` and the shots curve become the
    mean over seeds; `*_ci` the Student-t interval across seeds; `*_by_seed` the values. The
    samples and adapters are the first seed's; `meta` lists the seeds and their wall times.
    """
    if not results:
        msg = "No results to combine."
        raise ValueError(msg)
    combined = copy.deepcopy(dict(results[0]))
    for name, row in combined["methods"].items():
        rows = [r["methods"][name] for r in results]
        for field in ("win_rate", "accuracy", "win_rate_by_user"):
            if all(field in r for r in rows):
                row[field], row[f"{field}_ci"], row[f"{field}_by_seed"] = _combine(
                    [r[field] for r in rows]
                )
        for per_group in ("comparisons", "pairs"):
            if all(per_group in r for r in rows):
                row[per_group] = {
                    g: sum(r[per_group].get(g, 0) for r in rows) for g in row[per_group]
                }
    curves = [r.get("shots_curve") or {} for r in results]
    combined["shots_curve"], combined["shots_curve_ci"] = {}, {}
    for k in curves[0]:
        if all(k in c for c in curves):
            mean, interval, _ = _combine([c[k] for c in curves])
            combined["shots_curve"][k], combined["shots_curve_ci"][k] = mean, interval
    seeds = [r["meta"]["seed"] for r in results]
    combined["meta"] = {
        **combined.get("meta", {}),
        "seed": seeds[0],
        "seeds": seeds,
        "wall_time_s": round(sum(r["meta"]["wall_time_s"] for r in results), 1),
        "wall_time_s_by_seed": [r["meta"]["wall_time_s"] for r in results],
    }
    combined["interval"] = (
        f"95% Student-t intervals across {len(seeds)} seeds (mean of the per-seed values)"
        if len(seeds) > 1
        else combined.get("interval", "")
    )
    combined["per_seed_tables"] = {
        str(s): r.get("table_markdown", "") for s, r in zip(seeds, results, strict=True)
    }
    combined["table_markdown"] = markdown_table(combined)
    return combined
