"""Faults between `TGIBackend` and TGI: retries, typed errors, streams cut off mid-way.

The TGI test server injects the faults; the request log shows how many attempts were made.
"""

from __future__ import annotations

import socket

import pytest

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.backends.tgi import TGIBackend
from langchain_fspo.errors import InferenceServerError
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt
from tests.tgi_server import TGITestServer
from tests.tgi_server.fixtures import ADAPTERS

pytestmark = pytest.mark.integration

STYLES = ["chat", "paper"]
PARAMS = GenerationParams(max_tokens=4, temperature=0)


def _prompt(style: str) -> RenderedPrompt:
    return PromptFormat(style=style).render([], "Review the film Dune.")


def _backend(server: TGITestServer, **kwargs) -> TGIBackend:
    kwargs.setdefault("backoff_factor", 0.01)
    return TGIBackend(server.url, adapters=list(ADAPTERS), **kwargs)


def _statuses(server: TGITestServer) -> list[int | None]:
    return [r.status for r in server.requests]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("status", [503, 429, 502])
def test_transient_statuses_are_retried(tgi: TGITestServer, style: str, status: int) -> None:
    tgi.fail_next(2, status=status)
    result = _backend(tgi, max_retries=2).generate(
        _prompt(style), adapter="fspo-alice", params=PARAMS
    )
    assert _statuses(tgi) == [status, status, 200]
    assert result.output_tokens == 4
    assert {r.served_adapter for r in tgi.requests[-1:]} == {"fspo-alice"}


@pytest.mark.parametrize("style", STYLES)
async def test_async_retries_503(tgi: TGITestServer, style: str) -> None:
    tgi.fail_next(1, status=503)
    backend = _backend(tgi)
    result = await backend.agenerate(_prompt(style), adapter="fspo-bob", params=PARAMS)
    tgi.fail_next(1, status=503)
    chunks = [c async for c in backend.astream(_prompt(style), adapter="fspo-bob", params=PARAMS)]
    assert _statuses(tgi) == [503, 200, 503, 200]
    assert result.output_tokens == 4
    assert chunks[-1].output_tokens == 4


def test_stream_retries_when_nothing_was_received_yet(tgi: TGITestServer) -> None:
    tgi.fail_next(1, status=503)
    tgi.cut_stream_next(1, after_events=0)
    chunks = list(_backend(tgi).stream(_prompt("chat"), adapter="fspo-alice", params=PARAMS))
    assert len(tgi.requests) == 3
    assert chunks[-1].finish_reason == "length"


@pytest.mark.parametrize("style", STYLES)
def test_gives_up_after_max_retries_naming_url_adapter_status(
    tgi: TGITestServer, style: str
) -> None:
    tgi.fail_next(5, status=503)
    with pytest.raises(InferenceServerError) as info:
        _backend(tgi, max_retries=2).generate(_prompt(style), adapter="fspo-carol", params=PARAMS)
    assert _statuses(tgi) == [503, 503, 503]
    error = info.value
    assert error.status_code == 503
    assert error.adapter == "fspo-carol"
    assert error.url == tgi.url
    assert tgi.url in str(error)
    assert "fspo-carol" in str(error)
    assert "503" in str(error)
    assert "gave up after 2 retries" in str(error)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("status", [400, 422, 404])
def test_client_errors_are_not_retried(tgi: TGITestServer, style: str, status: int) -> None:
    tgi.fail_next(1, status=status, message="Input validation error: bad things")
    with pytest.raises(InferenceServerError, match="bad things") as info:
        _backend(tgi, max_retries=3).generate(_prompt(style), adapter="fspo-alice", params=PARAMS)
    assert _statuses(tgi) == [status]
    assert info.value.status_code == status
    assert info.value.adapter == "fspo-alice"


@pytest.mark.parametrize("style", STYLES)
def test_client_error_on_stream_is_not_retried(tgi: TGITestServer, style: str) -> None:
    tgi.fail_next(1, status=400)
    with pytest.raises(InferenceServerError, match="HTTP 400"):
        list(_backend(tgi, max_retries=3).stream(_prompt(style), adapter=None, params=PARAMS))
    assert _statuses(tgi) == [400]


@pytest.mark.parametrize("style", STYLES)
def test_malformed_json_raises_without_retry(tgi: TGITestServer, style: str) -> None:
    tgi.malformed_next(1)
    with pytest.raises(InferenceServerError, match="malformed response") as info:
        _backend(tgi, max_retries=3).generate(_prompt(style), adapter="fspo-alice", params=PARAMS)
    assert len(tgi.requests) == 1
    assert info.value.adapter == "fspo-alice"


@pytest.mark.parametrize("style", STYLES)
def test_malformed_stream_event_raises(tgi: TGITestServer, style: str) -> None:
    tgi.malformed_next(1)
    with pytest.raises(InferenceServerError):
        list(_backend(tgi).stream(_prompt(style), adapter="fspo-alice", params=PARAMS))


@pytest.mark.parametrize("style", STYLES)
def test_stream_cut_mid_way_raises_instead_of_returning_partial_text(
    tgi: TGITestServer, style: str
) -> None:
    tgi.cut_stream_next(1, after_events=2)
    stream = _backend(tgi, max_retries=3).stream(_prompt(style), adapter="fspo-bob", params=PARAMS)
    received = [next(stream).text, next(stream).text]
    with pytest.raises(InferenceServerError, match="cut off after 2 chunk") as info:
        next(stream)
    assert len(tgi.requests) == 1  # text was already handed out: no silent retry
    assert all(received)
    assert info.value.adapter == "fspo-bob"


@pytest.mark.parametrize("style", STYLES)
def test_stream_ending_cleanly_but_early_raises(tgi: TGITestServer, style: str) -> None:
    tgi.truncate_stream_next(1, after_events=2)
    with pytest.raises(InferenceServerError, match="ended before its final event"):
        list(_backend(tgi, max_retries=0).stream(_prompt(style), adapter="fspo-bob", params=PARAMS))


@pytest.mark.parametrize("style", STYLES)
async def test_async_stream_cut_mid_way_raises(tgi: TGITestServer, style: str) -> None:
    tgi.cut_stream_next(1, after_events=1)
    backend = _backend(tgi)
    with pytest.raises(InferenceServerError, match="cut off after 1 chunk"):
        async for _ in backend.astream(_prompt(style), adapter="fspo-bob", params=PARAMS):
            pass


def test_non_streaming_body_cut_mid_way_is_retried(tgi: TGITestServer) -> None:
    tgi.cut_stream_next(1, path="/generate")
    result = _backend(tgi).generate(_prompt("paper"), adapter="fspo-alice", params=PARAMS)
    assert len(tgi.requests) == 2
    assert result.output_tokens == 4


def test_timeout_is_retried_then_raised(tgi: TGITestServer) -> None:
    tgi.delay_next(2, seconds=1.5)
    with pytest.raises(InferenceServerError, match=r"(?i)time") as info:
        _backend(tgi, timeout=0.3, max_retries=1).generate(
            _prompt("chat"), adapter="fspo-alice", params=PARAMS
        )
    assert len(tgi.requests) == 2
    assert info.value.status_code is None


def test_connection_refused_is_retried_then_raised() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = TGIBackend(f"http://127.0.0.1:{port}", backoff_factor=0.01, max_retries=2)
    with pytest.raises(InferenceServerError, match=f"127.0.0.1:{port}.*gave up after 2 retries"):
        backend.generate(_prompt("chat"), adapter=None, params=PARAMS)
