"""`LocalBackend` batches concurrent calls: exact against one-at-a-time greedy outputs.

A real tiny Llama with real PEFT adapters (CPU, one torch thread). Batches are formed with a
long window and a full-batch trigger, so which calls share a `generate` is deterministic.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from langchain_fspo import ChatFSPO, PreferenceExample, PreferenceMemory, PromptFormat
from langchain_fspo.backends.base import Generation, GenerationParams
from langchain_fspo.errors import InferenceServerError
from langchain_fspo.prompt_format import RenderedPrompt
from tests.recording import RecordingLocalBackend

pytestmark = pytest.mark.train

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

CHAT = PromptFormat(style="chat", num_shots=4)
PAPER = PromptFormat(style="paper", num_shots=4)
SHOTS = [
    PreferenceExample(prompt="Best pet?", chosen="A cat.", rejected="A dog."),
    PreferenceExample(prompt="Best drink?", chosen="Tea, always.", rejected="Coffee."),
    PreferenceExample(prompt="Best season?", chosen="Autumn leaves.", rejected="Summer."),
]


def _backend(tiny_model_dir: Path, adapters: dict[str, Path], size: int) -> RecordingLocalBackend:
    return RecordingLocalBackend(
        tiny_model_dir,
        adapters={"alpha": adapters["alpha"], "beta": adapters["beta"]},
        default_max_tokens=8,
        max_batch_size=size,
        batch_window_s=2.0,  # the batch runs when full: deterministic grouping
    )


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]) -> RecordingLocalBackend:
    return _backend(tiny_model_dir, tiny_adapter_dirs, 8)


@pytest.fixture(scope="module")
def single(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]) -> RecordingLocalBackend:
    """The same model and adapters, one call per `generate`: the reference outputs."""
    return _backend(tiny_model_dir, tiny_adapter_dirs, 1)


@pytest.fixture(autouse=True)
def _fresh_records(backend: RecordingLocalBackend, single: RecordingLocalBackend) -> None:
    backend.reset()
    single.reset()


Job = tuple[RenderedPrompt, str | None, GenerationParams]


def _jobs() -> list[Job]:
    """Prompts of different lengths, adapters, limits and stops (8 calls)."""
    return [
        (CHAT.render(SHOTS, "Q?"), "alpha", GenerationParams(max_tokens=10)),
        (
            PAPER.render(SHOTS[:1], "A much longer question about films?"),
            "alpha",
            GenerationParams(),
        ),
        (CHAT.render([], "Hi"), "alpha", GenerationParams(max_tokens=3)),
        (CHAT.render(SHOTS[1:], "Why?"), "alpha", GenerationParams(max_tokens=12, temperature=0)),
        (CHAT.render(SHOTS, "Q?"), "beta", GenerationParams(max_tokens=10)),
        (PAPER.render(SHOTS, "Which book?"), "beta", GenerationParams(max_tokens=5)),
        (CHAT.render(SHOTS[:2], "Tell me more."), None, GenerationParams(max_tokens=9)),
        (CHAT.render(SHOTS, "Q?"), None, GenerationParams(max_tokens=7, seed=4)),
    ]


def _alone(single: RecordingLocalBackend, jobs: list[Job]) -> list[Generation]:
    single.reset()
    results = [single.generate(p, adapter=a, params=g) for p, a, g in jobs]
    assert single.batch_sizes == [1] * len(jobs)
    return results


def _in_threads(backend: RecordingLocalBackend, jobs: list[Job]) -> list[Generation]:
    results: dict[int, Generation] = {}

    def work(i: int) -> None:
        prompt, adapter, params = jobs[i]
        results[i] = backend.generate(prompt, adapter=adapter, params=params)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return [results[i] for i in range(len(jobs))]


def test_concurrent_greedy_calls_are_batched_and_exact(
    backend: RecordingLocalBackend, single: RecordingLocalBackend
) -> None:
    jobs = _jobs()
    alone = _alone(single, jobs)
    assert len({r.output_tokens for r in alone}) > 1  # rows really end at different steps

    batched = _in_threads(backend, jobs)
    assert batched == alone  # text, token ids, finish reason, usage, model name
    # One generate per adapter (alpha 4, beta 2, base 2), left-padded to its longest prompt.
    assert sorted(backend.batch_sizes) == [2, 2, 4]
    padded = [c for c in backend.generate_calls if c["batch_size"] > 1]
    assert {c["active_adapter"] for c in padded} >= {"alpha", "beta"}


def test_stop_strings_are_per_row_and_exact(
    backend: RecordingLocalBackend, single: RecordingLocalBackend
) -> None:
    prompt = CHAT.render(SHOTS, "Q?")
    full = single.generate(prompt, adapter="alpha", params=GenerationParams(max_tokens=12))
    stop = full.text[4:7]
    assert stop
    jobs: list[Job] = [
        (prompt, "alpha", GenerationParams(max_tokens=12, stop=[stop])),
        (prompt, "alpha", GenerationParams(max_tokens=12)),
        (CHAT.render(SHOTS[:1], "Other?"), "alpha", GenerationParams(max_tokens=12, stop=["zz"])),
        (CHAT.render([], "Q?"), "alpha", GenerationParams(max_tokens=12, stop=[stop, "q"])),
    ]
    alone = _alone(single, jobs)
    assert alone[0].finish_reason == "stop"
    assert alone[0].output_tokens is not None
    assert alone[0].output_tokens < 12
    batched = _in_threads(backend, jobs[:4] * 2)  # 8 calls: one full batch
    assert backend.batch_sizes == [8]
    assert batched == alone * 2


def test_abatch_and_concurrent_ainvoke_share_one_generate(
    backend: RecordingLocalBackend,
    single: RecordingLocalBackend,
    tiny_adapter_dirs: dict[str, Path],
) -> None:
    memory = PreferenceMemory()
    users = [f"user{i}" for i in range(8)]
    for i, user in enumerate(users):
        memory.add(user, prompt=f"Question {i}?", chosen="Yes. " * (i + 1), rejected="No.")
    fmt = PromptFormat.from_pretrained(tiny_adapter_dirs["alpha"])
    llm = ChatFSPO(backend=backend, prompt_format=fmt, model="alpha", memory=memory, max_tokens=6)
    solo = ChatFSPO(backend=single, prompt_format=fmt, model="alpha", memory=memory, max_tokens=6)
    configs: list[Any] = [{"configurable": {"user_id": u}} for u in users]
    alone = [solo.invoke("What now?", config=c).content for c in configs]
    assert len(set(alone)) > 1  # each user's shots change the answer

    assert [m.content for m in llm.batch(["What now?"] * 8, config=configs)] == alone
    assert backend.batch_sizes == [8]
    backend.reset()

    async def both() -> tuple[list[Any], list[Any]]:
        first = await llm.abatch(["What now?"] * 8, config=configs)
        second = await asyncio.gather(*(llm.ainvoke("What now?", config=c) for c in configs))
        return first, list(second)

    first, second = asyncio.run(both())
    assert [m.content for m in first] == alone
    assert [m.content for m in second] == alone
    assert backend.batch_sizes == [8, 8]


def test_calls_from_two_event_loops_are_served(
    backend: RecordingLocalBackend, single: RecordingLocalBackend
) -> None:
    jobs = _jobs()
    alone = _alone(single, jobs)
    results: dict[int, list[Generation]] = {}

    def loop_thread(index: int, part: list[Job]) -> None:
        async def run() -> list[Generation]:
            calls = [backend.agenerate(p, adapter=a, params=g) for p, a, g in part]
            return list(await asyncio.gather(*calls))

        results[index] = asyncio.run(run())

    threads = [
        threading.Thread(target=loop_thread, args=(0, jobs[:4])),
        threading.Thread(target=loop_thread, args=(1, jobs[4:])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results[0] + results[1] == alone
    assert sum(backend.batch_sizes) == 8


def test_a_failing_batch_fails_its_callers_and_nothing_hangs(
    backend: RecordingLocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory (simulated)")

    jobs = _jobs()[:4] * 2  # 8 alpha calls: one batch
    errors: list[BaseException] = []

    def work(job: Job) -> None:
        try:
            backend.generate(job[0], adapter=job[1], params=job[2])
        except InferenceServerError as e:
            errors.append(e)

    with monkeypatch.context() as patch:
        patch.setattr(backend, "_run_generate", out_of_memory)
        threads = [threading.Thread(target=work, args=(job,)) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 8
    assert all("out of memory" in str(e) and e.adapter == "alpha" for e in errors)
    ok = backend.generate(jobs[0][0], adapter="alpha", params=GenerationParams(max_tokens=2))
    assert ok.output_tokens == 2


def test_invalid_parameters_fail_only_their_own_group(
    backend: RecordingLocalBackend, single: RecordingLocalBackend
) -> None:
    prompt = CHAT.render(SHOTS, "Q?")
    good = GenerationParams(max_tokens=4)
    bad = GenerationParams(max_tokens=4, temperature=-0.5)  # generate refuses it
    expected = single.generate(prompt, adapter="alpha", params=good)
    outcomes: dict[int, Any] = {}

    def work(i: int) -> None:
        try:
            outcomes[i] = backend.generate(prompt, adapter="alpha", params=bad if i % 2 else good)
        except ValueError as e:
            outcomes[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [type(outcomes[i]) for i in range(8)] == [Generation, ValueError] * 4
    assert all(outcomes[i] == expected for i in range(0, 8, 2))


def test_a_cancelled_call_stops_its_row_and_spares_the_others(
    tiny_model_dir: Path,
    tiny_adapter_dirs: dict[str, Path],
    single: RecordingLocalBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = _backend(tiny_model_dir, tiny_adapter_dirs, 2)
    prompt, params = CHAT.render(SHOTS, "Q?"), GenerationParams(max_tokens=6)
    expected = single.generate(prompt, adapter="alpha", params=params)
    started, go = threading.Event(), threading.Event()
    real = backend._run_generate

    def held(input_ids: Any, attention_mask: Any, kwargs: dict[str, Any]) -> Any:
        started.set()  # the batch is running: cancelling can no longer drop the call
        assert go.wait(30)
        return real(input_ids, attention_mask, kwargs)

    monkeypatch.setattr(backend, "_run_generate", held)
    long_params = GenerationParams(max_tokens=200)

    async def run() -> Generation:
        doomed = asyncio.ensure_future(
            backend.agenerate(prompt, adapter="alpha", params=long_params)
        )
        kept = asyncio.ensure_future(backend.agenerate(prompt, adapter="alpha", params=params))
        while not started.is_set():
            await asyncio.sleep(0.01)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        go.set()
        return await kept

    assert asyncio.run(run()) == expected
    (call, _) = backend.generate_calls
    (stops,) = call["stopping_criteria"]
    assert stops.max_new == [200, 6]
    assert stops.ended[0] == 1  # the cancelled row stopped after its first token


def test_the_worker_thread_ends_when_idle(single: RecordingLocalBackend) -> None:
    single.generate(CHAT.render([], "Q?"), adapter=None, params=GenerationParams(max_tokens=1))
    deadline = time.monotonic() + 10
    while single._batcher._worker is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert single._batcher._worker is None
    assert not [t for t in threading.enumerate() if t.name == "fspo-local-batcher"]


def test_batch_waits_for_its_slow_calls_but_unannounced_calls_do_not_wait(
    tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ChatFSPO.batch` announces its calls: one slow prompt does not split the batch."""
    backend = RecordingLocalBackend(
        tiny_model_dir,
        adapters={"alpha": tiny_adapter_dirs["alpha"]},
        max_batch_size=8,
        batch_window_s=0.0,  # unannounced calls never wait for company
    )
    memory = PreferenceMemory()
    users = [f"user{i}" for i in range(4)]
    for user in users:
        memory.add(user, prompt="Q?", chosen="Yes.", rejected="No.")
    select = memory.select

    def slow_select(user_id: str, *args: Any, **kwargs: Any) -> Any:
        if user_id == "user3":
            time.sleep(0.1)  # far over the window: unannounced, it would run on its own
        return select(user_id, *args, **kwargs)

    monkeypatch.setattr(memory, "select", slow_select)
    fmt = PromptFormat.from_pretrained(tiny_adapter_dirs["alpha"])
    llm = ChatFSPO(backend=backend, prompt_format=fmt, model="alpha", memory=memory, max_tokens=3)
    configs: list[Any] = [{"configurable": {"user_id": u}} for u in users]
    llm.batch(["Q?"] * 4, config=configs)
    assert backend.batch_sizes == [4]
    backend.reset()
    for config in configs:  # one after another: each runs at once, alone
        llm.invoke("Q?", config=config)
    assert backend.batch_sizes == [1, 1, 1, 1]


def test_a_beam_search_runs_alone_beside_a_batch(backend: RecordingLocalBackend) -> None:
    prompt = CHAT.render(SHOTS, "Q?")
    beam = GenerationParams(max_tokens=5, extra={"num_beams": 2})
    greedy: Job = (prompt, "alpha", GenerationParams(max_tokens=5))
    jobs: list[Job] = [(prompt, "alpha", beam), *[greedy] * 7]
    results = _in_threads(backend, jobs)
    assert sorted(backend.batch_sizes) == [1, 7]
    ids = torch.tensor([backend.encode_prompt(prompt)])
    with torch.inference_mode():
        backend._model.set_adapter("alpha")
        raw = backend._model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=5,
            num_beams=2,
            do_sample=False,
            pad_token_id=backend.tokenizer.pad_token_id,
        )
    assert results[0].token_ids == raw[0, ids.shape[1] :].tolist()
    assert len({r.text for r in results[1:]}) == 1
