"""The threaded HTTP server under every test double (TGI, vLLM/SGLang, the Hub, the synth API).

Its handler threads never format a traceback. `socketserver`'s default `handle_error` prints
one from the handler thread, and on Python 3.11 before 3.11.8 that is unsafe next to pytest:
formatting a traceback builds ASTs (`traceback` parses each line for its caret anchors, pytest
parses each frame's module), and the AST constructor keeps its recursion counter per
interpreter instead of per call (CPython gh-106905, fixed by python/cpython#113035). When two
threads build ASTs at once and a garbage-collection pass in one of them hands the GIL over,
the counter ends wrong and `ast.parse` raises `SystemError: AST constructor recursion depth
mismatch`. pytest formats the traceback of every failed or xfailed test, so a handler
thread printing one at the same moment stopped the whole session with an INTERNALERROR.

Clients routinely reset keep-alive connections (an HTTP/1.1 client that stops reading a
chunked stream at `data: [DONE]` closes with the terminating chunk unread, so the kernel
sends RST), which made the handler's next `readline` raise `ConnectionResetError`. Here:

- a client that goes away (`ConnectionError`: reset, broken pipe, aborted) is a normal event
  for a server and is dropped silently;
- any other error in a handler is kept in `handler_errors`, unformatted, for the test's own
  thread to assert on (the double's fixtures do).

Its listen queue holds `LISTEN_BACKLOG` connections (the stdlib's default, 5, resets clients
as soon as a load test has a few dozen calls in flight).

`ScriptedHTTPServer` is a fault server on the same base: it answers each request with the
next scripted `Reply` (status, headers, a body sent whole, byte by byte with a delay, as SSE
events, or cut off), and logs the requests.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

LISTEN_BACKLOG = 1024
"""Pending connections the listening socket queues (capped by the kernel's `somaxconn`)."""


class QuietHTTPServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` on daemon threads that records handler errors instead of printing.

    Attributes:
        handler_errors: Exceptions raised in handlers, other than a client going away.
    """

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Bind and listen as `ThreadingHTTPServer` does."""
        super().__init__(*args, **kwargs)
        self.handler_errors: list[BaseException] = []
        self._errors_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep the handler's exception for the test thread; never format it here."""
        error = sys.exc_info()[1]
        if error is None or isinstance(error, ConnectionError):
            return
        with self._errors_lock:
            self.handler_errors.append(error)


@dataclass
class Reply:
    """One scripted answer of `ScriptedHTTPServer`."""

    status: int = 200
    body: bytes | list[bytes] = b""
    """Bytes sent with a Content-Length, or chunks sent with chunked transfer encoding."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds before the status line."""
    trickle: float = 0.0
    """Seconds before each byte (a `bytes` body) or each chunk (a list body)."""
    cut_after: int | None = None
    """Close the connection after this many bytes / chunks instead of finishing the body."""

    @classmethod
    def json(cls, payload: Any, status: int = 200, **kwargs: Any) -> Reply:
        """A JSON body."""
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return cls(status, json.dumps(payload).encode(), headers=headers, **kwargs)

    @classmethod
    def sse(cls, events: list[Any], *, done: bool = True, **kwargs: Any) -> Reply:
        """Server-sent events, one chunk each (`data: [DONE]` last when `done`)."""
        chunks = [f"data: {json.dumps(event)}\n\n".encode() for event in events]
        if done:
            chunks.append(b"data: [DONE]\n\n")
        return cls(200, chunks, headers={"Content-Type": "text/event-stream"}, **kwargs)


@dataclass
class SeenRequest:
    """A request as `ScriptedHTTPServer` received it (`path` with its query string)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request log."""

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.next_reply(SeenRequest(method, self.path, headers, body))
        time.sleep(reply.delay)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if isinstance(reply.body, bytes):
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            pieces = list(reply.body) if reply.trickle else [reply.body]
            self._send([bytes([p]) if isinstance(p, int) else p for p in pieces], reply)
        else:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunks = [f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in reply.body]
            self._send([*chunks, b"0\r\n\r\n"], reply)

    def _send(self, pieces: list[bytes], reply: Reply) -> None:
        for sent, piece in enumerate(pieces):
            cut = reply.cut_after is not None and sent >= reply.cut_after
            if cut or self.server.closing.is_set():  # a closed server stops trickling
                self.wfile.flush()
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if reply.trickle:
                time.sleep(reply.trickle)
            self.wfile.write(piece)
            self.wfile.flush()


class ScriptedHTTPServer(QuietHTTPServer):
    """A fault server on 127.0.0.1: each request gets the next scripted `Reply`.

    When the script runs out, requests get `default` (HTTP 500 unless set). Use as a context
    manager; `url` is `http://127.0.0.1:<port>`, `requests` the log.

    Example:
        ```python
        with ScriptedHTTPServer([Reply.json({"error": "busy"}, 503), Reply.json(answer)]) as s:
            ...
            assert [r.path for r in s.requests] == ["/v1/chat/completions"] * 2
        ```
    """

    def __init__(self, replies: list[Reply] | None = None, *, default: Reply | None = None) -> None:
        """Bind a free port on 127.0.0.1 (served from `__enter__`)."""
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.replies: deque[Reply] = deque(replies or [])
        self.default = default or Reply.json({"error": "no scripted reply left"}, 500)
        self.requests: list[SeenRequest] = []
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_reply(self, request: SeenRequest) -> Reply:
        """Log `request`; the next scripted reply."""
        with self._lock:
            self.requests.append(request)
            return self.replies.popleft() if self.replies else self.default

    def __enter__(self) -> Self:
        self._thread = threading.Thread(
            target=self.serve_forever, name="scripted-http", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
