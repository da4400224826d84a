"""Stage 9, the data report: counts and cost per stage, label flips, refinement, disagreement.

Writes `report.json`, `report.md`, `usage.json` and `disagreement.png` (a matplotlib heatmap,
rendered with the Agg backend, of at most `max_heatmap_users` users).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fspo_train.synth.context import STAGE_FILES, SynthContext
from fspo_train.synth.stages.labels import PairVerdict
from fspo_train.synth.store import write_json_atomic

__all__ = ["run_report"]

_USAGE_KEYS = ("requests", "input_tokens", "output_tokens", "total_tokens", "missing_usage")


def _stage_stats(ctx: SynthContext) -> tuple[dict[str, Any], dict[str, Any]]:
    stages: dict[str, Any] = {}
    per_model: dict[str, dict[str, int]] = {}
    for stage, files in STAGE_FILES.items():
        for filename in files:
            if not filename.endswith(".jsonl") or stage == "records":
                continue
            rows = list(ctx.store(filename))
            stats = {"items": len(rows), "ok": 0, "failed": 0, "retried": 0}
            stats |= dict.fromkeys(_USAGE_KEYS, 0)
            for row in rows:
                stats["ok" if row["status"] == "ok" else "failed"] += 1
                stats["retried"] += int(row.get("attempts", 1) > 1)
                usage = row.get("usage") or {}
                model = row.get("model")
                for key in _USAGE_KEYS:
                    stats[key] += usage.get(key, 0)
                    if model:
                        per_model.setdefault(model, dict.fromkeys(_USAGE_KEYS, 0))[key] += (
                            usage.get(key, 0)
                        )
            stages[filename.removesuffix(".jsonl")] = stats
    return stages, per_model


def _flip_rate(verdicts: dict[str, list[PairVerdict]]) -> dict[str, Any]:
    both = [v for vs in verdicts.values() for v in vs if not v.failed]
    flips = sum(1 for v in both if not v.consistent)
    return {
        "pairs_with_both_labels": len(both),
        "order_flips": flips,
        "flip_rate": flips / len(both) if both else None,
        "unexplained": sum(1 for v in both if not v.explained),
    }


def _refinement(ctx: SynthContext) -> list[dict[str, Any]]:
    rounds: dict[int, dict[str, Any]] = {}
    for row in ctx.store("refinements.jsonl"):
        r = rounds.setdefault(row["meta"]["round"], {"users": 0, "refined": 0, "failed": 0})
        r["users"] += 1
        r["refined" if row["status"] == "ok" else "failed"] += 1
    relabels: dict[int, int] = {}
    for row in ctx.store("relabels.jsonl"):
        relabels[row["meta"]["round"]] = relabels.get(row["meta"]["round"], 0) + 1
    return [
        {"round": k, **v, "relabel_requests": relabels.get(k, 0)} for k, v in sorted(rounds.items())
    ]


def _heatmap(path: Path, disagreement: dict[str, Any], max_users: int) -> bool:
    matrix = disagreement.get("matrix")
    users = disagreement.get("matrix_users", [])
    if not matrix or len(users) < 2:  # noqa: PLR2004 - a matrix needs two users
        return False
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = min(len(users), max_users)
    data = np.array([[np.nan if x is None else x for x in row[:n]] for row in matrix[:n]])
    size = max(4.0, 0.35 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(data, vmin=0, vmax=1, cmap="viridis")
    labels = [u if len(u) <= 18 else u[:17] + "…" for u in users[:n]]  # noqa: PLR2004
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_title(f"Cross-user disagreement (mean {disagreement['mean_disagreement'] or 0:.2f})")
    fig.colorbar(image, ax=ax, label="fraction of shared pairs labelled differently")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _per_user(
    initial: dict[str, list[PairVerdict]], final: dict[str, list[PairVerdict]]
) -> dict[str, dict[str, int]]:
    out = {}
    for user, verdicts in sorted(final.items()):
        out[user] = {
            "pairs": len(verdicts),
            "kept": sum(1 for v in verdicts if v.consistent),
            "failed": sum(1 for v in verdicts if v.failed),
            "flips_initial": sum(
                1 for v in initial.get(user, []) if not v.failed and not v.consistent
            ),
            "flips_final": sum(1 for v in verdicts if not v.failed and not v.consistent),
            "label_round": max((v.round for v in verdicts), default=0),
        }
    return out


def _examples(ctx: SynthContext, per_user: int, max_users: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    path = ctx.run_dir / "records.jsonl"
    if not path.exists():
        return out
    with path.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            user = rec["user_id"]
            if user not in out and len(out) >= max_users:
                continue
            shots = out.setdefault(user, [])
            if len(shots) < per_user:
                shots.append({k: rec[k] for k in ("question", "chosen", "rejected")})
    return out


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _markdown(report: dict[str, Any], max_table_users: int = 30) -> str:
    lines = [f"# Synthetic preference data report: {report['domain']}", ""]
    lines += [f"Run folder `{report['run_dir']}`, seed {report['seed']}.", ""]
    lines += ["## Stages", "", "| file | items | ok | failed | retried | requests | tokens |"]
    lines += ["|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in report["stages"].items():
        lines.append(
            f"| {name} | {s['items']} | {s['ok']} | {s['failed']} | {s['retried']} | "
            f"{s['requests']} | {s['total_tokens']} |"
        )
    rec = report["records"]
    lines += ["", "## Labels", ""]
    for key in ("initial", "final"):
        f = report["labels"][key]
        rate = "n/a" if f["flip_rate"] is None else f"{f['flip_rate']:.1%}"
        lines.append(
            f"- {key}: {f['pairs_with_both_labels']} user-pairs, {f['order_flips']} flipped under "
            f"order swap ({rate}), {f['unexplained']} unexplained by the description"
        )
    lines += [
        (
            f"- records kept: {rec.get('records', 0)}; dropped: {rec.get('order_inconsistent', 0)} "
            f"order-inconsistent, {rec.get('label_failed', 0)} with a failed label, "
            f"{rec.get('invalid', 0)} invalid"
        ),
        f"- per split: {rec.get('per_split', {})}",
        "",
        "## Persona refinement",
        "",
    ]
    if not report["refinement"]:
        lines.append("No refinement rounds ran.")
    for r in report["refinement"]:
        lines.append(
            f"- round {r['round']}: {r['users']} users needed it, {r['refined']} refined, "
            f"{r['failed']} failed, {r['relabel_requests']} relabel requests"
        )
    d = report["disagreement"]
    mean = "n/a" if d.get("mean_disagreement") is None else f"{d['mean_disagreement']:.3f}"
    lines += ["", "## Cross-user disagreement", ""]
    lines.append(
        f"Mean {mean} over {d.get('user_pairs_compared', 0)} user pairs, threshold "
        f"{d.get('threshold')}: "
        + (
            "**flagged for regeneration**."
            if d.get("needs_regeneration")
            else "within the threshold."
        )
    )
    if report["heatmap"]:
        lines += ["", "![disagreement](disagreement.png)"]
    lines += ["", "## Users", ""]
    lines += ["| user | pairs | kept | flips before refinement | flips after | label round |"]
    lines += ["|---|---:|---:|---:|---:|---:|"]
    per_user = report["per_user"]
    for user, u in list(per_user.items())[:max_table_users]:
        lines.append(
            f"| {user} | {u['pairs']} | {u['kept']} | {u['flips_initial']} | {u['flips_final']} "
            f"| {u['label_round']} |"
        )
    if len(per_user) > max_table_users:
        lines.append(f"\n({len(per_user) - max_table_users} more users in report.json)")
    lines += ["", "## Examples per user", ""]
    for user, shots in report["examples"].items():
        lines.append(f"### {user}")
        lines.append("")
        for shot in shots:
            lines.append(f"- **Q:** {_clip(shot['question'])}")
            lines.append(f"  - chosen: {_clip(shot['chosen'])}")
            lines.append(f"  - rejected: {_clip(shot['rejected'])}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def run_report(
    ctx: SynthContext,
    *,
    initial: dict[str, list[PairVerdict]],
    final: dict[str, list[PairVerdict]],
    records: dict[str, Any],
    disagreement: dict[str, Any],
    max_heatmap_users: int = 40,
    examples_per_user: int = 2,
    max_example_users: int = 12,
) -> dict[str, Any]:
    """Write the report files and return the report dict."""
    stages, per_model = _stage_stats(ctx)
    heatmap = _heatmap(ctx.run_dir / "disagreement.png", disagreement, max_heatmap_users)
    report: dict[str, Any] = {
        "domain": ctx.domain.name,
        "run_dir": str(ctx.run_dir),
        "seed": ctx.seed,
        "stages": stages,
        "labels": {"initial": _flip_rate(initial), "final": _flip_rate(final)},
        "records": records,
        "refinement": _refinement(ctx),
        "disagreement": {
            k: v
            for k, v in disagreement.items()
            if k not in {"matrix", "shared_pairs", "matrix_users"}
        },
        "heatmap": heatmap,
        "per_user": _per_user(initial, final),
        "examples": _examples(ctx, examples_per_user, max_example_users),
    }
    write_json_atomic(ctx.run_dir / "usage.json", {"stages": stages, "models": per_model})
    write_json_atomic(ctx.run_dir / "report.json", report)
    (ctx.run_dir / "report.md").write_text(_markdown(report), encoding="utf-8")
    return report
