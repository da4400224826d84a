"""Hostile and slow servers against both HTTP backends (TGI via huggingface_hub, OpenAI via httpx).

Each test scripts a fault server on 127.0.0.1 (`tests.http_server.ScriptedHTTPServer`): it
speaks HTTP/1.1 and sends OpenAI-shaped chat completions (both backends' chat route), byte by
byte, cut off, or with whatever error body and headers the test needs.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from langchain_fspo.backends.base import Backend, GenerationChunk, GenerationParams
from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend
from langchain_fspo.backends.tgi import TGIBackend
from langchain_fspo.errors import InferenceServerError, InferenceTimeoutError
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt
from tests.http_server import Reply, ScriptedHTTPServer

pytestmark = pytest.mark.integration

KINDS = ["openai", "tgi"]
MODES = ["sync", "async"]
PARAMS = GenerationParams(max_tokens=4)
PROMPT = PromptFormat(style="chat").render([], "Review the film Dune.")
PAPER = PromptFormat(style="paper").render([], "Review the film Dune.")


def completion(text: str = "Fine.", finish: str | None = "stop") -> dict[str, Any]:
    """A non-streamed chat completion, as vLLM and TGI send it."""
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "system_fingerprint": "x",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def chunk(text: str = "", finish: str | None = None) -> dict[str, Any]:
    """One chat completion stream event."""
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "system_fingerprint": "x",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
    }


@pytest.fixture(autouse=True)
def _no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No bearer token from the environment (the password test checks the auth header)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def backend(kind: str, url: str, **kwargs: Any) -> Backend:
    kwargs.setdefault("backoff_factor", 0.01)
    kwargs.setdefault("max_retries", 0)
    if kind == "openai":
        return OpenAICompatibleBackend(url, model="m", **kwargs)
    return TGIBackend(url, remote_token_count=False, **kwargs)


def generate(b: Backend, mode: str, prompt: RenderedPrompt = PROMPT) -> Any:
    if mode == "sync":
        return b.generate(prompt, adapter=None, params=PARAMS)
    return asyncio.run(b.agenerate(prompt, adapter=None, params=PARAMS))


def stream(b: Backend, mode: str) -> list[GenerationChunk]:
    if mode == "sync":
        return list(b.stream(PROMPT, adapter=None, params=PARAMS))

    async def collect() -> list[GenerationChunk]:
        return [c async for c in b.astream(PROMPT, adapter=None, params=PARAMS)]

    return asyncio.run(collect())


def timed(fn: Callable[[], Any]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        fn()
    except BaseException as e:
        return e, time.monotonic() - start
    return None, time.monotonic() - start


# ---------------------------------------------------------------- 1. timeout bounds attempts


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_timeout_bounds_a_body_that_trickles(kind: str, mode: str) -> None:
    body = Reply.json(completion("x" * 40), trickle=0.4)  # ~300 bytes: two minutes
    with ScriptedHTTPServer([body]) as server:
        error, seconds = timed(lambda: generate(backend(kind, server.url, timeout=1), mode))
    assert isinstance(error, InferenceTimeoutError), repr(error)
    assert isinstance(error, TimeoutError)
    assert "within 1s" in str(error)
    assert seconds < 3  # the deadline, not the client's per-read timeout (which never fires)


def test_an_abandoned_sync_attempt_stops_reading_the_body() -> None:
    body = Reply.json(completion("x" * 40), trickle=0.2)
    with ScriptedHTTPServer([body]) as server:
        before = set(threading.enumerate())
        with pytest.raises(InferenceTimeoutError):
            generate(backend("openai", server.url, timeout=0.5), "sync")
        workers = [t for t in threading.enumerate() if t not in before and "attempt" in t.name]
        for worker in workers:
            worker.join(timeout=5)  # its next byte arrives within 0.2 s; the body takes 60 s
        assert workers
        assert not any(worker.is_alive() for worker in workers)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_stream_gap_between_chunks_is_bounded(kind: str, mode: str) -> None:
    events = Reply.sse([chunk("a"), chunk("", finish="stop")]).body
    assert isinstance(events, list)
    # SSE comments every 0.2 s keep the socket busy (no per-read timeout fires), but no
    # event comes for 4 s after the first.
    pieces = [events[0], *[b": ping\n\n"] * 20, *events[1:]]
    stalled = Reply(200, pieces, headers={"Content-Type": "text/event-stream"}, trickle=0.2)
    with ScriptedHTTPServer([stalled]) as server:
        b = backend(kind, server.url, timeout=0.8)
        error, seconds = timed(lambda: stream(b, mode))
    assert isinstance(error, InferenceTimeoutError), repr(error)
    assert "no stream event within 0.8s" in str(error)
    assert "cut off after 1 chunk" in str(error)
    assert seconds < 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_stream_timeout_bounds_the_whole_stream(kind: str, mode: str) -> None:
    events = [chunk(str(i)) for i in range(20)] + [chunk("", finish="stop")]
    with ScriptedHTTPServer([Reply.sse(events, trickle=0.2)]) as server:  # 4 s in all
        b = backend(kind, server.url, timeout=1, stream_timeout=1)
        error, seconds = timed(lambda: stream(b, mode))
    assert isinstance(error, InferenceTimeoutError), repr(error)
    assert "the stream did not finish within" in str(error)
    assert seconds < 3


# ---------------------------------------------------------------- 2. credentials in base_url


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_password_in_base_url_is_used_and_never_shown(kind: str, mode: str) -> None:
    from langchain_core.load import dumps

    from langchain_fspo import ChatFSPO

    with ScriptedHTTPServer(
        [Reply.json(completion("Fine.")), Reply.json({"error": "bad input"}, 400)]
    ) as server:
        url = server.url.replace("http://", "http://alice:S3CRET-PW@")
        llm = ChatFSPO(
            backend=kind,
            base_url=url,
            model="m",
            prompt_format=PromptFormat(style="chat"),
            max_retries=0,
        )
        shown = [repr(llm), str(llm), str(llm.model_dump()), dumps(llm), repr(llm.backend)]
        call = llm.invoke if mode == "sync" else lambda q: asyncio.run(llm.ainvoke(q))
        assert call("Q?").content == "Fine."
        with pytest.raises(InferenceServerError, match="bad input") as info:
            call("Q?")
    assert [r.headers.get("authorization") for r in server.requests] == [
        "Basic " + base64.b64encode(b"alice:S3CRET-PW").decode()
    ] * 2
    chain = "".join(traceback.format_exception(info.value))
    assert "S3CRET-PW" not in chain
    assert info.value.__cause__ is not None  # the client's error stays chained, redacted
    for text in shown:
        assert "S3CRET-PW" not in text
    assert llm.base_url == server.url.replace("http://", "http://***@")


# ---------------------------------------------------------------- 3. huge error bodies


@pytest.mark.parametrize("kind", KINDS)
def test_a_5mb_error_body_is_quoted_short_and_kept_whole(kind: str) -> None:
    message = "overloaded " + "x" * 5_000_000
    with (
        ScriptedHTTPServer([Reply.json({"error": message}, 400)]) as server,
        pytest.raises(InferenceServerError) as info,
    ):
        generate(backend(kind, server.url), "sync")
    error = info.value
    assert error.status_code == 400
    assert "overloaded" in str(error)
    assert len(str(error)) < 4_000
    assert error.body is not None
    assert len(error.body) > 5_000_000
    assert message in error.body
    assert len("".join(traceback.format_exception(error))) < 20_000


# ---------------------------------------------------------------- 4. Retry-After


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_as_an_http_date_is_honoured(kind: str) -> None:
    when = email.utils.formatdate(time.time() + 1.5, usegmt=True)  # 0.5-1.5 s (whole seconds)
    busy = Reply.json({"error": "busy"}, 503, headers={"Retry-After": when})
    with ScriptedHTTPServer([busy, Reply.json(completion("Fine."))]) as server:
        b = backend(kind, server.url, max_retries=1, backoff_factor=0.01)
        result, seconds = None, time.monotonic()
        result = generate(b, "sync")
        seconds = time.monotonic() - seconds
    assert result.text == "Fine."
    assert len(server.requests) == 2
    assert seconds >= 0.45  # the backoff alone would be 0.01 s


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_beyond_backoff_max_is_not_waited_for(kind: str) -> None:
    busy = Reply.json({"error": "busy"}, 429, headers={"Retry-After": "3600"})
    with (
        ScriptedHTTPServer([busy]) as server,
        pytest.raises(InferenceServerError, match="retry after 3600s") as info,
    ):
        generate(backend(kind, server.url, max_retries=3, backoff_max=8), "sync")
    assert len(server.requests) == 1
    assert info.value.retry_after == 3600
    assert info.value.status_code == 429


# ---------------------------------------------------------------- 5. query string in base_url


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("prompt", [PROMPT, PAPER], ids=["chat", "paper"])
def test_query_string_of_the_base_url_follows_the_route(kind: str, prompt: RenderedPrompt) -> None:
    generated = {"generated_text": "Fine.", "details": {"finish_reason": "length"}}
    text = {"choices": [{"index": 0, "text": "Fine.", "finish_reason": "length"}], "model": "m"}
    answer = completion() if prompt.style == "chat" else generated if kind == "tgi" else text
    with ScriptedHTTPServer([Reply.json(answer)]) as server:
        result = generate(backend(kind, f"{server.url}/?api-version=1"), "sync", prompt)
    route = {"chat": "/v1/chat/completions", "paper": "/v1/completions"}[prompt.style]
    if kind == "tgi" and prompt.style == "paper":
        route = "/generate"
    assert [r.path for r in server.requests] == [f"{route}?api-version=1"]
    assert result.text == "Fine."


# ---------------------------------------------------------------- 6. end of stream / answer


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_with_a_finish_reason_but_no_done_is_complete(kind: str, mode: str) -> None:
    events = [chunk("Fi"), chunk("ne."), chunk("", finish="stop")]
    with ScriptedHTTPServer([Reply.sse(events, done=False)]) as server:
        chunks = stream(backend(kind, server.url), mode)
    assert "".join(c.text for c in chunks) == "Fine."
    assert chunks[-1].finish_reason == "stop"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("done", [True, False], ids=["with-done", "without-done"])
def test_a_stream_without_a_finish_reason_raises(kind: str, mode: str, done: bool) -> None:
    events = [chunk("Fi"), chunk("ne")]
    with (
        ScriptedHTTPServer([Reply.sse(events, done=done)]) as server,
        pytest.raises(InferenceServerError, match="no finish_reason"),
    ):
        stream(backend(kind, server.url), mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_cut_after_its_first_chunk_raises(kind: str, mode: str) -> None:
    cut = Reply.sse([chunk("Fi"), chunk("ne."), chunk("", finish="stop")], cut_after=1)
    with (
        ScriptedHTTPServer([cut]) as server,
        pytest.raises(InferenceServerError, match="cut off after 1 chunk"),
    ):
        stream(backend(kind, server.url, max_retries=2), mode)
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_an_answer_with_a_null_finish_reason_raises(kind: str, mode: str) -> None:
    with (
        ScriptedHTTPServer([Reply.json(completion("Half an ans", finish=None))]) as server,
        pytest.raises(InferenceServerError, match="without a finish_reason"),
    ):
        generate(backend(kind, server.url, max_retries=2), mode)
    assert len(server.requests) == 1


# ---------------------------------------------------------------- 10. every error typed


HOSTILE = {
    "not-json": Reply(200, b"<html>proxy error</html>", headers={"Content-Type": "text/html"}),
    "json-array": Reply.json([1, 2]),
    "no-choices": Reply.json({"id": "x", "choices": []}),
    "invalid-utf8": Reply(
        200, b'{"choices": "\xff\xfe"}', headers={"Content-Type": "application/json"}
    ),
    "body-cut": Reply.json(completion(), cut_after=0),
    "empty-error": Reply(500, b""),
    "html-error": Reply(502, b"<html>bad gateway</html>"),
    "unauthorized": Reply.json({"error": {"message": "bad key"}}, 401),
    "redirect-loop": Reply(302, b"", headers={"Location": "/v1/chat/completions"}),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", sorted(HOSTILE))
def test_every_hostile_answer_raises_a_typed_error(kind: str, mode: str, fault: str) -> None:
    with (
        ScriptedHTTPServer([HOSTILE[fault]], default=HOSTILE[fault]) as server,
        pytest.raises(InferenceServerError) as info,
    ):
        generate(backend(kind, server.url), mode)
    assert info.value.url == server.url


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "body",
    [
        [b"data: {not json\n\n"],
        [b"data: [1, 2]\n\n"],
        [b'data: {"error": {"message": "engine died"}}\n\n'],
        [b'data: {"choices": 7}\n\n'],
    ],
    ids=["not-json", "not-object", "error-event", "bad-choices"],
)
def test_every_hostile_stream_raises_a_typed_error(kind: str, mode: str, body: list[bytes]) -> None:
    reply = Reply(200, body, headers={"Content-Type": "text/event-stream"})
    server = ScriptedHTTPServer([reply], default=reply)
    with server, pytest.raises(InferenceServerError):
        stream(backend(kind, server.url), mode)


# ---------------------------------------------------------------- 7. one retry layer


def _llm(b: Backend, **kwargs: Any) -> Any:
    from langchain_fspo import ChatFSPO

    return ChatFSPO(backend=b, model="m", prompt_format=PromptFormat(style="chat"), **kwargs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_chat_max_retries_reaches_an_explicit_backend(kind: str, mode: str) -> None:
    busy = Reply.json({"error": "busy"}, 503)
    with ScriptedHTTPServer([busy, busy, Reply.json(completion("Fine."))]) as server:
        llm = _llm(backend(kind, server.url, max_retries=0), max_retries=2)
        call = llm.invoke if mode == "sync" else lambda q: asyncio.run(llm.ainvoke(q))
        assert call("Q?").content == "Fine."
    assert len(server.requests) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_chat_max_retries_zero_means_one_attempt(kind: str) -> None:
    busy = Reply.json({"error": "busy"}, 503)
    server = ScriptedHTTPServer([busy], default=Reply.json(completion("Fine.")))
    with server, pytest.raises(InferenceServerError, match="HTTP 503"):
        _llm(backend(kind, server.url, max_retries=5), max_retries=0).invoke("Q?")
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_chat_timeout_reaches_an_explicit_backend(kind: str) -> None:
    body = Reply.json(completion("x" * 40), trickle=0.4)
    with ScriptedHTTPServer([body]) as server:
        llm = _llm(backend(kind, server.url, timeout=60), timeout=0.5, max_retries=0)
        error, seconds = timed(lambda: llm.invoke("Q?"))
    assert isinstance(error, InferenceTimeoutError), repr(error)
    assert seconds < 3


@pytest.mark.parametrize("kind", KINDS)
def test_a_base_url_without_a_scheme_raises_typed_without_retries(kind: str) -> None:
    b = backend(kind, "127.0.0.1:9", max_retries=3, backoff_factor=5)
    error, seconds = timed(lambda: generate(b, "sync"))
    assert isinstance(error, InferenceServerError), repr(error)
    assert seconds < 3  # not retried (a retry would wait 5 s first)
