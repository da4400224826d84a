"""`OpenAICompatibleBackend` against the test server in its vLLM and SGLang flavors.

The server generates with the tiny Llama and its LoRA adapters; vLLM takes the adapter name as
`model`, SGLang takes `"<base>:<adapter>"`. Assertions read the server's request log.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend
from langchain_fspo.errors import AdapterNotFoundError, InferenceServerError
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt
from tests.tgi_server import TGITestServer
from tests.tgi_server.fixtures import BASE_MODEL_ID

pytestmark = pytest.mark.integration

STYLES = ["chat", "paper"]
ROUTE = {"chat": "/v1/chat/completions", "paper": "/v1/completions"}
PARAMS = GenerationParams(max_tokens=4, temperature=0)


def _prompt(style: str) -> RenderedPrompt:
    return PromptFormat(style=style).render([], "Review the film Dune.")


@pytest.fixture(params=["vllm", "sglang"])
def served(
    request: pytest.FixtureRequest, tiny_stack
) -> tuple[TGITestServer, OpenAICompatibleBackend]:
    server: TGITestServer = request.getfixturevalue(request.param)
    backend = OpenAICompatibleBackend(f"{server.url}/v1", flavor=request.param, backoff_factor=0.01)
    return server, backend


def _model_for(flavor: str, adapter: str) -> str:
    return adapter if flavor == "vllm" else f"{BASE_MODEL_ID}:{adapter}"


@pytest.mark.parametrize("style", STYLES)
def test_adapter_travels_in_model(served, style: str) -> None:
    server, backend = served
    result = backend.generate(_prompt(style), adapter="fspo-bob", params=PARAMS)
    chunks = list(backend.stream(_prompt(style), adapter="fspo-carol", params=PARAMS))
    first, second = server.requests_to(ROUTE[style])
    assert first.body["model"] == _model_for(backend.flavor, "fspo-bob")
    assert second.body["model"] == _model_for(backend.flavor, "fspo-carol")
    assert [first.served_adapter, second.served_adapter] == ["fspo-bob", "fspo-carol"]
    assert second.body["stream_options"] == {"include_usage": True}
    assert result.model_name == "fspo-bob"
    assert result.output_tokens == 4
    assert chunks[-1].output_tokens == 4
    assert chunks[-1].input_tokens
    if style == "paper":
        assert first.body["prompt"] == [_prompt("paper").text]
    else:
        assert first.body["messages"] == _prompt("chat").messages


@pytest.mark.parametrize("style", STYLES)
async def test_async_adapter_travels_in_model(served, style: str) -> None:
    server, backend = served
    result = await backend.agenerate(_prompt(style), adapter="fspo-alice", params=PARAMS)
    chunks = [c async for c in backend.astream(_prompt(style), adapter="fspo-alice", params=PARAMS)]
    assert [r.served_adapter for r in server.requests_to(ROUTE[style])] == ["fspo-alice"] * 2
    assert result.output_tokens == 4
    assert chunks[-1].finish_reason == "length"


def test_base_model_is_discovered_from_v1_models(served) -> None:
    server, backend = served
    result = backend.generate(_prompt("chat"), adapter=None, params=PARAMS)
    assert server.requests[0].path == "/v1/models"
    assert server.requests[1].body["model"] == BASE_MODEL_ID
    assert server.requests[1].served_adapter is None
    assert result.model_name == BASE_MODEL_ID


def test_check_adapter_asks_the_server(served) -> None:
    server, backend = served
    backend.check_adapter("fspo-alice")
    with pytest.raises(AdapterNotFoundError, match="fspo-nobody"):
        backend.check_adapter("fspo-nobody")
    assert {r.path for r in server.requests} == {"/v1/models"}


def test_allow_list_refuses_before_sending(served) -> None:
    server, backend = served
    allowed = OpenAICompatibleBackend(
        server.url, flavor=backend.flavor, model=BASE_MODEL_ID, adapters=["fspo-alice"]
    )
    with pytest.raises(AdapterNotFoundError, match="fspo-bob"):
        allowed.generate(_prompt("chat"), adapter="fspo-bob", params=PARAMS)
    assert server.requests == []


def test_unknown_adapter_is_an_error_not_the_base_model(served) -> None:
    server, backend = served
    with pytest.raises((AdapterNotFoundError, InferenceServerError), match="fspo-nobody") as info:
        backend.generate(_prompt("chat"), adapter="fspo-nobody", params=PARAMS)
    if isinstance(info.value, InferenceServerError):  # the server's 404 becomes the typed error
        assert info.value.status_code == 400
    else:
        assert isinstance(info.value.__cause__, InferenceServerError)
        assert info.value.__cause__.status_code == 404
    assert len(server.requests_to("/v1/chat/completions")) == 1  # a 4xx is not retried


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


@pytest.mark.parametrize("style", STYLES)
def test_every_param_and_passthrough_is_sent(served, style: str) -> None:
    server, backend = served
    fields = {f.name for f in dataclasses.fields(GenerationParams)} - {"extra"}
    assert set(VALUES) == fields, "a new GenerationParams field needs a wire test"
    tools = [{"type": "function", "function": {"name": "rate", "parameters": {"type": "object"}}}]
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object"}},
    }
    extra = {
        "tools": tools,
        "tool_choice": "required",
        "response_format": response_format,
        "min_p": 0.05,
    }
    backend.generate(
        _prompt(style), adapter="fspo-alice", params=GenerationParams(**VALUES, extra=extra)
    )
    (request,) = server.requests_to(ROUTE[style])
    for name, value in VALUES.items():
        assert request.body[name] == value, name
    for name, value in extra.items():
        assert request.body[name] == value, name


@pytest.mark.parametrize("style", STYLES)
def test_retries_503_not_400(served, style: str) -> None:
    server, backend = served
    backend.model = BASE_MODEL_ID  # no /v1/models call in the log
    server.fail_next(2, status=503)
    backend.generate(_prompt(style), adapter="fspo-alice", params=PARAMS)
    assert [r.status for r in server.requests] == [503, 503, 200]
    server.reset()
    server.fail_next(1, status=400)
    with pytest.raises(InferenceServerError, match="HTTP 400"):
        backend.generate(_prompt(style), adapter="fspo-alice", params=PARAMS)
    assert [r.status for r in server.requests] == [400]


@pytest.mark.parametrize("style", STYLES)
def test_cut_stream_raises(served, style: str) -> None:
    server, backend = served
    backend.model = BASE_MODEL_ID
    server.cut_stream_next(1, after_events=1)
    with pytest.raises(InferenceServerError, match="cut off after 1 chunk"):
        list(backend.stream(_prompt(style), adapter="fspo-alice", params=PARAMS))
    server.truncate_stream_next(1, after_events=1)
    with pytest.raises(InferenceServerError, match=r"without data: \[DONE\]"):
        list(backend.stream(_prompt(style), adapter="fspo-alice", params=PARAMS))
    assert len(server.requests) == 2


async def test_async_cut_stream_and_malformed_raise(served) -> None:
    server, backend = served
    backend.model = BASE_MODEL_ID
    server.cut_stream_next(1, after_events=1)
    with pytest.raises(InferenceServerError, match="cut off"):
        async for _ in backend.astream(_prompt("chat"), adapter="fspo-alice", params=PARAMS):
            pass
    server.malformed_next(1)
    with pytest.raises(InferenceServerError, match="malformed"):
        await backend.agenerate(_prompt("paper"), adapter="fspo-alice", params=PARAMS)
    assert len(server.requests) == 2


def test_api_key_is_secret(
    served, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    backend = OpenAICompatibleBackend(
        server.url, model=BASE_MODEL_ID, backoff_factor=0.01, max_retries=1
    )
    assert "sk-from-env" not in repr(backend)
    server.fail_next(2, status=503)
    with caplog.at_level(logging.DEBUG), pytest.raises(InferenceServerError) as info:
        backend.generate(_prompt("chat"), adapter=None, params=PARAMS)
    assert "sk-from-env" not in str(info.value)
    assert "sk-from-env" not in caplog.text
    assert {r.headers.get("authorization") for r in server.requests} == {"Bearer sk-from-env"}
