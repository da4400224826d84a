"""`HubServer`: the Hub test double on a real HTTP server (127.0.0.1, a background thread)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self

from tests.http_server import QuietHTTPServer
from tests.hub_server.endpoints import HubEndpoints


class HubServer(HubEndpoints):
    """A threaded HTTP server on 127.0.0.1 answering the Hub calls the package docstring lists.

    Attributes:
        url: The endpoint to give `huggingface_hub` (`HF_ENDPOINT` or `endpoint=`).
        repos: Repo id -> `HubRepo`.
        commits: Every accepted commit, in order.
        requests: Every request received, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self._httpd = QuietHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread: threading.Thread | None = None
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    @property
    def handler_errors(self) -> list[BaseException]:
        """Errors raised while serving (not clients going away); kept, never printed."""
        return self._httpd.handler_errors

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _make_handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out_headers, payload = server.handle(self.command, self.path, headers, body)
            self.send_response(status)
            for key, value in out_headers.items():
                self.send_header(key, value)
            if "Content-Length" not in out_headers:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Silence the default stderr access log."""

    return Handler
