"""An agent (`langchain.agents.create_agent`) personalised per user with `FSPOMiddleware`.

Run (offline; builds two tiny random adapters, so the answers are gibberish):

    python examples/agent_middleware.py

With your FSPO adapter (and optionally a second one for bob), in-process:

    python examples/agent_middleware.py --adapter path/or/org/fspo-adapter \
        --adapter-b path/or/org/other-adapter --max-tokens 128

Needs `pip install "langchain-fspo[local,agents]"`. What it shows: the user comes from the
agent's runtime context (`context=Context(user_id=...)`), the examples from the agent's own
LangGraph store (a `PreferenceMemory` over it), and bob is served by another adapter
(`FSPOMiddleware(adapter={"bob": ...})`). The agent has no tools: the in-process backend
does not call tools (serve the model with TGI or vLLM for that).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from _offline import quiet, tiny_adapter


@dataclass
class Context:
    """What the application knows about the caller; the middleware reads `user_id`."""

    user_id: str


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", help="FSPO adapter folder or Hub repo (default: tiny)")
    parser.add_argument("--adapter-b", help="a second adapter, used for bob (default: tiny)")
    parser.add_argument("--workdir", type=Path, help="where tiny models are built/reused")
    parser.add_argument("--max-tokens", type=int, default=12)
    args = parser.parse_args()
    quiet()

    from langchain.agents import create_agent
    from langgraph.store.memory import InMemoryStore

    from langchain_fspo import ChatFSPO, PreferenceMemory
    from langchain_fspo.middleware import FSPOMiddleware

    adapter = args.adapter or tiny_adapter(args.workdir)
    adapter_b = args.adapter_b or (
        None if args.adapter else tiny_adapter(args.workdir, "tiny-adapter-b", seed=2)
    )

    # The application's LangGraph store; the users' preferences live in it.
    store = InMemoryStore()
    memory = PreferenceMemory(store)
    memory.add(
        "ada",
        prompt="Recommend a film.",
        chosen="Arrival: quiet, clever science fiction.",
        rejected="A loud superhero blockbuster.",
        example_id="ada-film",
    )
    memory.add(
        "bob",
        prompt="Recommend a film.",
        chosen="Mad Max: Fury Road, loud and glorious.",
        rejected="A slow three-hour drama.",
        example_id="bob-film",
    )

    llm = ChatFSPO.from_pretrained(adapter, max_tokens=args.max_tokens, seed=0)
    adapters = {}
    if adapter_b is not None:
        llm.backend.add_adapter("second", adapter_b)  # type: ignore[attr-defined]
        adapters = {"bob": "second"}

    agent = create_agent(
        model=llm,
        tools=[],
        system_prompt="You recommend things people will enjoy.",
        middleware=[FSPOMiddleware(adapter=adapters)],  # or FSPOMiddleware(memory=memory)
        context_schema=Context,
        store=store,
    )

    for user in ("ada", "bob", "ada"):
        result = agent.invoke(
            {"messages": [{"role": "user", "content": "Recommend a book."}]},
            context=Context(user_id=user),
        )
        answer = result["messages"][-1]
        meta = answer.response_metadata
        ids = [e.id for e in memory.list(user)]
        print(f"[{user}] answer: {answer.content!r}")
        print(
            f"[{user}] user_id={meta['user_id']} adapter={meta['adapter']} "
            f"shots={meta['num_shots']} own_examples={meta['example_ids'] == ids}"
        )


if __name__ == "__main__":
    main()
