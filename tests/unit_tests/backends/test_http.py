"""Pure helpers of the HTTP backends: retry policy, error classification, SSE, URLs, mapping."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from langchain_fspo.backends._http import (
    AttemptTimeoutError,
    CallContext,
    MalformedResponseError,
    classify,
    join_url,
    normalize_base_url,
    parse_retry_after,
    redact_text,
    redact_url,
    resolve_api_key,
    safe_url,
)
from langchain_fspo.backends._retry import RetryPolicy
from langchain_fspo.backends._sse import sse_payloads
from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.backends.tgi import TGIBackend, parse_lora_adapters
from langchain_fspo.errors import (
    InferenceServerError,
    InferenceTimeoutError,
    UnsupportedParameterError,
)

CTX = CallContext(backend="TGI", url="http://user:pw@tgi:8080", adapter="org/a", route="/generate")


def _status_error(
    status: int, body: object, headers: dict[str, str] | None = None
) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://tgi:8080/generate")
    response = httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.HTTPStatusError("failed", request=request, response=response)


def test_backoff_doubles_up_to_the_cap_with_small_jitter() -> None:
    policy = RetryPolicy(max_retries=5, backoff_factor=0.5, backoff_max=3.0)
    for retry, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (5, 3.0)]:
        assert base <= policy.delay(retry) <= base * 1.1
    assert 2.5 <= policy.delay(1, retry_after=2.5) <= 2.75  # the server's Retry-After wins


@pytest.mark.parametrize("kwargs", [{"max_retries": -1}, {"backoff_factor": -0.1}])
def test_retry_policy_rejects_negative_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (429, True),
        (500, True),
        (503, True),
        (504, True),
        (400, False),
        (401, False),
        (404, False),
        (422, False),
    ],
)
def test_classify_statuses(status: int, retry: bool) -> None:
    should_retry, error, _ = classify(
        _status_error(status, {"error": "boom", "error_type": "x"}), CTX
    )
    assert should_retry is retry
    assert error.status_code == status
    assert error.adapter == "org/a"
    assert error.retryable is False
    assert "boom (x)" in str(error)
    assert "pw" not in str(error)
    assert error.url == "http://tgi:8080"


def test_classify_reads_openai_error_bodies_and_retry_after() -> None:
    _, error, retry_after = classify(
        _status_error(429, {"error": {"message": "slow down"}}, {"Retry-After": "3"}), CTX
    )
    assert "slow down" in str(error)
    assert retry_after == 3.0


def test_classify_transport_and_malformed() -> None:
    assert classify(httpx.ConnectError("refused"), CTX)[0] is True
    assert classify(httpx.ReadTimeout("slow"), CTX)[0] is True
    retry, error, _ = classify(MalformedResponseError("no choices"), CTX)
    assert retry is False
    assert "malformed response: no choices" in str(error)
    assert classify(InferenceServerError("as is"), CTX)[1].args == ("as is",)


def test_sse_payloads_stop_at_done_and_reject_garbage() -> None:
    lines = iter(
        [
            ": comment",
            "",
            'data: {"a": 1}',
            "event: x",
            'data:{"b": 2}',
            "data: [DONE]",
            'data: {"c": 3}',
        ]
    )
    assert list(sse_payloads(lines)) == [{"a": 1}, {"b": 2}, None]
    with pytest.raises(MalformedResponseError, match="not JSON"):
        list(sse_payloads(iter(['data: {"a": '])))
    with pytest.raises(MalformedResponseError, match="not a JSON object"):
        list(sse_payloads(iter(["data: [1, 2]"])))


def test_urls() -> None:
    assert safe_url("https://u:secret@host:8443/v1?token=abc") == "https://host:8443/v1"
    assert normalize_base_url("http://h:8080/v1/") == "http://h:8080"
    assert normalize_base_url("http://h:8080/") == "http://h:8080"
    assert normalize_base_url("http://h/v1/?api-version=1") == "http://h?api-version=1"
    assert join_url("http://h/base?a=1&b=2", "/generate") == "http://h/base/generate?a=1&b=2"
    assert redact_url("https://tok@h/x?y=1") == "https://***@h/x?y=1"
    assert (
        redact_text("see http://a:b@h/ and https://c:d@i/")
        == "see http://***@h/ and https://***@i/"
    )


def test_an_empty_api_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert resolve_api_key("", "OPENAI_API_KEY") is None
    assert resolve_api_key(None, "OPENAI_API_KEY") == SecretStr("from-env")
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert resolve_api_key(None, "OPENAI_API_KEY") is None


def test_retry_after_seconds_or_http_date() -> None:
    now = 1796551200.0  # Sun, 06 Dec 2026 10:00:00 GMT
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after("Sun, 06 Dec 2026 10:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("Sun, 06 Dec 2026 09:59:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("later", now=now) is None
    assert parse_retry_after("nan", now=now) is None
    policy = RetryPolicy(backoff_factor=0.01, backoff_max=8)
    assert 5.0 <= policy.delay(1, retry_after=5.0) <= 5.5
    assert policy.waits_too_long(9.0)
    assert not policy.waits_too_long(8.0)


def test_error_messages_quote_a_few_kb_of_the_body() -> None:
    body = {"error": "too big " + "y" * 1_000_000}
    _, error, _ = classify(_status_error(400, body), CTX)
    assert len(str(error)) < 2_500
    assert "too big" in str(error)
    assert error.body is not None
    assert len(error.body) > 1_000_000


def test_timeouts_classify_as_retryable_timeout_errors() -> None:
    retry, error, _ = classify(AttemptTimeoutError("no complete answer within 1s"), CTX)
    assert retry is True
    assert isinstance(error, InferenceTimeoutError)
    assert isinstance(error, TimeoutError)
    retry, error, _ = classify(httpx.ReadTimeout("slow"), CTX)
    assert retry is True
    assert isinstance(error, InferenceTimeoutError)


def test_lora_adapters_spec() -> None:
    assert parse_lora_adapters("a/b,c/d@main, name=/x/y ,") == ["a/b", "c/d", "name"]
    assert parse_lora_adapters(["x", "y=/p"]) == ["x", "y"]


def test_tgi_request_bodies_without_network() -> None:
    backend = TGIBackend("http://tgi:8080")
    params = GenerationParams(temperature=0, extra={"tools": [], "my_flag": 1, "n": None})
    chat = backend.chat_body([], None, params, stream=True)
    assert chat["model"] == "tgi"
    assert chat["temperature"] == 0  # TGI's chat route takes 0 (greedy)
    assert chat["my_flag"] == 1
    assert "n" not in chat  # no nulls
    assert chat["stream_options"] == {"include_usage": True}
    schema = {"type": "json_schema", "json_schema": {"schema": {"type": "array"}}}
    chat = backend.chat_body(
        [], None, GenerationParams(extra={"response_format": schema}), stream=False
    )
    assert chat["response_format"] == {"type": "json_object", "value": {"type": "array"}}
    paper = backend.generate_body(
        "Hi", "org/a", GenerationParams(temperature=0.3, max_tokens=5), stream=False
    )
    assert paper["inputs"] == "Hi"
    assert paper["stream"] is False
    assert paper["parameters"]["adapter_id"] == "org/a"
    assert paper["parameters"]["do_sample"] is True
    assert paper["parameters"]["max_new_tokens"] == 5
    assert None not in paper["parameters"].values()
    with pytest.raises(UnsupportedParameterError, match="top_k"):
        backend.chat_body([], None, GenerationParams(top_k=3), stream=False)
    with pytest.raises(UnsupportedParameterError, match="presence_penalty"):
        backend.generate_body("Hi", None, GenerationParams(presence_penalty=0.1), stream=False)


def test_tgi_docstring_examples_run() -> None:
    import doctest

    from langchain_fspo.backends import tgi

    result = doctest.testmod(tgi, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_tgi_default_key_is_what_huggingface_hub_would_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from langchain_fspo.backends import tgi

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(tgi, "_hub_token", lambda: "hf_login_token")
    assert TGIBackend("http://tgi:8080").api_key == SecretStr("hf_login_token")
    assert TGIBackend("http://tgi:8080", api_key="").api_key is None  # "" means none
    monkeypatch.setattr(tgi, "_hub_token", lambda: None)
    backend = TGIBackend("http://tgi:8080")
    assert backend.api_key is None
    assert "authorization" not in backend._http.headers


def test_json_bodies_use_json_for_what_orjson_refuses() -> None:
    from langchain_fspo.backends._json import dumps, loads

    assert loads(dumps({"a": [1, "é"], "b": None})) == {"a": [1, "é"], "b": None}
    assert loads(dumps({1: "x"})) == {"1": "x"}  # a non-str key, as json writes it
    with pytest.raises(json.JSONDecodeError):
        loads(b'{"a": ')


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_number_is_refused_not_sent_as_null(bad: float) -> None:
    from langchain_fspo.backends._json import dumps

    with pytest.raises(ValueError, match="JSON compliant"):
        dumps({"temperature": bad, "messages": [{"role": "user", "content": "hi"}]})


def test_request_headers_are_built_once_with_the_callers_winning() -> None:
    from langchain_fspo.backends._json_http import JsonHttp

    plain = JsonHttp("http://h", headers={}, api_key=SecretStr("k"))
    assert plain.headers["user-agent"].startswith("langchain-fspo/")
    assert plain.headers["authorization"] == "Bearer k"
    mine = JsonHttp("http://u:p@h", headers={"User-Agent": "mine"}, api_key=SecretStr("k"))
    assert mine.headers["user-agent"] == "mine"
    assert "User-Agent" not in mine.headers  # one header, whatever the caller's case
    assert mine.headers["authorization"] == "Basic dTpw"  # user:password in the URL wins
