"""Write a benchmark result as JSON, a Markdown table and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["markdown_table", "plot_results", "write_results"]

GROUPS = ("trained", "interpolated")


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    """The results as Markdown: the methods table, then accuracy against the number of shots.

    Example:
        >>> res = {
        ...     "methods": {
        ...         "fspo": {
        ...             "label": "FSPO",
        ...             "win_rate": {"trained": 91.0, "interpolated": 80.5},
        ...             "accuracy": {"trained": 97.0},
        ...         }
        ...     },
        ...     "shots_curve": {},
        ... }
        >>> print(markdown_table(res).splitlines()[2])
        | FSPO | 91.0 | 80.5 | 97.0 | - |
    """
    lines = [
        (
            "| Method | Win rate, trained | Win rate, interpolated | Accuracy, trained "
            "| Accuracy, interpolated |"
        ),
        "|---|---|---|---|---|",
    ]
    for row in results["methods"].values():
        win, acc = row.get("win_rate", {}), row.get("accuracy", {})
        cells = [_cell(win.get(g)) for g in GROUPS] + [_cell(acc.get(g)) for g in GROUPS]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    for row in results["methods"].values():
        match = row.get("description_match")
        if match:
            summary = ", ".join(f"{g} {_cell(match.get(g))}%" for g in GROUPS)
            lines += ["", f"{row['label']}: generated user description = the true one: {summary}."]
    lines += _per_user_table(results["methods"])
    curve = results.get("shots_curve") or {}
    if curve:
        shots = list(curve)
        lines += [
            "",
            "Implicit-reward accuracy of FSPO against the number of shots:",
            "",
            "| Users | " + " | ".join(f"{k} shots" for k in shots) + " |",
            "|---|" + "---|" * len(shots),
        ]
        for group in GROUPS:
            values = [_cell(curve[k].get(group)) for k in shots]
            lines.append(f"| {group} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def _per_user_table(methods: dict[str, Any]) -> list[str]:
    """Win rate against the base model per user (which preferences each method serves)."""
    rows = {
        name: row["win_rate_by_user"] for name, row in methods.items() if "win_rate_by_user" in row
    }
    if not rows:
        return []
    users = list(next(iter(rows.values())))
    lines = [
        "",
        "Win rate against the base model, per user:",
        "",
        "| Method | " + " | ".join(users) + " |",
        "|---|" + "---|" * len(users),
    ]
    for name, by_user in rows.items():
        cells = [_cell(by_user.get(u)) for u in users]
        lines.append(f"| {methods[name]['label']} | " + " | ".join(cells) + " |")
    return lines


def plot_results(results: dict[str, Any], path: str | Path) -> Path:
    """Two panels: win rate per method (trained / interpolated), accuracy against shots."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(results["methods"].values())
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.38
    xs = range(len(methods))
    for offset, group in ((-width / 2, "trained"), (width / 2, "interpolated")):
        values = [m.get("win_rate", {}).get(group, 0.0) for m in methods]
        left.bar([x + offset for x in xs], values, width, label=f"{group} users")
    left.axhline(50, color="grey", linewidth=0.8, linestyle="--")
    left.set_xticks(list(xs), [m["label"] for m in methods], rotation=30, ha="right")
    left.set_ylabel("win rate against base (%)")
    left.set_ylim(0, 100)
    left.set_title("Held-out questions, exact judge")
    left.legend()
    curve = results.get("shots_curve") or {}
    if curve:
        shots = [int(k) for k in curve]
        for group in GROUPS:
            right.plot(shots, [curve[str(k)].get(group) for k in shots], marker="o", label=group)
        right.set_xticks(shots)
        right.set_xlabel("shots in the prompt")
        right.set_ylabel("implicit-reward accuracy (%)")
        right.set_ylim(40, 100)
        right.set_title("FSPO: accuracy against the number of shots")
        right.legend()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_results(results: dict[str, Any], out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write `<stem>.json`, `<stem>.md` and `<stem>.png` into `out_dir`; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    md_path = out / f"{stem}.md"
    meta = results.get("meta", {})
    header = [f"# {results.get('title', stem)}", ""]
    if meta:
        header += [f"- {key}: {value}" for key, value in meta.items()] + ["", ""]
    md_path.write_text("\n".join(header) + markdown_table(results), encoding="utf-8")
    png_path = plot_results(results, out / f"{stem}.png")
    return {"json": json_path, "markdown": md_path, "png": png_path}
