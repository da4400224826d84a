"""Plots of evaluation results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_results"]


def _panel(ax: Any, section: dict[str, dict[str, Any]], metric: str, title: str) -> None:
    methods = list(section)
    splits: list[str] = []
    for per_split in section.values():
        splits += [s for s in per_split if s not in splits]
    width = 0.8 / max(len(splits), 1)
    for j, split in enumerate(splits):
        xs = [i + (j - (len(splits) - 1) / 2) * width for i in range(len(methods))]
        values = [100 * section[m].get(split, {}).get(metric, float("nan")) for m in methods]
        bars = ax.bar(xs, values, width=width, label=split)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.axhline(50, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(methods)), methods, rotation=20)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)


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
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (results.get("win_rate") or {}, "win_rate", f"Win rate vs {results.get('baseline')}"),
        (results.get("accuracy") or {}, "accuracy", "Implicit-reward accuracy"),
    ]
    panels = [p for p in panels if p[0]]
    if not panels:
        msg = "Nothing to plot: the results have neither win rates nor accuracies."
        raise ValueError(msg)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (section, metric, title) in zip(axes[0], panels, strict=True):
        _panel(ax, section, metric, title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
