"""Plots of evaluation results (matplotlib, Agg backend: no display needed).

- `plot_results`: what `fspo eval` computed (`eval_results.json`): win rate and implicit-reward
  accuracy per method, one bar per split.
- `plot_benchmark`: the Reviews-mini table: win rate per method, one bar per user group, and
  FSPO's accuracy against the number of shots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_benchmark", "plot_results"]


def _pyplot() -> Any:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(
    ax: Any,
    labels: Sequence[str],
    series: dict[str, list[float]],
    *,
    ylabel: str,
    ymax: float,
    intervals: dict[str, list[Sequence[float] | None]] | None = None,
) -> None:
    """Grouped bars in % (one group per label, one bar per series) over a dashed 50% line.

    `intervals` (series -> per bar `[low, high]` or None) are drawn as error bars.
    """
    width = 0.8 / max(len(series), 1)
    for j, (name, values) in enumerate(series.items()):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(labels))]
        bounds = (intervals or {}).get(name)
        errors = None
        if bounds:
            errors = [
                [v - b[0] if b else 0.0 for v, b in zip(values, bounds, strict=True)],
                [b[1] - v if b else 0.0 for v, b in zip(values, bounds, strict=True)],
            ]
        bars = ax.bar(xs, values, width=width, label=name, yerr=errors, capsize=2)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.axhline(50, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylim(0, ymax)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    _pyplot().close(fig)
    return out


def plot_results(results: dict[str, Any], path: str | Path) -> Path:
    """Bar charts of win rate and implicit-reward accuracy per method, one bar per split.

    `results` is the dict `fspo_train.eval.evaluate.run_evaluation` returns (or its JSON file).
    The dashed line marks 50% (the baseline's win rate; chance accuracy).

    Example:
        >>> import tempfile
        >>> results = {"win_rate": {"fspo": {"trained": {"win_rate": 0.8}}}, "accuracy": {}}
        >>> plot_results(results, tempfile.mktemp(suffix=".png")).suffix
        '.png'
    """
    panels = [
        (results.get("win_rate") or {}, "win_rate", f"Win rate vs {results.get('baseline')}"),
        (results.get("accuracy") or {}, "accuracy", "Implicit-reward accuracy"),
    ]
    panels = [p for p in panels if p[0]]
    if not panels:
        msg = "Nothing to plot: the results have neither win rates nor accuracies."
        raise ValueError(msg)
    fig, axes = _pyplot().subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (section, metric, title) in zip(axes[0], panels, strict=True):
        splits: list[str] = []
        for per_split in section.values():
            splits += [s for s in per_split if s not in splits]
        series = {
            split: [100 * section[m].get(split, {}).get(metric, float("nan")) for m in section]
            for split in splits
        }
        _bars(ax, list(section), series, ylabel=f"{metric.replace('_', ' ')} (%)", ymax=105)
        ax.set_title(title)
    return _save(fig, path, dpi=120)


def plot_benchmark(
    results: dict[str, Any], path: str | Path, groups: Sequence[str] = ("trained", "interpolated")
) -> Path:
    """Two panels: win rate per method (per user group), FSPO's accuracy against shots (%).

    95% intervals (`win_rate_ci`, `shots_curve_ci`), where the results have them, are drawn
    as error bars and a shaded band.
    """
    methods = list(results["methods"].values())
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(12, 4.5))
    series = {
        f"{group} users": [m.get("win_rate", {}).get(group, 0.0) for m in methods]
        for group in groups
    }
    intervals = {
        f"{group} users": [m.get("win_rate_ci", {}).get(group) for m in methods] for group in groups
    }
    labels = [m["label"] for m in methods]
    _bars(left, labels, series, ylabel="win rate against base (%)", ymax=105, intervals=intervals)
    left.set_title("Held-out questions, exact judge")
    curve = results.get("shots_curve") or {}
    if curve:
        shots = [int(k) for k in curve]
        curve_ci = results.get("shots_curve_ci") or {}
        for group in groups:
            right.plot(shots, [curve[str(k)].get(group) for k in shots], marker="o", label=group)
            bands = [curve_ci.get(str(k), {}).get(group) for k in shots]
            if all(bands):
                low = [b[0] for b in bands if b]
                high = [b[1] for b in bands if b]
                right.fill_between(shots, low, high, alpha=0.15)
        right.set_xticks(shots)
        right.set_xlabel("shots in the prompt")
        right.set_ylabel("implicit-reward accuracy (%)")
        right.set_ylim(40, 100)
        right.set_title("FSPO: accuracy against the number of shots")
        right.legend()
    return _save(fig, path, dpi=110)
