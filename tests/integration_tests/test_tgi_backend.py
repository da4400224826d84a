"""`TGIBackend` against the TGI test server serving the tiny Llama and its LoRA adapters.

Everything is asserted from the server's request log: what reached "TGI" on the wire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.backends.tgi import TGIBackend, parse_lora_adapters
from langchain_fspo.errors import AdapterNotFoundError, UnsupportedParameterError
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt
from tests.tgi_server import TGITestServer
from tests.tgi_server.fixtures import ADAPTERS

pytestmark = pytest.mark.integration

STYLES = ["chat", "paper"]
ROUTE = {"chat": "/v1/chat/completions", "paper": "/generate"}
STREAM_ROUTE = {"chat": "/v1/chat/completions", "paper": "/generate_stream"}


def _prompt(style: str, question: str = "Review the film Dune.") -> RenderedPrompt:
    fmt = PromptFormat(style=style)
    shots = [PreferenceExample(prompt="Review Heat.", chosen="Tense and great.", rejected="Long.")]
    return fmt.render(shots, question)


def _backend(server: TGITestServer, **kwargs) -> TGIBackend:
    kwargs.setdefault("adapters", list(ADAPTERS))
    kwargs.setdefault("backoff_factor", 0.01)
    return TGIBackend(server.url, **kwargs)


def _adapter_on_wire(style: str, body: dict[str, Any]) -> str | None:
    if style == "chat":
        return body["model"]
    return body.get("parameters", {}).get("adapter_id")


# ---------------------------------------------------------------------- adapters


@pytest.mark.parametrize("style", STYLES)
def test_adapter_reaches_tgi_sync_and_stream(tgi: TGITestServer, style: str) -> None:
    backend = _backend(tgi)
    params = GenerationParams(max_tokens=4, temperature=0)
    result = backend.generate(_prompt(style), adapter="fspo-bob", params=params)
    chunks = list(backend.stream(_prompt(style), adapter="fspo-carol", params=params))
    sent, streamed = tgi.requests
    assert [sent.path, streamed.path] == [ROUTE[style], STREAM_ROUTE[style]]
    assert streamed.body.get("stream") is True
    assert _adapter_on_wire(style, sent.body) == "fspo-bob"
    assert sent.served_adapter == "fspo-bob"
    assert _adapter_on_wire(style, streamed.body) == "fspo-carol"
    assert streamed.served_adapter == "fspo-carol"
    assert result.model_name == "fspo-bob"
    assert result.output_tokens == 4
    assert chunks[-1].model_name == "fspo-carol"
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].output_tokens == 4
    assert chunks[-1].input_tokens is not None
    assert chunks[-1].input_tokens > 0
    assert "".join(c.text for c in chunks[:-1])


@pytest.mark.parametrize("style", STYLES)
async def test_adapter_reaches_tgi_async(tgi: TGITestServer, style: str) -> None:
    backend = _backend(tgi)
    params = GenerationParams(max_tokens=3, temperature=0)
    result = await backend.agenerate(_prompt(style), adapter="fspo-alice", params=params)
    chunks = [c async for c in backend.astream(_prompt(style), adapter="fspo-bob", params=params)]
    assert [r.served_adapter for r in tgi.requests] == ["fspo-alice", "fspo-bob"]
    assert [_adapter_on_wire(style, r.body) for r in tgi.requests] == ["fspo-alice", "fspo-bob"]
    assert result.output_tokens == 3
    assert chunks[-1].output_tokens == 3


def test_adapters_answer_differently_and_base_model_is_tgi(tgi: TGITestServer) -> None:
    backend = _backend(tgi)
    params = GenerationParams(max_tokens=8, temperature=0)
    texts = {
        a: backend.generate(_prompt("chat"), adapter=a, params=params).text
        for a in [None, *ADAPTERS]
    }
    assert len(set(texts.values())) == len(texts), texts
    assert tgi.requests[0].body["model"] == "tgi"
    assert tgi.requests[0].served_adapter is None


def test_same_text_through_the_wire_as_in_process(tgi: TGITestServer, tiny_stack) -> None:
    params = GenerationParams(max_tokens=8, temperature=0)
    for style in STYLES:
        prompt = _prompt(style)
        remote = _backend(tgi).generate(prompt, adapter="fspo-alice", params=params)
        local = tiny_stack.backend.generate(prompt, adapter="fspo-alice", params=params)
        assert remote.text == local.text
        assert remote.output_tokens == local.output_tokens


def test_allow_list_refuses_unknown_adapter_before_sending(tgi: TGITestServer) -> None:
    backend = _backend(tgi)
    with pytest.raises(AdapterNotFoundError, match="fspo-nobody"):
        backend.check_adapter("fspo-nobody")
    with pytest.raises(AdapterNotFoundError, match="silently"):
        backend.generate(
            _prompt("chat"), adapter="fspo-nobody", params=GenerationParams(max_tokens=2)
        )
    with pytest.raises(AdapterNotFoundError):
        list(
            backend.stream(
                _prompt("paper"), adapter="fspo-nobody", params=GenerationParams(max_tokens=2)
            )
        )
    assert tgi.requests == []
    backend.check_adapter("fspo-alice")
    backend.check_adapter(None)


def test_lora_adapters_string_is_an_allow_list(tgi: TGITestServer) -> None:
    assert parse_lora_adapters("org/a, org/b@v2,mine=/data/x,") == ["org/a", "org/b", "mine"]
    backend = TGIBackend(tgi.url, adapters="fspo-alice,fspo-bob=/adapters/bob")
    backend.check_adapter("fspo-bob")
    with pytest.raises(AdapterNotFoundError, match="LORA_ADAPTERS"):
        backend.check_adapter("fspo-carol")


def test_without_allow_list_unknown_adapter_warns_and_tgi_serves_base(
    tgi: TGITestServer, caplog: pytest.LogCaptureFixture
) -> None:
    backend = TGIBackend(tgi.url)
    with caplog.at_level(logging.WARNING, logger="langchain_fspo.backends"):
        backend.check_adapter("fspo-nobody")
    assert "cannot verify adapter 'fspo-nobody'" in caplog.text
    backend.generate(_prompt("chat"), adapter="fspo-nobody", params=GenerationParams(max_tokens=2))
    assert tgi.requests[-1].body["model"] == "fspo-nobody"
    assert tgi.requests[-1].served_adapter is None  # what the allow-list exists to prevent


# ---------------------------------------------------------------------- parameters

VALUES = {
    "temperature": 0.7,
    "max_tokens": 3,
    "top_p": 0.9,
    "top_k": 5,
    "seed": 11,
    "stop": ["zzz"],
    "frequency_penalty": 0.2,
    "presence_penalty": 0.3,
    "repetition_penalty": 1.2,
}
WIRE_NAME = {
    "chat": {name: name for name in VALUES if name not in {"top_k", "repetition_penalty"}},
    "paper": {
        **{name: name for name in VALUES if name != "presence_penalty"},
        "max_tokens": "max_new_tokens",
    },
}
FIELDS = [f.name for f in dataclasses.fields(GenerationParams) if f.name != "extra"]


def test_every_generation_param_has_a_test_value() -> None:
    assert sorted(VALUES) == sorted(FIELDS), "a new GenerationParams field needs a wire test"


def _sent_params(style: str, body: dict[str, Any]) -> dict[str, Any]:
    return body if style == "chat" else body["parameters"]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("field", FIELDS)
def test_each_param_is_sent_or_refused_loudly(tgi: TGITestServer, style: str, field: str) -> None:
    backend = _backend(tgi)
    params = GenerationParams(**{field: VALUES[field]})
    if field not in WIRE_NAME[style]:
        with pytest.raises(UnsupportedParameterError, match=field):
            backend.generate(_prompt(style), adapter="fspo-alice", params=params)
        assert tgi.requests == []
        return
    backend.generate(_prompt(style), adapter="fspo-alice", params=params)
    (request,) = tgi.requests
    assert _sent_params(style, request.body)[WIRE_NAME[style][field]] == VALUES[field]


@pytest.mark.parametrize("stream", [False, True])
def test_all_chat_params_and_passthrough_reach_tgi(tgi: TGITestServer, stream: bool) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "rate",
                "description": "Rate a film",
                "parameters": {"type": "object", "properties": {"stars": {"type": "integer"}}},
            },
        }
    ]
    response_format = {
        "type": "json_object",
        "value": {"type": "object", "properties": {"stars": {"type": "integer"}}},
    }
    extra = {
        "tools": tools,
        "tool_choice": "auto",
        "response_format": response_format,
        "logprobs": False,
        "custom_flag": "x",
    }
    values = {k: v for k, v in VALUES.items() if k in WIRE_NAME["chat"]}
    params = GenerationParams(**values, extra=extra)
    backend = _backend(tgi)
    if stream:
        list(backend.stream(_prompt("chat"), adapter="fspo-alice", params=params))
    else:
        backend.generate(_prompt("chat"), adapter="fspo-alice", params=params)
    (request,) = tgi.requests
    for name, value in values.items():
        assert request.body[name] == value
    assert request.body["tools"] == tools
    assert request.body["tool_choice"] == "auto"
    assert request.body["response_format"] == response_format
    assert request.body["logprobs"] is False
    assert request.body["custom_flag"] == "x"
    assert request.body["model"] == "fspo-alice"
    assert request.body["stream"] is stream
    if stream:
        assert request.body["stream_options"] == {"include_usage": True}


def test_json_mode_without_schema_gets_a_grammar_tgi_accepts(tgi: TGITestServer) -> None:
    params = GenerationParams(max_tokens=2, extra={"response_format": {"type": "json_object"}})
    _backend(tgi).generate(_prompt("chat"), adapter=None, params=params)
    assert tgi.requests[0].body["response_format"] == {
        "type": "json_object",
        "value": {"type": "object"},
    }
    assert tgi.requests[0].status == 200


def test_all_paper_params_reach_tgi(tgi: TGITestServer) -> None:
    values = {k: v for k, v in VALUES.items() if k in WIRE_NAME["paper"]}
    grammar = {"type": "json", "value": {"type": "object"}}
    params = GenerationParams(
        **values, extra={"response_format": grammar, "typical_p": 0.5, "truncate": 100}
    )
    chunks = list(_backend(tgi).stream(_prompt("paper"), adapter="fspo-carol", params=params))
    (request,) = tgi.requests_to("/generate_stream")
    sent = request.body["parameters"]
    for name, value in values.items():
        assert sent[WIRE_NAME["paper"][name]] == value
    assert sent["do_sample"] is True
    assert sent["grammar"] == grammar
    assert sent["typical_p"] == 0.5
    assert sent["truncate"] == 100
    assert sent["adapter_id"] == "fspo-carol"
    assert sent["details"] is True
    assert chunks[-1].output_tokens is not None


def test_paper_greedy_and_top_p_one_follow_tgi_rules(tgi: TGITestServer) -> None:
    params = GenerationParams(temperature=0, top_p=1.0, max_tokens=2)
    _backend(tgi).generate(_prompt("paper"), adapter=None, params=params)
    sent = tgi.requests[0].body["parameters"]
    assert sent["do_sample"] is False
    assert "temperature" not in sent  # TGI refuses temperature=0
    assert "top_p" not in sent  # TGI refuses top_p=1.0; it means "no nucleus filtering"


@pytest.mark.parametrize("key", ["tools", "logit_bias"])
def test_paper_route_refuses_chat_only_extras(tgi: TGITestServer, key: str) -> None:
    params = GenerationParams(extra={key: []})
    with pytest.raises(UnsupportedParameterError, match=key):
        _backend(tgi).generate(_prompt("paper"), adapter=None, params=params)
    assert tgi.requests == []


# ---------------------------------------------------------------------- users


async def test_concurrent_users_each_get_only_their_own_examples(tgi: TGITestServer) -> None:
    """32 concurrent async calls for 8 users: each prompt on the wire has only its user's shots."""
    users = [f"user{u}" for u in range(8)]
    examples = {
        user: [
            PreferenceExample(
                prompt=f"Q-{user}-{i}?",
                chosen=f"yes-{user}-{i}",
                rejected=f"no-{user}-{i}",
                id=f"{user}-{i}",
            )
            for i in range(3)
        ]
        for user in users
    }
    backend = _backend(tgi)
    formats = {
        "chat": PromptFormat(style="chat", num_shots=3),
        "paper": PromptFormat(style="paper", num_shots=3),
    }

    async def ask(user: str, k: int) -> tuple[str, str]:
        style = STYLES[k % 2]
        prompt = formats[style].render(examples[user], f"Final question {user} #{k}")
        adapter = ADAPTERS[k % len(ADAPTERS)]
        if k % 4 == 3:
            chunks = [
                c
                async for c in backend.astream(
                    prompt, adapter=adapter, params=GenerationParams(max_tokens=2, temperature=0)
                )
            ]
            assert chunks[-1].finish_reason is not None
        else:
            await backend.agenerate(
                prompt, adapter=adapter, params=GenerationParams(max_tokens=2, temperature=0)
            )
        return user, adapter

    results = await asyncio.gather(*(ask(user, k) for user in users for k in range(4)))
    assert len(results) == 32
    assert len(tgi.requests) == 32
    seen = set()
    for request in tgi.requests:
        text = (
            request.body["messages"][-1]["content"]
            if "messages" in request.body
            else request.body["inputs"]
        )
        (user,) = [u for u in users if f"Final question {u} #" in text]
        k = int(text.split(f"Final question {user} #")[1].split()[0])
        seen.add((user, k))
        for other in users:
            assert (f"-{other}-" in text) == (other == user), (user, other)
        for i in range(3):
            assert f"yes-{user}-{i}" in text
        assert request.served_adapter == ADAPTERS[k % len(ADAPTERS)]
    assert len(seen) == 32


# ---------------------------------------------------------------------- secrets


def test_api_key_is_secret_and_sent_as_bearer(
    tgi: TGITestServer, caplog: pytest.LogCaptureFixture
) -> None:
    backend = _backend(tgi, api_key="hf_sekret_value", max_retries=1)
    assert "hf_sekret_value" not in repr(backend)
    assert "hf_sekret_value" not in str(backend.__dict__)
    tgi.fail_next(2, status=503)
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as info:
        backend.generate(
            _prompt("chat"), adapter="fspo-alice", params=GenerationParams(max_tokens=1)
        )
    assert "hf_sekret_value" not in str(info.value)
    assert "hf_sekret_value" not in caplog.text
    assert "retry 1" in caplog.text
    assert {r.headers.get("authorization") for r in tgi.requests} == {"Bearer hf_sekret_value"}


def test_api_key_defaults_to_hf_token(tgi: TGITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    backend = _backend(tgi)
    assert "hf_from_env" not in repr(backend)
    backend.generate(_prompt("paper"), adapter=None, params=GenerationParams(max_tokens=1))
    assert tgi.requests[0].headers.get("authorization") == "Bearer hf_from_env"
