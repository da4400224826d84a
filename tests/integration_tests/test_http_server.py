"""The HTTP server under the test doubles: its handler threads never format a traceback.

Regression for a flaky pytest INTERNALERROR, `SystemError: AST constructor recursion depth
mismatch`: a client reset a keep-alive connection to the TGI test server, the handler thread
printed the `ConnectionResetError` with `socketserver`'s default `handle_error` while pytest
formatted an xfailed test's traceback on the main thread, and Python 3.11.7's AST constructor
(one recursion counter per interpreter, CPython gh-106905) failed when both threads built ASTs
at once. Building an AST off the main thread is the precondition, so the tests record every
`ast.parse` made by another thread (the `traceback` module parses each line it prints).
"""

from __future__ import annotations

import ast
import http.client
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any, NoReturn

import pytest

from bench.fixed_latency_server import FixedLatencyServer
from tests.http_server import QuietHTTPServer, Reply, ScriptedHTTPServer
from tests.hub_server import HubServer
from tests.tgi_server import ScriptedBackend, TGITestServer

pytestmark = pytest.mark.integration


@pytest.fixture
def asts_built_off_main(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the non-main threads that call `ast.parse` while the test runs."""
    names: list[str] = []
    parse = ast.parse

    def recording_parse(*args: Any, **kwargs: Any) -> ast.AST:
        if threading.current_thread() is not threading.main_thread():
            names.append(threading.current_thread().name)
        return parse(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", recording_parse)
    return names


Errors = Callable[[], list[BaseException]]


@contextmanager
def _tgi() -> Iterator[tuple[str, Errors]]:
    with TGITestServer(ScriptedBackend(), flavor="vllm") as server:
        yield server.url, lambda: server.handler_errors


@contextmanager
def _hub() -> Iterator[tuple[str, Errors]]:
    with HubServer() as server:
        yield server.url, lambda: server.handler_errors


@contextmanager
def _synth() -> Iterator[tuple[str, Errors]]:
    with FixedLatencyServer(latency_s=0.0) as server:
        yield server.url, lambda: server.errors


DOUBLES: dict[str, Callable[[], AbstractContextManager[tuple[str, Errors]]]] = {
    "tgi": _tgi,
    "hub": _hub,
    "synth": _synth,
}


def _handler_threads(since: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in since and "process_request" in t.name]


@pytest.mark.parametrize("double", sorted(DOUBLES))
def test_a_client_reset_is_dropped_without_a_traceback(
    double: str, asts_built_off_main: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    before = set(threading.enumerate())
    with DOUBLES[double]() as (url, handler_errors):
        host, port = url.removeprefix("http://").split(":")
        client = http.client.HTTPConnection(host, int(port), timeout=10)
        client.request("GET", "/v1/models")
        response = client.getresponse()
        response.read()
        assert response.getheader("Connection", "keep-alive") != "close"
        handlers = _handler_threads(before)  # waiting for the connection's next request
        assert handlers, "the request was not served on a handler thread"
        assert client.sock is not None
        # Close with RST, as a client does that stops reading before a chunked body's end.
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        for thread in handlers:
            thread.join(timeout=10)
        assert not any(thread.is_alive() for thread in handlers)
        errors = list(handler_errors())
    assert asts_built_off_main == []
    assert "Traceback" not in capfd.readouterr().err
    assert errors == []


class _FailingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> NoReturn:
        msg = "the handler failed"
        raise RuntimeError(msg)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request log."""


def test_other_handler_errors_are_kept_for_the_test_thread_not_printed(
    asts_built_off_main: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    httpd = QuietHTTPServer(("127.0.0.1", 0), _FailingHandler)
    serving = threading.Thread(target=httpd.serve_forever, daemon=True)
    serving.start()
    try:
        client = http.client.HTTPConnection("127.0.0.1", httpd.server_address[1], timeout=10)
        client.request("GET", "/")
        with pytest.raises(http.client.RemoteDisconnected):  # closed after handle_error ran
            client.getresponse()
        client.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        serving.join(timeout=10)
    assert [str(e) for e in httpd.handler_errors] == ["the handler failed"]
    assert isinstance(httpd.handler_errors[0], RuntimeError)
    assert asts_built_off_main == []
    assert "Traceback" not in capfd.readouterr().err


def _unstarted_tgi() -> QuietHTTPServer:
    from tests.tgi_server.server import _HTTPServer

    return _HTTPServer(TGITestServer(ScriptedBackend()))


def _unstarted_scripted() -> QuietHTTPServer:
    return ScriptedHTTPServer(default=Reply.json({"status": "ok"}))


@pytest.mark.parametrize("make", [_unstarted_tgi, _unstarted_scripted], ids=["tgi", "scripted"])
def test_256_clients_connecting_at_once_all_get_answers(
    make: Callable[[], QuietHTTPServer],
) -> None:
    httpd = make()  # bound and listening, not accepting yet: every connection queues
    clients: list[socket.socket] = []
    serving = threading.Thread(target=httpd.serve_forever, daemon=True)
    try:
        for _ in range(256):  # a full listen queue drops the SYN: connect() would time out
            clients.append(socket.create_connection(httpd.server_address[:2], timeout=1))  # noqa: PERF401 - one at a time
        serving.start()
        for client in clients:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        for client in clients:
            client.settimeout(10)
            assert client.recv(64).startswith(b"HTTP/1.1 200"), "a client got no answer"
    finally:
        for client in clients:
            client.close()
        if serving.is_alive():
            httpd.shutdown()
            serving.join(timeout=10)
        httpd.server_close()
    assert len(clients) == 256
    assert httpd.handler_errors == []
