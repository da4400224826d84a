"""The TGI test server itself: wire format checked against TGI's OpenAPI spec, TGI's quirks.

These tests talk to the server with plain httpx (no client library), so that what the
backends are later tested against is known to be TGI's format.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.tgi_server import TGITestServer, schema_errors
from tests.tgi_server.fixtures import ADAPTERS, BASE_MODEL_ID
from tests.tgi_server.spec import check, spec_paths

pytestmark = pytest.mark.integration


def _sse(response: httpx.Response) -> list[str]:
    return [
        line.removeprefix("data:").strip()
        for line in response.iter_lines()
        if line.startswith("data:")
    ]


def test_spec_covers_every_route_the_server_serves(tgi: TGITestServer) -> None:
    served = {
        "/",
        "/generate",
        "/generate_stream",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/info",
        "/health",
    }
    assert served <= set(spec_paths())


def test_validation_rejects_a_bad_request_like_tgi(tgi: TGITestServer) -> None:
    response = httpx.post(
        f"{tgi.url}/generate", json={"inputs": 5, "parameters": {"stop": ["a"] * 5}}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error_type"] == "validation"
    check("ErrorResponse", body)
    assert len(tgi.spec_violations) == 1
    assert "inputs" in tgi.spec_violations[0]
    assert "stop" in tgi.spec_violations[0]
    tgi.spec_violations.clear()  # expected here; the fixture fails tests on any violation


def test_validation_rejects_a_body_that_is_not_json(tgi: TGITestServer) -> None:
    response = httpx.post(
        f"{tgi.url}/v1/chat/completions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error_type"] == "validation"
    assert tgi.spec_violations
    tgi.spec_violations.clear()


def test_validator_catches_bad_responses() -> None:
    good = {"generated_text": "hi", "details": None}
    assert schema_errors("GenerateResponse", good) == []
    assert schema_errors("GenerateResponse", {"text": "hi"})  # generated_text missing
    chunk = {
        "id": "x",
        "created": 1,
        "model": "m",
        "system_fingerprint": "f",
        "choices": [],
        "usage": None,
    }
    assert schema_errors("ChatCompletionChunk", chunk) == []
    assert schema_errors("ChatCompletionChunk", {**chunk, "usage": {"prompt_tokens": 1}})
    assert schema_errors(
        "StreamDetails", {"finish_reason": "done", "generated_tokens": 1, "input_length": 1}
    )


def test_generate_uses_adapter_id_and_answers_in_tgi_format(tgi: TGITestServer) -> None:
    body = {
        "inputs": "Review Dune.",
        "parameters": {"adapter_id": "fspo-alice", "max_new_tokens": 5, "details": True},
    }
    response = httpx.post(f"{tgi.url}/generate", json=body, timeout=60)
    assert response.status_code == 200
    payload = response.json()
    check("GenerateResponse", payload)
    assert payload["details"]["generated_tokens"] == 5
    assert tgi.requests[-1].served_adapter == "fspo-alice"


def test_unknown_adapter_silently_runs_the_base_model(tgi: TGITestServer) -> None:
    """TGI's quirk the backends must guard against: no error, just the base model."""

    def text(adapter_id: str | None) -> str:
        parameters = {"max_new_tokens": 8, "adapter_id": adapter_id}
        response = httpx.post(
            f"{tgi.url}/generate",
            json={"inputs": "Review Dune.", "parameters": parameters},
            timeout=60,
        )
        assert response.status_code == 200
        return str(response.json()["generated_text"])

    base, unknown, alice = text(None), text("fspo-nobody"), text("fspo-alice")
    assert unknown == base
    assert alice != base
    assert [r.served_adapter for r in tgi.requests] == [None, None, "fspo-alice"]


def test_chat_model_field_is_the_adapter_unless_tgi(tgi: TGITestServer) -> None:
    messages = [{"role": "user", "content": "Review Dune."}]
    for model, served in [("fspo-bob", "fspo-bob"), ("tgi", None)]:
        response = httpx.post(
            f"{tgi.url}/v1/chat/completions",
            json={"model": model, "messages": messages, "max_tokens": 3},
            timeout=60,
        )
        assert response.status_code == 200
        payload = response.json()
        check("ChatCompletion", payload)
        assert payload["model"] == (model if served else BASE_MODEL_ID)
        assert tgi.requests[-1].served_adapter == served


def test_chat_stream_sends_usage_chunk_then_done(tgi: TGITestServer) -> None:
    body = {
        "model": "fspo-alice",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{tgi.url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse(response)
    assert events[-1] == "[DONE]"
    usage_event = json.loads(events[-2])
    assert usage_event["choices"] == []
    assert usage_event["usage"]["completion_tokens"] == 4
    finals = [json.loads(e)["choices"][0]["finish_reason"] for e in events[:-2]]
    assert finals[-1] == "length"
    assert all(f is None for f in finals[:-1])


def test_generate_stream_ends_with_details_and_no_done(tgi: TGITestServer) -> None:
    body = {"inputs": "hi", "parameters": {"max_new_tokens": 3, "details": True}}
    with httpx.stream("POST", f"{tgi.url}/generate_stream", json=body, timeout=60) as response:
        events = [json.loads(e) for e in _sse(response)]
    assert events[-1]["details"]["generated_tokens"] == 3
    assert events[-1]["details"]["input_length"] > 0
    assert all(e["details"] is None for e in events[:-1])


def test_get_routes_conform(tgi: TGITestServer) -> None:
    assert httpx.get(f"{tgi.url}/health").status_code == 200
    info = httpx.get(f"{tgi.url}/info").json()
    check("Info", info)
    assert info["model_id"] == BASE_MODEL_ID
    model = httpx.get(f"{tgi.url}/v1/models").json()
    check("ModelInfo", model)
    assert model["id"] == BASE_MODEL_ID


def test_injected_failures_look_like_tgi_errors(tgi: TGITestServer) -> None:
    tgi.fail_next(1, status=429)
    response = httpx.post(f"{tgi.url}/generate", json={"inputs": "x"})
    assert response.status_code == 429
    assert response.json() == {"error": "Injected failure (HTTP 429)", "error_type": "overloaded"}
    assert (
        httpx.post(
            f"{tgi.url}/generate",
            json={"inputs": "x", "parameters": {"max_new_tokens": 1}},
            timeout=60,
        ).status_code
        == 200
    )


def test_cut_stream_closes_the_connection_mid_body(tgi: TGITestServer) -> None:
    tgi.cut_stream_next(1, after_events=1)
    body = {"inputs": "hi", "parameters": {"max_new_tokens": 5}}
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{tgi.url}/generate_stream", json=body, timeout=60) as response,
    ):
        _sse(response)
    assert set(ADAPTERS) == tgi.adapters
