"""`make demo`: FSPO end to end, offline, on a laptop's CPU, in about thirteen minutes.

Run it with `python -m fspo_train.demo` (or `make demo`; `DEMO_ARGS="--seed 1"`). It:

1. builds Reviews-mini (reviews of invented titles; users who prefer positive or negative,
   concise or verbose reviews), labels preference pairs with the exact judge;
2. trains a tiny Llama from scratch, then FSPO (Pref-FT, then IPO, LoRA) and the baselines,
   printing the table of win rates and implicit-reward accuracies on held-out questions;
3. saves the FSPO adapter with its `fspo_format.json` under `--out`;
4. serves it with LangChain: `ChatPromptTemplate | ChatFSPO | StrOutputParser`, with
   `ChatFSPO.from_pretrained(adapter, backend="local")` reading each user's examples from a
   SQLite `PreferenceMemory` (16 labelled pairs per user, 4 picked per request), and prints two
   users' reviews of the same unseen title side by side, then their mean sentiment and length
   over 12 more unseen titles.

`--full` is a GPU size (wider model, more data, 8 shots).
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import textwrap
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["main"]

DEMO_USERS = ("positive+concise", "negative+verbose")
"""Two users with opposite preferences on both axes (interpolated: never trained on)."""
LABELLED_PER_USER = 16
"""Preferences each user has labelled; `ChatFSPO` picks K of them per request (`diverse`).

The shots show only the preferred review, and a combination user's preferred review is often
the lesser evil (a negative+verbose user prefers a long positive review to a short negative
one), so 4 fixed examples can point the sentiment either way; 16 to pick from average that
out (measured in `bench/results/reviews_mini_notes.md`)."""
SUMMARY_TITLES = 12
"""More unseen titles each user gets a review of, summarised as mean sentiment and length."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fspo_train.demo",
        description="Train FSPO on Reviews-mini from scratch and serve it with LangChain.",
    )
    parser.add_argument("--full", action="store_true", help="GPU size: bigger model, more data.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of data, model and training.")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("demo_output"),
        help="Output folder (default: %(default)s).",
    )
    parser.add_argument(
        "--users",
        nargs=2,
        default=list(DEMO_USERS),
        metavar=("USER_A", "USER_B"),
        help="The two users whose reviews are compared (default: %(default)s).",
    )
    return parser.parse_args(argv)


def _side_by_side(left: str, right: str, titles: tuple[str, str], width: int = 44) -> str:
    a = textwrap.wrap(left, width) or [""]
    b = textwrap.wrap(right, width) or [""]
    rows = [f"{titles[0]:<{width}} | {titles[1]}", "-" * width + "-+-" + "-" * width]
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else ""
        y = b[i] if i < len(b) else ""
        rows.append(f"{x:<{width}} | {y}")
    return "\n".join(rows)


def _serve(
    out: Path,
    adapter: Path,
    domain: Any,
    users: list[str],
    seed: int,
    *,
    shots_from: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Serve `adapter` to `users` from a fresh SQLite memory; return their reviews and summary.

    Each user's memory holds `LABELLED_PER_USER` of their own labelled pairs, or those of
    `shots_from[user]` (another of `users`): with every user given the same pairs, greedy
    decoding gives them the same reviews (the control of the pipeline test's personalisation
    check).
    """
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableConfig

    from fspo_train.reviews_mini.data import build_records
    from langchain_fspo import ChatFSPO, PreferenceMemory

    memory_path = out / "memory.sqlite"
    memory_path.unlink(missing_ok=True)
    memory = PreferenceMemory.sqlite(memory_path)
    records = build_records(domain, [domain.user(u) for u in users], split="train", seed=seed)
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not secrets
    labelled = {
        user_id: rng.sample([r for r in records if r.user_id == user_id], LABELLED_PER_USER)
        for user_id in users
    }
    for user_id in users:
        for record in labelled[(shots_from or {}).get(user_id, user_id)]:
            memory.add(
                user_id, prompt=record.question, chosen=record.chosen, rejected=record.rejected
            )
    chat = ChatFSPO.from_pretrained(
        adapter, backend="local", memory=memory, shot_strategy="diverse", max_tokens=80
    )
    prompt = ChatPromptTemplate.from_messages([("human", "{request}")])
    chain = prompt | chat | StrOutputParser()
    held_out = domain.questions("test")
    question = held_out[-1]
    reviews = {
        user_id: chain.invoke(
            {"request": question.text}, config={"configurable": {"user_id": user_id}}
        )
        for user_id in users
    }
    # One title can go either way by chance: the same users on more unseen titles.
    more = held_out[-1 - SUMMARY_TITLES : -1]
    summary = {}
    for user_id in users:
        config: RunnableConfig = {"configurable": {"user_id": user_id}}
        outputs = chain.batch([{"request": q.text} for q in more], config=config)
        scores = [domain.score(q, text) for q, text in zip(more, outputs, strict=True)]
        summary[user_id] = {
            "sentiment": sum(s["sentiment"] for s in scores) / len(scores),
            "words": sum(len(text.split()) for text in outputs) / len(outputs),
        }
    memory.close()
    return {"question": question, "reviews": reviews, "summary": summary, "titles": len(more)}


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit code."""
    args = _parse(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "trl", "peft", "datasets", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from fspo_train.reviews_mini import BenchConfig, run_benchmark
    from fspo_train.reviews_mini.reviews import ReviewsMini

    config = BenchConfig.full(args.seed) if args.full else BenchConfig.cpu(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    domain = ReviewsMini(seed=config.seed, num_questions=config.num_questions)
    for user in args.users:
        domain.user(user)  # fail early on a typo
    print(f"FSPO demo on {domain.name} (seed {args.seed}, {'full' if args.full else 'CPU'} size)")
    print(f"Work folder: {out.resolve()}\n")
    results = run_benchmark(config, out / "run", domain=domain)
    results["meta"]["command"] = "python -m fspo_train.demo " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )

    from fspo_train.reviews_mini.report import write_results

    paths = write_results(results, out, "reviews_mini")
    print("\nHeld-out questions: win rate against the base model (exact judge, both orders,")
    print("ties half) and implicit-reward accuracy, for trained and interpolated users.\n")
    print(results["table_markdown"])
    print(f"Results: {paths['json']}, {paths['markdown']}, {paths['png']}")

    adapter = out / "adapter"
    if adapter.exists():
        shutil.rmtree(adapter)
    shutil.copytree(Path(results["adapters"]["fspo"]), adapter, ignore=shutil.ignore_patterns("_*"))
    print(f"FSPO adapter (with fspo_format.json): {adapter}\n")

    served = _serve(out, adapter, domain, list(args.users), args.seed)
    question = served["question"]
    print(f"ChatPromptTemplate | ChatFSPO | StrOutputParser on an unseen title: {question.text}\n")
    a, b = args.users
    print(_side_by_side(served["reviews"][a], served["reviews"][b], (a, b)))
    print()
    for user_id, review in served["reviews"].items():
        scores = domain.score(question, review)
        print(
            f"{user_id:>18}: sentiment {scores['sentiment']:+.2f}, "
            f"{len(review.split())} words, well-formed "
            f"{'yes' if domain.penalty(question, review) == 0 else 'no'}"
        )
    n = served["titles"]
    print(f"\nOver {n} more unseen titles (mean of each user's {n} reviews):")
    for user_id, mean in served["summary"].items():
        print(f"{user_id:>18}: sentiment {mean['sentiment']:+.2f}, {mean['words']:.1f} words")
    print(f"\nTotal wall time: {results['meta']['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
