"""Server backends reuse one async HTTP client per event loop (connections kept alive).

Against a small OpenAI-shaped server on 127.0.0.1 (`PortLoggingServer`, a test double that
speaks the chat completion route, plain and streamed, and logs the client port of every
request, so the test sees how many TCP connections the calls used). Before pooling, every
async call opened a new client, hence a new connection.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from langchain_fspo.backends.base import Backend, GenerationParams
from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend
from langchain_fspo.backends.tgi import TGIBackend
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt
from tests.http_server import QuietHTTPServer

pytestmark = pytest.mark.integration

PROMPT: RenderedPrompt = PromptFormat(style="chat").render([], "Hi")
PARAMS = GenerationParams(max_tokens=4)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: PortLoggingServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """No per-request log."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.ports.append(self.client_address[1])
        if body.get("stream"):
            self._stream()
            return
        data = json.dumps(
            {
                "model": body.get("model"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "Hello."}}
                    | {"finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        events = [
            {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
            {"choices": [{"index": 0, "delta": {"content": "lo."}, "finish_reason": "stop"}]},
        ]
        data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        raw = data.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class PortLoggingServer(QuietHTTPServer):
    """Test double of an OpenAI-compatible server: answers "Hello.", logs client ports."""

    request_queue_size = 128  # 16 connections opened at once must not be reset

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.ports: list[int] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def connections(self) -> int:
        with self.lock:
            return len(set(self.ports))


@pytest.fixture
def server() -> Iterator[PortLoggingServer]:
    httpd = PortLoggingServer()
    httpd._thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    assert not httpd.handler_errors


def _backends(url: str) -> dict[str, Backend]:
    return {
        "openai": OpenAICompatibleBackend(url, model="m"),
        "tgi": TGIBackend(url, remote_token_count=False),
    }


async def _generate(backend: Backend) -> str:
    return (await backend.agenerate(PROMPT, adapter=None, params=PARAMS)).text


async def _stream(backend: Backend) -> str:
    return "".join([c.text async for c in backend.astream(PROMPT, adapter=None, params=PARAMS)])


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_sequential_async_calls_in_one_loop_share_one_connection(
    server: PortLoggingServer, kind: str
) -> None:
    backend = _backends(server.url)[kind]

    # huggingface_hub closes a stream's response at `data: [DONE]` before reading the body's
    # end, which drops its connection; the OpenAI-compatible backend reads to the end.
    streams = 5 if kind == "openai" else 0

    async def calls() -> list[str]:
        answers = [await _generate(backend) for _ in range(10)]
        return answers + [await _stream(backend) for _ in range(streams)]

    assert asyncio.run(calls()) == ["Hello."] * (10 + streams)
    assert len(server.ports) == 10 + streams
    assert server.connections() == 1


def test_sync_streams_share_one_connection(server: PortLoggingServer) -> None:
    backend = OpenAICompatibleBackend(server.url, model="m")
    for _ in range(5):
        assert "".join(c.text for c in backend.stream(PROMPT, adapter=None, params=PARAMS)) == (
            "Hello."
        )
    assert backend.generate(PROMPT, adapter=None, params=PARAMS).text == "Hello."
    assert server.connections() == 1


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_concurrent_calls_reuse_their_connections(server: PortLoggingServer, kind: str) -> None:
    backend = _backends(server.url)[kind]

    async def waves() -> list[str]:
        first = await asyncio.gather(*(_generate(backend) for _ in range(16)))
        second = await asyncio.gather(*(_generate(backend) for _ in range(16)))
        return [*first, *second]

    assert asyncio.run(waves()) == ["Hello."] * 32
    assert server.connections() <= 16


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_each_loop_gets_its_own_client_and_a_closed_loop_is_not_reused(
    server: PortLoggingServer, kind: str
) -> None:
    backend = _backends(server.url)[kind]
    assert asyncio.run(_generate(backend)) == "Hello."  # that loop is closed now
    assert asyncio.run(_generate(backend)) == "Hello."  # a new loop, a new client
    results: list[str] = []

    def in_thread() -> None:
        results.append(asyncio.run(_generate(backend)))

    threads = [threading.Thread(target=in_thread) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == ["Hello."] * 4
    assert server.connections() == 6


@pytest.mark.parametrize("kind", ["openai", "tgi"])
def test_close_closes_the_pooled_clients_and_the_backend_stays_usable(
    server: PortLoggingServer, kind: str
) -> None:
    backend = _backends(server.url)[kind]
    assert isinstance(backend, OpenAICompatibleBackend | TGIBackend)
    pool = backend._http._async_clients
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(_generate(backend)) == "Hello."
        [client] = list(pool._clients.values())
        backend.close()
        assert client.is_closed
        assert loop.run_until_complete(_generate(backend)) == "Hello."
        assert len(pool) == 1
        loop.run_until_complete(backend.aclose())
        assert len(pool) == 0
    finally:
        loop.close()
    assert server.connections() == 2
