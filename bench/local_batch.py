"""`ChatFSPO.batch` of 8 users on the in-process backend vs. one raw batched `generate`.

The `--local-batch` section of `bench/serving_overhead.py`. A tiny random Llama with a LoRA
adapter is built offline (`fspo_train.testing.tiny`); 8 users hold 8 preference examples
each in an in-memory `PreferenceMemory`. Timed, greedy, `max_tokens` new tokens, one torch
thread, in interleaved rounds (so load changes on the machine hit every row alike):

- raw batched generate: one `model.generate` over the 8 users' prompt ids (left-padded),
  the same PEFT model and adapter: the floor.
- `ChatFSPO.batch` (8 users): memory reads, rendering, LangChain's machinery and the
  `LocalBackend` batcher; target within 1.3x of the floor.
- `ChatFSPO.batch`, `max_batch_size=1`: every call its own `generate` (the behaviour before
  batching).
- raw generate x8 at batch size 1: the floor of one-at-a-time calls.

Per round, each row's time is divided by the raw batched time of that round; the report gives
the median ratio with a distribution-free 95% interval (binomial order statistics).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RAW_BATCHED = "raw batched generate (8 prompts, left-padded)"
CHAT_BATCH = "ChatFSPO.batch (8 users)"
CHAT_UNBATCHED = "ChatFSPO.batch (8 users), max_batch_size=1"
RAW_SEQUENTIAL = "raw generate x8 at batch size 1"
ROWS = (RAW_BATCHED, CHAT_BATCH, CHAT_UNBATCHED, RAW_SEQUENTIAL)
TARGET_RATIO = 1.3
USERS = 8


def _median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free ~95% interval for the median (binomial order statistics)."""
    ordered = sorted(values)
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half))
    return ordered[low], ordered[high]


def _models(root: Path, hidden: int, layers: int) -> tuple[Path, Path]:
    from fspo_train.testing.tiny import build_tiny_adapter, build_tiny_base_model

    base = build_tiny_base_model(root / "base", hidden_size=hidden, num_layers=layers, seed=0)
    return base, build_tiny_adapter(base, root / "adapter", seed=1)


def local_batch_bench(
    *, rounds: int, max_tokens: int, hidden: int, layers: int, shots: int
) -> dict[str, Any]:
    """Run the four rows `rounds` times each, interleaved; return the report's data."""
    import torch

    from langchain_fspo import ChatFSPO, PreferenceMemory, PromptFormat
    from langchain_fspo.backends.local import LocalBackend

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="fspo-local-batch-"))
    base, adapter = _models(root, hidden, layers)
    memory = PreferenceMemory()
    users = [f"user{u}" for u in range(USERS)]
    for u, user in enumerate(users):
        memory.add_many(
            user,
            [
                {
                    "prompt": f"Question {i} of user {u}: which would you pick?",
                    "chosen": f"The first one, because {u} likes it {i} times.",
                    "rejected": "No idea.",
                }
                for i in range(shots)
            ],
        )
    fmt = PromptFormat.from_pretrained(adapter).model_copy(update={"num_shots": shots})
    backends = {
        size: LocalBackend(base, adapters={"fspo": adapter}, max_batch_size=size)
        for size in (USERS, 1)
    }
    llms = {
        size: ChatFSPO(
            backend=b, prompt_format=fmt, model="fspo", memory=memory, max_tokens=max_tokens
        )
        for size, b in backends.items()
    }
    configs: list[Any] = [{"configurable": {"user_id": u}} for u in users]
    inputs: list[Any] = ["What should I read next?"] * USERS
    backend = backends[USERS]
    prompt_ids = [
        backend.encode_prompt(llms[USERS].build_prompt(inputs[0], user_id=u)) for u in users
    ]
    sizes: list[int] = []
    real_run = backend._run_generate  # noqa: SLF001 - count the batch sizes that ran

    def counting(input_ids: Any, attention_mask: Any, kwargs: dict[str, Any]) -> Any:
        sizes.append(int(input_ids.shape[0]))
        return real_run(input_ids, attention_mask, kwargs)

    backend._run_generate = counting  # type: ignore[method-assign]  # noqa: SLF001
    model = backend._model  # noqa: SLF001 - the same PEFT model, adapter selected
    pad = backend.tokenizer.pad_token_id
    width = max(len(p) for p in prompt_ids)
    padded = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
    raw_kwargs = {"max_new_tokens": max_tokens, "do_sample": False, "pad_token_id": pad}

    def raw_batched() -> None:
        with torch.inference_mode():
            model.set_adapter("fspo")
            model.generate(input_ids=padded, attention_mask=mask, **raw_kwargs)

    def raw_sequential() -> None:
        with torch.inference_mode():
            model.set_adapter("fspo")
            for ids in prompt_ids:
                one = torch.tensor([ids])
                model.generate(input_ids=one, attention_mask=torch.ones_like(one), **raw_kwargs)

    cases: dict[str, Callable[[], Any]] = {
        RAW_BATCHED: raw_batched,
        CHAT_BATCH: lambda: llms[USERS].batch(inputs, config=configs),
        CHAT_UNBATCHED: lambda: llms[1].batch(inputs, config=configs),
        RAW_SEQUENTIAL: raw_sequential,
    }
    for fn in cases.values():  # warm-up
        fn()
    sizes.clear()
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    rows = {}
    for name in cases:
        ratios = [t / r for t, r in zip(times[name], times[RAW_BATCHED], strict=True)]
        cpu_ratios = [t / r for t, r in zip(cpu[name], cpu[RAW_BATCHED], strict=True)]
        low, high = _median_interval(ratios)
        cpu_low, cpu_high = _median_interval(cpu_ratios)
        rows[name] = {
            "median_ms": statistics.median(times[name]) * 1e3,
            "ratio_median": statistics.median(ratios),
            "ratio_95_low": low,
            "ratio_95_high": high,
            "cpu_median_ms": statistics.median(cpu[name]) * 1e3,
            "cpu_ratio_median": statistics.median(cpu_ratios),
            "cpu_ratio_95_low": cpu_low,
            "cpu_ratio_95_high": cpu_high,
        }
    return {
        "rounds": rounds,
        "max_tokens": max_tokens,
        "users": USERS,
        "shots": shots,
        "model": {"hidden_size": hidden, "num_layers": layers, "vocab_size": 512},
        "prompt_tokens": [len(p) for p in prompt_ids],
        "torch_threads": torch.get_num_threads(),
        "chatfspo_batch_generate_sizes": sorted(set(sizes)),
        "rows": rows,
        "target_ratio": TARGET_RATIO,
        "target_met": rows[CHAT_BATCH]["ratio_median"] <= TARGET_RATIO,
    }


def local_batch_markdown(data: dict[str, Any]) -> list[str]:
    """The report's table and verdict."""
    lines = [
        (
            f"Tiny random Llama (hidden {data['model']['hidden_size']}, "
            f"{data['model']['num_layers']} layers, vocab {data['model']['vocab_size']}) with "
            f"a LoRA adapter, CPU, {data['torch_threads']} torch thread; {data['users']} users "
            f"with K={data['shots']} shots each (prompts of {min(data['prompt_tokens'])}-"
            f"{max(data['prompt_tokens'])} tokens), greedy, {data['max_tokens']} new tokens; "
            f"{data['rounds']} interleaved rounds after one warm-up. Ratio: the row's time over "
            "the raw batched generate's time in the same round; median and 95% interval of "
            "the median. CPU: the process's CPU time (all threads), which a busy shared "
            "machine inflates less than wall clock."
        ),
        "",
        (
            "| what | median ms | ratio (median) | 95% interval | CPU median ms | CPU ratio "
            "(median) | CPU 95% interval |"
        ),
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for name, row in data["rows"].items():
        lines.append(
            f"| {name} | {row['median_ms']:.1f} | {row['ratio_median']:.2f}x | "
            f"{row['ratio_95_low']:.2f}-{row['ratio_95_high']:.2f}x | "
            f"{row['cpu_median_ms']:.1f} | {row['cpu_ratio_median']:.2f}x | "
            f"{row['cpu_ratio_95_low']:.2f}-{row['cpu_ratio_95_high']:.2f}x |"
        )
    verdict = "**met**" if data["target_met"] else "**not met**"
    row = data["rows"][CHAT_BATCH]
    lines += [
        "",
        (
            f"`ChatFSPO.batch` of {data['users']} ran as `generate` calls of batch size "
            f"{data['chatfspo_batch_generate_sizes']}. Target: within {data['target_ratio']}x "
            f"of one raw batched generate (median wall-clock ratio): {verdict} "
            f"({row['ratio_median']:.2f}x, 95% interval {row['ratio_95_low']:.2f}-"
            f"{row['ratio_95_high']:.2f}x; CPU {row['cpu_ratio_median']:.2f}x)."
        ),
    ]
    return lines
