"""The TGI test server's request log and response writing (JSON and SSE, faults applied).

Every response body and SSE event is checked against TGI's OpenAPI schema named by the route;
violations are kept in `spec_violations` rather than raised, so a test can assert on them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, NoReturn

from tests.tgi_server.faults import Fault
from tests.tgi_server.spec import schema_errors


@dataclass
class LoggedRequest:
    """One request as the server received it."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    status: int | None = None
    served_adapter: str | None = None
    """The adapter the engine actually ran (None: the base model)."""


class StreamCutError(Exception):
    """Raised inside the handler to abandon a response mid-way (fault injection)."""


class Wire:
    """Writing responses: JSON bodies and SSE streams, checked against the spec, faults applied."""

    spec_violations: list[str]
    _lock: threading.Lock

    def _violation(self, where: str, errors: list[str]) -> None:
        if errors:
            with self._lock:
                self.spec_violations.append(f"{where}: " + "; ".join(errors))

    def _send_error(
        self,
        handler: BaseHTTPRequestHandler,
        entry: LoggedRequest,
        status: int,
        message: str,
        error_type: str = "validation",
        *,
        schema: str | None = "ErrorResponse",
    ) -> None:
        """Answer with TGI's error body `{"error": ..., "error_type": ...}`."""
        payload = {"error": message, "error_type": error_type}
        self._send_json(handler, entry, status, payload, schema=schema)

    def _send_json(
        self,
        handler: BaseHTTPRequestHandler,
        entry: LoggedRequest,
        status: int,
        payload: Any,
        *,
        schema: str | None,
        fault: Fault | None = None,
    ) -> None:
        if schema is not None:
            self._violation(f"response {entry.path} ({schema})", schema_errors(schema, payload))
        data = json.dumps(payload).encode()
        if fault is not None and fault.kind == "malformed":
            data = data[: max(1, len(data) // 2)]
        entry.status = status
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if fault is not None and fault.kind == "cut":
            handler.wfile.write(data[: len(data) // 2])
            _abort(handler)
        handler.wfile.write(data)

    def _send_sse(
        self,
        handler: BaseHTTPRequestHandler,
        entry: LoggedRequest,
        events: Iterator[dict[str, Any]],
        *,
        schema: str,
        done: bool,
        fault: Fault | None,
    ) -> None:
        entry.status = 200
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def write(text: str) -> None:
            data = text.encode()
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        for sent, event in enumerate(events):
            if (
                fault is not None
                and fault.kind in {"cut", "truncate"}
                and sent >= fault.after_events
            ):
                if fault.kind == "cut":
                    _abort(handler)
                handler.wfile.write(b"0\r\n\r\n")
                return
            self._violation(f"response {entry.path} event ({schema})", schema_errors(schema, event))
            if fault is not None and fault.kind == "malformed" and sent >= 1:
                write('data: {"token": {"id": 1, "te\n\n')
                handler.wfile.write(b"0\r\n\r\n")
                return
            write(f"data: {json.dumps(event)}\n\n")
        if done:
            write("data: [DONE]\n\n")
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


def _abort(handler: BaseHTTPRequestHandler) -> NoReturn:
    """Close the connection mid-body: the client sees an incomplete response."""
    handler.wfile.flush()
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)
    raise StreamCutError
