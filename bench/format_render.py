"""`PromptFormat.render` time against the number of `special_tokens` in `fspo_format.json`.

Every user text is neutralised against the format's special tokens. This measures one K=8
render (25 user texts, none holding a special token, the usual case) for formats with 0 to
16,384 special tokens (the cap; Llama 3 has 256), plus a query that does hold one. The
tokens are Gemma-like `<unusedN>` (which the built-in patterns do not already catch).

Run:

    python bench/format_render.py     # writes bench/results/format_render.{json,md}
    # the code before the fix, for comparison (a checkout of it on PYTHONPATH):
    PYTHONPATH=path/to/old-checkout python bench/format_render.py --stem format_render_before
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from langchain_fspo import PreferenceExample, PromptFormat, prompt_format

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.recorded import portable, recorded_command

CAPPED = hasattr(prompt_format, "MAX_SPECIAL_TOKENS")  # the code before the fix had no cap
MAX_SPECIAL_TOKENS = getattr(prompt_format, "MAX_SPECIAL_TOKENS", 16_384)

REPO = Path(__file__).resolve().parents[1]
COUNTS = (0, 256, 4096, MAX_SPECIAL_TOKENS)
SHOTS = [
    PreferenceExample(
        prompt=f"Question {i}: which film would you watch tonight, and why?",
        chosen="A quiet, clever science-fiction film with a strong score. " * 3,
        rejected="Whatever is on.",
    )
    for i in range(8)
]


def _time(fn: object, repeats: int) -> dict[str, float]:
    assert callable(fn)
    fn()  # warm-up (builds and caches the token pattern)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e3)
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(samples),
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--stem", default="format_render", help="result file name")
    args = parser.parse_args(argv)
    rows = []
    for count in COUNTS:
        tokens = tuple(f"<unused{i}>" for i in range(count))
        fmt = PromptFormat(style="chat", num_shots=8, special_tokens=tokens)
        started = time.perf_counter()
        fmt.render(SHOTS, "What next?")
        first_ms = (time.perf_counter() - started) * 1e3
        plain = _time(lambda fmt=fmt: fmt.render(SHOTS, "What should I watch?"), args.repeats)
        hit = "Ignore this <unused0> please" if count else "plain"
        hostile = _time(lambda fmt=fmt, hit=hit: fmt.render(SHOTS, hit), args.repeats)
        rows.append(
            {
                "special_tokens": count,
                "first_render_ms": first_ms,
                "render_median_ms": plain["median_ms"],
                "render_p95_ms": plain["p95_ms"],
                "render_with_a_token_median_ms": hostile["median_ms"],
            }
        )
        print(rows[-1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    ).stdout.strip()
    report = {
        "benchmark": "format_render",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "git": commit,
        "langchain_fspo": portable(str(Path(prompt_format.__file__).parents[1])),
        "command": recorded_command("bench/format_render.py"),
        "repeats": args.repeats,
        "rows": rows,
    }
    lines = [
        "# `PromptFormat.render` and the number of special tokens",
        "",
        (
            f"{report['date']}, {report['machine']['platform']}, Python "
            f"{report['machine']['python']}, git {commit}, langchain_fspo from "
            f"`{report['langchain_fspo']}`. Command: `{report['command']}`. "
            f"One K=8 chat render, {args.repeats} repeats after a warm-up; the first render "
            "builds the format's token pattern once."
        ),
        "",
        (
            "| special tokens | first render ms | render median ms | p95 ms | "
            "query holding a token, median ms |"
        ),
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['special_tokens']:,} | {r['first_render_ms']:.1f} | {r['render_median_ms']:.3f} | "
        f"{r['render_p95_ms']:.3f} | {r['render_with_a_token_median_ms']:.3f} |"
        for r in rows
    ]
    lines += [
        "",
        (
            f"More than {MAX_SPECIAL_TOKENS:,} special tokens are refused when the format "
            "loads (`PromptFormatError`)."
            if CAPPED
            else "This code has no cap on the number of special tokens."
        ),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{args.stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
