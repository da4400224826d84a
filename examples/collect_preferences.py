"""Collect preferences: show a user two answers, record their choice, personalise with it.

Run (offline; builds a tiny random model, so the answers are gibberish and the "user" is
simulated: ada picks the shorter answer, then cannot decide):

    python examples/collect_preferences.py

Choose yourself, or use a real FSPO adapter (folder or Hub repo), persisting to SQLite:

    python examples/collect_preferences.py --interactive \
        --adapter path/or/org/fspo-adapter --db prefs.db --max-tokens 128

What it shows: `ChatFSPO.compare` returns two different answers in random order (labelled
"a" and "b"); `Comparison.record(memory, choice)` stores the choice. "a"/"b" becomes one of
the user's few-shot examples, so the next prompt shows it as preferred over the other;
"tie"/"neither" are kept for analysis but never shown to the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, cast

from _offline import quiet, tiny_adapter

if TYPE_CHECKING:
    from langchain_fspo.memory import Choice

QUESTIONS = ("Recommend a film for tonight.", "What should I cook for dinner?")


def ask(texts: dict[str, str], *, interactive: bool, round_no: int) -> Choice:
    """The user's choice: typed in, or simulated (shorter answer first, then undecided)."""
    if interactive:
        while (choice := input("Your choice [a/b/tie/neither]: ").strip().lower()) not in {
            "a",
            "b",
            "tie",
            "neither",
        }:
            print("Please answer a, b, tie or neither.")
        return cast("Choice", choice)
    if round_no > 0:
        return "tie"
    return "a" if len(texts["a"]) <= len(texts["b"]) else "b"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", help="FSPO adapter folder or Hub repo (default: tiny)")
    parser.add_argument("--workdir", type=Path, help="where the tiny model is built/reused")
    parser.add_argument("--db", type=Path, help="SQLite file for the memory (default: RAM)")
    parser.add_argument("--user", default="ada")
    parser.add_argument("--max-tokens", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interactive", action="store_true", help="choose yourself")
    args = parser.parse_args()
    quiet()

    from langchain_fspo import ChatFSPO, PreferenceMemory

    adapter = args.adapter or tiny_adapter(args.workdir)
    memory = PreferenceMemory.sqlite(args.db) if args.db else PreferenceMemory()
    llm = ChatFSPO.from_pretrained(adapter, memory=memory, max_tokens=args.max_tokens)
    user = args.user

    for round_no, question in enumerate(QUESTIONS):
        cmp = llm.compare(question, user_id=user, seed=args.seed + 100 * round_no)
        print(f"\nQ{round_no + 1}: {question}")
        for candidate in (cmp.a, cmp.b):
            how = f"adapter={candidate.adapter} seed={candidate.seed}"
            print(f"  ({candidate.label}) {candidate.text!r}   [{how}]")
        texts = {"a": cmp.a.text, "b": cmp.b.text}
        choice = ask(texts, interactive=args.interactive, round_no=round_no)
        record = cmp.record(memory, choice, source="collect_preferences.py")
        print(f"recorded: {user} chose {choice!r} (record {record.id})")

    examples = memory.list(user)
    choices = memory.list_choices(user)
    print(f"\n{user} now has {len(examples)} example(s) and {len(choices)} recorded choice(s):")
    for rec in choices:
        print(f"  {rec.choice:<8} {rec.prompt!r}")

    nxt = llm.build_prompt("Recommend a book.", user_id=user)
    block = nxt.text if nxt.style == "paper" else nxt.messages[-1]["content"]
    print(f"\nthe next prompt for {user} holds {len(nxt.shots)} example(s):")
    print("  " + block.replace("\n", "\n  "))
    for question in QUESTIONS:
        print(f"question {question!r} in the next prompt: {question in block}")

    if args.db:
        memory.close()


if __name__ == "__main__":
    main()
