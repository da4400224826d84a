"""Quickstart: two users, one FSPO adapter, answers personalised from each user's examples.

Run (offline; builds a tiny random model, so the answers are gibberish):

    python examples/quickstart_local.py

With a real FSPO adapter (folder or Hub repo holding `fspo_format.json`), in-process:

    python examples/quickstart_local.py --adapter path/or/org/fspo-adapter --max-tokens 128

What it shows: a `PreferenceMemory` holding each user's preferences, a `ChatFSPO` that puts
the caller's examples (and only theirs) in the prompt, `build_prompt` to see exactly what the
model reads, and the response metadata that says which user, adapter and examples were used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _offline import quiet, tiny_adapter

PREFERENCES = {
    "ada": [
        {
            "prompt": "Recommend a film for tonight.",
            "chosen": "Arrival: quiet, clever science fiction.",
            "rejected": "Any loud superhero blockbuster.",
        },
        {
            "prompt": "How should I learn to cook?",
            "chosen": "Master five simple dishes first.",
            "rejected": "Buy a 900-page encyclopedia of French cuisine.",
        },
    ],
    "bob": [
        {
            "prompt": "Recommend a film for tonight.",
            "chosen": "Mad Max: Fury Road, loud and glorious.",
            "rejected": "A slow three-hour drama.",
        },
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", help="FSPO adapter folder or Hub repo (default: tiny)")
    parser.add_argument("--workdir", type=Path, help="where the tiny model is built/reused")
    parser.add_argument("--max-tokens", type=int, default=12)
    parser.add_argument("--question", default="Recommend a book for a long flight.")
    args = parser.parse_args()
    quiet()

    from langchain_fspo import ChatFSPO, PreferenceMemory

    adapter = args.adapter or tiny_adapter(args.workdir)
    memory = PreferenceMemory()  # in-process; PreferenceMemory.sqlite("prefs.db") persists
    for user, examples in PREFERENCES.items():
        memory.add_many(user, [{"id": f"{user}-{i}", **ex} for i, ex in enumerate(examples)])
        print(f"stored {memory.count(user)} preference(s) for {user}")

    llm = ChatFSPO.from_pretrained(adapter, memory=memory, max_tokens=args.max_tokens, seed=0)
    print(f"adapter: {llm.model_name} (prompt style {llm.prompt_format.style!r})")

    for user in [*PREFERENCES, "newcomer"]:
        print(f"\n== {user} ==")
        prompt = llm.build_prompt(args.question, user_id=user)
        print(f"examples in the prompt: {len(prompt.shots)}")
        fspo_block = prompt.text if prompt.style == "paper" else prompt.messages[-1]["content"]
        print("the FSPO block the model reads:")
        print("  " + fspo_block.replace("\n", "\n  "))
        message = llm.invoke(args.question, user_id=user)
        meta = message.response_metadata
        print(f"answer: {message.content!r}")
        print(
            f"metadata: user_id={meta['user_id']} adapter={meta['adapter']} "
            f"shots={meta['num_shots']} example_ids={meta['example_ids']}"
        )

    print("\nstreaming for ada:", end=" ")
    for chunk in llm.stream(args.question, config={"configurable": {"user_id": "ada"}}):
        print(chunk.content, end="", flush=True)
    print()


if __name__ == "__main__":
    main()
