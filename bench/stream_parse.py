"""How long a long stream takes to parse: `ChatFSPO.stream` vs reading the raw stream.

A part of `serving_overhead.py` (`--stream`). `bench/stream_server.py` (a subprocess, on
another core when there is one) streams a `tokens`-token chat completion as fast as the socket
takes it; this process reads it, pinned to one core, in these ways (wall clock, `repeats`
times each, in turn):

- `raw bytes`: `httpx` reads the body (`iter_bytes`): the floor, reading the raw stream;
- `raw lines + json.loads`: `httpx` lines, each `data:` payload decoded: what any client
  must at least do;
- `OpenAICompatibleBackend.stream`: our SSE reader and wire parser (`GenerationChunk`s);
- `ChatFSPO.stream (OpenAI-compatible)`: the whole stack, as a user calls it: our backend,
  the answer parser, and LangChain's per-chunk work (a message chunk, callbacks and the final
  merge of all chunks);
- `InferenceClient.chat_completion(stream=True)`: huggingface_hub reading the same stream;
- `ChatFSPO.stream (TGI)`: the whole stack over `TGIBackend` (the backends' own SSE reader).

Also the answer parser alone (`CompletionStreamParser`, no I/O) at growing lengths, which was
quadratic before (25k / 50k / 100k chunks: 1.2 / 4.3 / 18.2 s; 200k tokens through
`ChatFSPO.stream`: 157 s, issue 14).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend
from langchain_fspo.backends.tgi import TGIBackend
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.chat_models._streaming import CompletionStreamParser
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["stream_bench", "stream_markdown"]

REPO = Path(__file__).resolve().parents[1]
QUESTION = "Write a very long story."
RAW = "raw bytes (httpx iter_bytes)"


@contextlib.contextmanager
def _server() -> Iterator[str]:
    cores = sorted(os.sched_getaffinity(0))
    command = [sys.executable, "-m", "bench.stream_server"]
    if len(cores) > 1:
        command = ["taskset", "-c", str(cores[-1]), *command]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _readers(url: str, tokens: int) -> dict[str, Callable[[], int]]:
    """Each reader streams the completion once and returns how much text it got."""
    from huggingface_hub import ChatCompletionOutput, InferenceClient

    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    body = {
        "model": "bench",
        "messages": messages,
        "max_tokens": tokens,
        "stream": True,
    }
    client = httpx.Client(timeout=600)
    fmt = PromptFormat(style="chat")
    openai_backend = OpenAICompatibleBackend(url, model="bench", timeout=600)
    tgi_backend = TGIBackend(url, timeout=600, remote_token_count=False)
    oai = ChatFSPO(backend=openai_backend, prompt_format=fmt, max_tokens=tokens)
    tgi = ChatFSPO(backend=tgi_backend, prompt_format=fmt, max_tokens=tokens)
    hub = InferenceClient(base_url=url, timeout=600)
    prompt = fmt.render([], QUESTION)
    params = GenerationParams(max_tokens=tokens)

    def raw_bytes() -> int:
        with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            return sum(len(b) for b in response.iter_bytes())

    def raw_json() -> int:
        size = 0
        with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data:") and line != "data: [DONE]":
                    choices = json.loads(line[5:])["choices"]
                    size += len(choices[0]["delta"].get("content") or "")
        return size

    def backend_stream() -> int:
        chunks = openai_backend.stream(prompt, adapter=None, params=params)
        return sum(len(c.text) for c in chunks)

    def hub_stream() -> int:
        events = hub.chat_completion(messages, max_tokens=tokens, stream=True)
        assert not isinstance(events, ChatCompletionOutput)
        return sum(len(e.choices[0].delta.content or "") for e in events if e.choices)

    def fspo(llm: ChatFSPO) -> int:
        return sum(len(str(chunk.content)) for chunk in llm.stream(QUESTION))

    return {
        RAW: raw_bytes,
        "raw lines + json.loads": raw_json,
        "OpenAICompatibleBackend.stream": backend_stream,
        "ChatFSPO.stream (OpenAI-compatible)": lambda: fspo(oai),
        "InferenceClient.chat_completion(stream=True)": hub_stream,
        "ChatFSPO.stream (TGI)": lambda: fspo(tgi),
    }


def _parser_alone(tokens: int) -> float:
    from bench.stream_server import token_text

    pieces = [token_text(i) for i in range(tokens)]
    parser = CompletionStreamParser(PromptFormat(style="chat"))
    start = time.perf_counter()
    for piece in pieces:
        parser.feed(piece)
    parser.finish()
    return time.perf_counter() - start


def stream_bench(*, tokens: int, repeats: int, parser_sizes: list[int]) -> dict[str, Any]:
    """Seconds per stream of every reader (`repeats` each), and of the parser alone."""
    cores = sorted(os.sched_getaffinity(0))
    seconds: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    with _server() as url:
        os.sched_setaffinity(0, {cores[0]})
        try:
            readers = _readers(url, tokens)
            for repeat in range(repeats):
                for name, read in readers.items():
                    start = time.perf_counter()
                    sizes[name] = read()
                    seconds.setdefault(name, []).append(round(time.perf_counter() - start, 4))
                print(f"repeat {repeat + 1}/{repeats}: {seconds}", flush=True)
            parser = {str(n): round(_parser_alone(n), 4) for n in parser_sizes}
        finally:
            os.sched_setaffinity(0, cores)
    text_sizes = {size for name, size in sizes.items() if name != RAW}
    assert len(text_sizes) == 1, sizes  # every reader got the whole answer
    floor = statistics.median(seconds[RAW])
    return {
        "setup": {
            "tokens": tokens,
            "stream_bytes": sizes[RAW],
            "answer_chars": text_sizes.pop(),
            "repeats": repeats,
            "server": "bench/stream_server.py in a subprocess (whole body written at once)",
            "client_pinning": f"this process on core {cores[0]}, the server on core {cores[-1]}",
            "clock": "wall clock per whole stream (time.perf_counter)",
        },
        "seconds": seconds,
        "summary": {
            name: {
                "median_s": round(statistics.median(values), 4),
                "min_s": min(values),
                "max_s": max(values),
                "times_raw_bytes": round(statistics.median(values) / floor, 2),
            }
            for name, values in seconds.items()
        },
        "parser_alone_seconds": parser,
    }


def stream_markdown(result: dict[str, Any]) -> list[str]:
    """The section of the report for `stream_bench`'s result."""
    setup = result["setup"]
    return [
        f"## A {setup['tokens']:,}-token stream: parse time",
        "",
        (
            f"Server: {setup['server']}; {setup['stream_bytes']:,} bytes of server-sent "
            f"events, an answer of {setup['answer_chars']:,} characters. Client: "
            f"{setup['client_pinning']}. {setup['clock']}; {setup['repeats']} repeats per "
            "reader, the readers in turn; median [min, max]."
        ),
        "",
        "| reader | median s | [min, max] | x raw bytes |",
        "|---|---:|---|---:|",
        *(
            f"| {name} | {row['median_s']:.3f} | [{row['min_s']:.3f}, {row['max_s']:.3f}] "
            f"| {row['times_raw_bytes']:.1f}x |"
            for name, row in result["summary"].items()
        ),
        "",
        "The answer parser alone (`CompletionStreamParser.feed` per token, then `finish`), "
        "seconds: "
        + ", ".join(f"{int(n):,} tokens {s:.3f}" for n, s in result["parser_alone_seconds"].items())
        + " (before: 25k / 50k / 100k chunks took 1.2 / 4.3 / 18.2 s, quadratic).",
        "",
    ]
