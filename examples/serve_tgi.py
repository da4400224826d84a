"""Point `ChatFSPO` at an inference server (TGI, vLLM or SGLang) that serves the FSPO adapter.

Without `--base-url` it prints how to launch each server and connect (no server needed):

    python examples/serve_tgi.py

Against a running server (the adapter folder or Hub repo gives the prompt contract,
`fspo_format.json`; `--adapter-id` is the adapter's name on the server):

    python examples/serve_tgi.py --base-url http://localhost:8080 \
        --adapter your-org/fspo-adapter --adapter-id your-org/fspo-adapter

    python examples/serve_tgi.py --kind openai --base-url http://localhost:8000 \
        --adapter ./fspo-adapter --adapter-id fspo

The same memory, prompts and per-user examples as in-process; only the backend changes. A
server never loads adapters it was not launched with, and TGI silently answers with the base
model for an unknown adapter id: the backend is given the served adapter ids to refuse those.
"""

from __future__ import annotations

import argparse
import sys

LAUNCH = """\
1. Launch a server with the base model and the FSPO LoRA adapter
   (get the adapter first: hf download your-org/fspo-adapter --local-dir fspo-adapter)

   TGI (maintenance mode since 2025-12, still works; adapters load at startup only):
     docker run --gpus all --shm-size 1g -p 8080:80 -v $PWD/data:/data \\
       -e LORA_ADAPTERS=your-org/fspo-adapter -e PREFIX_CACHING=1 \\
       ghcr.io/huggingface/text-generation-inference:3.3.7 \\
       --model-id meta-llama/Llama-3.2-3B-Instruct \\
       --max-input-tokens 8192 --max-total-tokens 8704
     (LoRA turns TGI's prefix caching off unless PREFIX_CACHING is set; FSPO prompts are
     long, so raise --max-input-tokens to the adapter's max_prompt_tokens.)

   vLLM (OpenAI-compatible; the adapter is the request's `model`):
     vllm serve meta-llama/Llama-3.2-3B-Instruct --enable-lora \\
       --lora-modules fspo=./fspo-adapter --max-lora-rank 64 --max-model-len 8704

   SGLang (OpenAI-compatible; the adapter goes as "base:adapter"):
     python -m sglang.launch_server --model-path meta-llama/Llama-3.2-3B-Instruct \\
       --enable-lora --lora-paths fspo=./fspo-adapter --port 30000

2. Run this script against it:
     python examples/serve_tgi.py --base-url http://localhost:8080 \\
       --adapter your-org/fspo-adapter --adapter-id your-org/fspo-adapter
     python examples/serve_tgi.py --kind openai --base-url http://localhost:8000 \\
       --adapter ./fspo-adapter --adapter-id fspo

3. Or in your code:
     from langchain_fspo import ChatFSPO, PreferenceMemory

     llm = ChatFSPO.from_pretrained(
         "your-org/fspo-adapter",          # reads fspo_format.json (the prompt contract)
         backend="tgi",                    # or "openai" for vLLM / SGLang
         adapter_name="your-org/fspo-adapter",
         backend_kwargs={"base_url": "http://localhost:8080",
                         "adapters": ["your-org/fspo-adapter"]},
         memory=PreferenceMemory.sqlite("prefs.db"),
         max_tokens=256,
     )
     llm.invoke("Recommend a book.", user_id="ada")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="server URL; without it, print instructions")
    parser.add_argument("--kind", choices=["tgi", "openai"], default="tgi")
    parser.add_argument("--flavor", choices=["vllm", "sglang"], default="vllm")
    parser.add_argument("--adapter", help="adapter folder or Hub repo (fspo_format.json)")
    parser.add_argument("--adapter-id", help="the adapter's name on the server")
    parser.add_argument("--user", default="ada")
    parser.add_argument("--question", default="Recommend a book for a long flight.")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    if not args.base_url:
        print("No --base-url given: here is how to serve an FSPO adapter and connect.\n")
        print(LAUNCH)
        return 0
    if not args.adapter:
        parser.error("--adapter (the adapter folder or Hub repo) is needed with --base-url")

    from langchain_fspo import ChatFSPO, PreferenceMemory
    from langchain_fspo.backends.factory import available_backends

    if args.kind not in available_backends():
        print(
            f"This langchain-fspo has no {args.kind!r} backend (available: "
            f"{available_backends()}); upgrade langchain-fspo.",
            file=sys.stderr,
        )
        return 2
    adapter_id = args.adapter_id or args.adapter
    backend_kwargs: dict[str, object] = {"base_url": args.base_url, "adapters": [adapter_id]}
    if args.kind == "openai":
        backend_kwargs["flavor"] = args.flavor

    memory = PreferenceMemory()
    memory.add(
        args.user,
        prompt="Recommend a film.",
        chosen="Arrival: quiet, clever science fiction.",
        rejected="A loud superhero blockbuster.",
        example_id="film-1",
    )
    llm = ChatFSPO.from_pretrained(
        args.adapter,
        backend=args.kind,
        adapter_name=adapter_id,
        backend_kwargs=backend_kwargs,
        memory=memory,
        max_tokens=args.max_tokens,
    )
    print(f"connected to {args.base_url} ({args.kind}); adapter {adapter_id!r}")
    message = llm.invoke(args.question, user_id=args.user)
    meta = message.response_metadata
    print(f"[{args.user}] answer: {message.content}")
    print(f"[{args.user}] adapter={meta['adapter']} shots={meta['num_shots']}")
    print(f"[{args.user}] streamed: ", end="")
    for chunk in llm.stream(args.question, user_id=args.user):
        print(chunk.content, end="", flush=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
