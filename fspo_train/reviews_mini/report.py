"""Write a benchmark result as JSON, a Markdown table and a PNG (`fspo_train.eval.plots`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fspo_train.eval.plots import plot_benchmark

__all__ = ["markdown_table", "write_results"]

GROUPS = ("trained", "interpolated")


def _cell(value: float | None, interval: list[float] | None = None) -> str:
    """`value` with one decimal, and its 95% interval when there is one: `69.8 (60.1-78.0)`."""
    if value is None:
        return "-"
    if not interval:
        return f"{value:.1f}"
    return f"{value:.1f} ({interval[0]:.1f}-{interval[1]:.1f})"


def markdown_table(results: dict[str, Any]) -> str:
    """The results as Markdown: the methods table, then accuracy against the number of shots.

    A number with a 95% interval in the result (`win_rate_ci`, `accuracy_ci`,
    `shots_curve_ci`) is printed with it; `results["interval"]` says which interval it is.

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
        win_ci, acc_ci = row.get("win_rate_ci", {}), row.get("accuracy_ci", {})
        cells = [_cell(win.get(g), win_ci.get(g)) for g in GROUPS]
        cells += [_cell(acc.get(g), acc_ci.get(g)) for g in GROUPS]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    if results.get("interval"):
        lines += ["", f"In parentheses: {results['interval']}."]
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
        curve_ci = results.get("shots_curve_ci") or {}
        for group in GROUPS:
            values = [_cell(curve[k].get(group), curve_ci.get(k, {}).get(group)) for k in shots]
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
    png_path = plot_benchmark(results, out / f"{stem}.png", GROUPS)
    return {"json": json_path, "markdown": md_path, "png": png_path}
