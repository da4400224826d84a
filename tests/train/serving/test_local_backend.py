"""`fspo_train.testing` and `LocalBackend` on a real tiny Llama with real PEFT adapters (CPU)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

import pytest

from langchain_fspo import PreferenceExample, PromptFormat
from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.errors import AdapterNotFoundError
from tests.recording import RecordingLocalBackend

pytestmark = pytest.mark.train

torch = pytest.importorskip("torch")

SHOTS = [
    PreferenceExample(prompt="Best pet?", chosen="A cat.", rejected="A dog.", id="e1"),
    PreferenceExample(prompt="Best drink?", chosen="Tea.", rejected="Coffee.", id="e2"),
]
CHAT = PromptFormat(style="chat", num_shots=4)
PAPER = PromptFormat(style="paper", num_shots=4)


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]) -> RecordingLocalBackend:
    return RecordingLocalBackend(
        tiny_model_dir,
        adapters={"alpha": tiny_adapter_dirs["alpha"], "beta": tiny_adapter_dirs["beta"]},
        default_max_tokens=8,
    )


@pytest.fixture(autouse=True)
def _fresh_records(backend: RecordingLocalBackend) -> None:
    backend.reset()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- the tiny kit


def test_tiny_base_model_is_a_hub_like_folder_and_deterministic(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoConfig, AutoTokenizer

    from fspo_train.testing.tiny import build_tiny_base_model

    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    config = AutoConfig.from_pretrained(str(tiny_model_dir))
    assert config.model_type == "llama"
    assert (config.hidden_size, config.num_hidden_layers) == (64, 2)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<s>",
        "</s>",
        "<pad>",
    )
    assert tokenizer.chat_template
    assert len(tokenizer) == config.vocab_size
    text = "Review 'Dune': épique ✓"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text

    again = build_tiny_base_model(tmp_path / "again", seed=0)
    other = build_tiny_base_model(tmp_path / "other", seed=1)
    assert _digest(again / "model.safetensors") == _digest(tiny_model_dir / "model.safetensors")
    assert _digest(again / "tokenizer.json") == _digest(tiny_model_dir / "tokenizer.json")
    assert _digest(other / "model.safetensors") != _digest(tiny_model_dir / "model.safetensors")


def test_tiny_base_model_trains_its_tokenizer_on_the_given_corpus(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from fspo_train.testing.tiny import build_tiny_base_model

    folder = build_tiny_base_model(
        tmp_path / "m", corpus=["zyzzyva zyzzyva zyzzyva"] * 20, vocab_size=300, hidden_size=32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert len(tokenizer("zyzzyva", add_special_tokens=False)["input_ids"]) == 1


def test_tiny_adapter_folder_changes_outputs_and_is_deterministic(
    tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from fspo_train.testing.tiny import build_tiny_adapter

    folder = tiny_adapter_dirs["alpha"]
    assert {p.name for p in folder.iterdir()} == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "fspo_format.json",
    }
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir.resolve())
    assert config["peft_type"] == "LORA"
    weights = load_file(str(folder / "adapter_model.safetensors"))
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b
    assert all(t.abs().sum() > 0 for t in lora_b)
    assert PromptFormat.from_pretrained(folder).style == "chat"

    again = build_tiny_adapter(tiny_model_dir, tmp_path / "again", seed=1)
    assert _digest(again / "adapter_model.safetensors") == _digest(
        folder / "adapter_model.safetensors"
    )

    ids = torch.tensor([[5, 6, 7, 8, 9]])
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    base_logits = base(ids).logits
    peft_model = PeftModel.from_pretrained(base, str(folder))
    assert not torch.allclose(peft_model(ids).logits, base_logits, atol=1e-4)


# ---------------------------------------------------------------- rendering


def test_paper_style_is_raw_text_without_special_tokens(backend: RecordingLocalBackend) -> None:
    prompt = PAPER.render(SHOTS, "Best book?")
    ids = backend.encode_prompt(prompt)
    assert ids == backend.tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    assert backend.tokenizer.bos_token_id not in ids
    assert backend.tokenizer.decode(ids) == prompt.text


def test_chat_style_applies_the_chat_template(backend: RecordingLocalBackend) -> None:
    prompt = CHAT.render(SHOTS, "Best book?")
    text = backend.tokenizer.decode(backend.encode_prompt(prompt))
    assert text == f"<s><|user|>\n{prompt.text}</s>\n<|assistant|>\n"


def test_count_tokens_uses_the_tokenizer(backend: RecordingLocalBackend) -> None:
    text = "# Task\n## Question \nBest book?"
    assert backend.count_tokens(text) == len(
        backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    )
    assert backend.count_tokens("") == 0


# ---------------------------------------------------------------- generation


def test_every_parameter_reaches_model_generate(backend: RecordingLocalBackend) -> None:
    params = GenerationParams(
        temperature=0.7,
        max_tokens=5,
        top_p=0.9,
        top_k=20,
        seed=11,
        stop=["\n\n"],
        frequency_penalty=0.5,
        presence_penalty=0.25,
        repetition_penalty=1.3,
        extra={"min_p": 0.01},
    )
    result = backend.generate(CHAT.render(SHOTS, "Q?"), adapter="alpha", params=params)
    (call,) = backend.generate_calls
    assert call["do_sample"] is True
    assert call["temperature"] == 0.7
    assert call["top_p"] == 0.9
    assert call["top_k"] == 20
    assert call["max_new_tokens"] == 5
    (stops,) = call["stopping_criteria"]  # per row: max_tokens, stop strings, EOS
    assert (stops.max_new, stops.stops) == ([5], [["\n\n"]])
    assert call["repetition_penalty"] == 1.3
    assert call["min_p"] == 0.01
    assert call["active_adapter"] == "alpha"
    (processor,) = call["logits_processor"]
    prompt_len = len(call["input_ids"])
    seen = torch.tensor([[0] * prompt_len + [3, 1, 1]])  # the prompt, then 3, 1, 1 generated
    penalised = processor(seen, torch.zeros(1, 4))
    assert penalised.tolist() == [[0.0, -(2 * 0.5 + 0.25), 0.0, -(0.5 + 0.25)]]
    assert result.output_tokens is not None
    assert result.output_tokens <= 5
    assert result.input_tokens == len(call["input_ids"])
    again = backend.generate(CHAT.render(SHOTS, "Q?"), adapter="alpha", params=params)
    assert again.text == result.text  # the seed makes sampling reproducible


def test_temperature_zero_or_none_is_greedy(backend: RecordingLocalBackend) -> None:
    prompt = CHAT.render(SHOTS, "Q?")
    backend.generate(prompt, adapter="alpha", params=GenerationParams(temperature=0.0, top_p=0.5))
    backend.generate(prompt, adapter="alpha", params=GenerationParams())
    for call in backend.generate_calls:
        assert call["do_sample"] is False
        assert "temperature" not in call
        assert "top_p" not in call
        assert call["max_new_tokens"] == 8  # default_max_tokens


def test_unsupported_extra_is_dropped_with_a_warning(
    backend: RecordingLocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="langchain_fspo.backends.local"):
        backend.generate(
            CHAT.render([], "Q?"),
            adapter=None,
            params=GenerationParams(max_tokens=2, extra={"tools": [{"type": "function"}]}),
        )
    assert "tools" not in backend.generate_calls[0]
    assert "cannot honour 'tools'" in caplog.text


def test_usage_and_finish_reason_length(backend: RecordingLocalBackend) -> None:
    prompt = CHAT.render(SHOTS, "Q?")
    result = backend.generate(prompt, adapter="beta", params=GenerationParams(max_tokens=6))
    assert result.finish_reason == "length"
    assert result.output_tokens == 6
    assert result.input_tokens == len(backend.encode_prompt(prompt))
    assert result.model_name == "beta"


def test_stop_string_cuts_the_text_and_finishes_with_stop(backend: RecordingLocalBackend) -> None:
    prompt = CHAT.render(SHOTS, "Q?")
    full = backend.generate(prompt, adapter="alpha", params=GenerationParams(max_tokens=12)).text
    stop = full[6:9]
    assert stop
    result = backend.generate(
        prompt, adapter="alpha", params=GenerationParams(max_tokens=12, stop=[stop])
    )
    assert result.text == full[: full.index(stop)]
    assert result.finish_reason == "stop"
    assert result.output_tokens is not None
    assert result.output_tokens < 12
    streamed = list(
        backend.stream(prompt, adapter="alpha", params=GenerationParams(max_tokens=12, stop=[stop]))
    )
    assert "".join(c.text for c in streamed) == result.text
    assert streamed[-1].finish_reason == "stop"


def test_adapters_are_selected_per_call(
    backend: RecordingLocalBackend, tiny_model_dir: Path
) -> None:
    from transformers import AutoModelForCausalLM

    prompt = CHAT.render(SHOTS, "Q?")
    params = GenerationParams(max_tokens=8)
    texts = {
        a: backend.generate(prompt, adapter=a, params=params).text for a in (None, "alpha", "beta")
    }
    assert len(set(texts.values())) == 3
    ids = torch.tensor([backend.encode_prompt(prompt)])
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    out = plain.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False
    )
    assert backend.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True) == texts[None]
    # Selecting alpha after beta gives alpha's answer again (no state leaks between calls).
    assert backend.generate(prompt, adapter="alpha", params=params).text == texts["alpha"]


def test_concurrent_calls_get_their_own_adapter(backend: RecordingLocalBackend) -> None:
    prompt = CHAT.render(SHOTS, "Q?")
    params = GenerationParams(max_tokens=6)
    expected = {
        a: backend.generate(prompt, adapter=a, params=params).text for a in (None, "alpha", "beta")
    }
    order = [None, "alpha", "beta"] * 4
    results: dict[int, str] = {}

    def work(i: int, adapter: str | None) -> None:
        if i % 2:
            results[i] = "".join(
                c.text for c in backend.stream(prompt, adapter=adapter, params=params)
            )
        else:
            results[i] = backend.generate(prompt, adapter=adapter, params=params).text

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(order)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: results[i] for i in range(len(order))} == {
        i: expected[a] for i, a in enumerate(order)
    }


def test_stream_is_token_by_token_and_equals_generate(backend: RecordingLocalBackend) -> None:
    prompt = PAPER.render(SHOTS, "Q?")
    params = GenerationParams(max_tokens=10)
    whole = backend.generate(prompt, adapter="alpha", params=params)
    chunks = list(backend.stream(prompt, adapter="alpha", params=params))
    assert len(chunks) >= 5
    assert "".join(c.text for c in chunks) == whole.text
    assert all(c.finish_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert (last.finish_reason, last.input_tokens, last.output_tokens, last.model_name) == (
        whole.finish_reason,
        whole.input_tokens,
        whole.output_tokens,
        "alpha",
    )


def test_closing_a_stream_early_stops_generation(backend: RecordingLocalBackend) -> None:
    prompt = CHAT.render(SHOTS, "Q?")
    stream = backend.stream(prompt, adapter="alpha", params=GenerationParams(max_tokens=200))
    next(stream)
    stream.close()  # joins the worker: returns only once generation has stopped
    # The lock is free again, and a new call works.
    result = backend.generate(prompt, adapter="beta", params=GenerationParams(max_tokens=3))
    assert result.output_tokens == 3


async def test_async_generate_and_stream(backend: RecordingLocalBackend) -> None:
    prompt = CHAT.render(SHOTS, "Q?")
    params = GenerationParams(max_tokens=6)
    whole = backend.generate(prompt, adapter="beta", params=params)
    assert (await backend.agenerate(prompt, adapter="beta", params=params)).text == whole.text
    chunks = [c async for c in backend.astream(prompt, adapter="beta", params=params)]
    assert "".join(c.text for c in chunks) == whole.text


def test_unknown_adapter_is_an_error(backend: RecordingLocalBackend) -> None:
    with pytest.raises(AdapterNotFoundError, match="'gamma' is not loaded"):
        backend.generate(CHAT.render([], "Q?"), adapter="gamma", params=GenerationParams())
    with pytest.raises(AdapterNotFoundError, match="'gamma'"):
        list(backend.stream(CHAT.render([], "Q?"), adapter="gamma", params=GenerationParams()))
    backend.check_adapter(None)
    backend.check_adapter("alpha")
    assert backend.generate_calls == []


def test_add_adapter_and_duplicate_names(
    tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]
) -> None:
    from langchain_fspo.backends.local import LocalBackend

    backend = LocalBackend(tiny_model_dir)
    prompt = CHAT.render([], "Q?")
    params = GenerationParams(max_tokens=4)
    base = backend.generate(prompt, adapter=None, params=params).text
    backend.add_adapter("rat", tiny_adapter_dirs["rat"])
    assert backend.adapters == {"rat": str(tiny_adapter_dirs["rat"])}
    assert backend.generate(prompt, adapter=None, params=params).text == base
    assert backend.generate(prompt, adapter="rat", params=params).text != base
    with pytest.raises(ValueError, match="already loaded"):
        backend.add_adapter("rat", tiny_adapter_dirs["alpha"])


def test_from_adapter_dir_reads_the_base_model(
    tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    from langchain_fspo.backends.local import LocalBackend

    backend = LocalBackend.from_adapter_dir(tiny_adapter_dirs["paper"])
    assert backend.base_model == str(tiny_model_dir.resolve())
    assert list(backend.adapters) == ["paper"]
    named = LocalBackend.from_adapter_dir(tiny_adapter_dirs["paper"], name="p")
    assert list(named.adapters) == ["p"]
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(AdapterNotFoundError, match="base_model_name_or_path"):
        LocalBackend.from_adapter_dir(tmp_path)


def test_bad_dtype_and_missing_chat_template_are_clear_errors(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from langchain_fspo.backends.local import LocalBackend
    from langchain_fspo.errors import PromptFormatError

    with pytest.raises(ValueError, match="Unknown dtype 'float99'"):
        LocalBackend(tiny_model_dir, dtype="float99")
    plain = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, plain)
    (plain / "chat_template.jinja").unlink()
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    backend = LocalBackend(plain)
    assert backend.chat_template is None
    with pytest.raises(PromptFormatError, match="no chat template"):
        backend.generate(CHAT.render([], "Q?"), adapter=None, params=GenerationParams())
    # Paper prompts need no template.
    result = backend.generate(
        PAPER.render([], "Q?"), adapter=None, params=GenerationParams(max_tokens=2)
    )
    assert result.output_tokens == 2


def test_seed_does_not_disturb_the_global_rng(backend: RecordingLocalBackend) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    backend.generate(
        CHAT.render([], "Q?"),
        adapter="alpha",
        params=GenerationParams(temperature=1.0, seed=7, max_tokens=3),
    )
    assert torch.equal(torch.rand(3), expected)
