"""A real HTTP server on 127.0.0.1 that speaks Text Generation Inference's API.

TEST DOUBLE for TGI (which cannot run here: no Docker, no GPU). It is a real HTTP/1.1 server
(`tests.http_server.QuietHTTPServer` in a background thread) that generates with any
`langchain_fspo` `Backend` (the tiny Llama through `LocalBackend`, with several LoRA adapters)
and reproduces the TGI behaviour clients rely on:

- routes `POST /generate`, `POST /generate_stream` (SSE, no `[DONE]`), `POST /` (compat),
  `POST /tokenize` (with the engine's tokenizer, as TGI's; 404 without one),
  `POST /v1/chat/completions` and `POST /v1/completions` (SSE with `data: [DONE]`, usage chunk
  with `stream_options.include_usage`), `GET /v1/models`, `GET /info`, `GET /health`;
- the adapter comes from `parameters.adapter_id` (`/generate`) or from `model` on the `/v1`
  routes unless it is `"tgi"`; an adapter id that was not loaded at launch silently falls back
  to the base model, as TGI does (`ADAPTER_TO_INDEX.get(adapter_id, 0)`);
- errors as TGI sends them: `{"error": ..., "error_type": ...}`.

`flavor="vllm"` and `flavor="sglang"` change only the `/v1` adapter rules, to serve the
OpenAI-compatible backend's tests: vLLM takes `model=<lora name>` (or the base model name) and
answers 404 for an unknown one; SGLang takes `model="<base>:<adapter>"`. They list the base
model and adapters on `/v1/models` as vLLM does (`parent` set on adapters).

Every request body and every TGI response body (each SSE event included) is checked against
TGI's OpenAPI spec (`tests/fixtures/tgi_openapi.json`, see `spec.py`). The vLLM/SGLang-only
shapes are not TGI's and are not checked: their `/v1/models` list, their OpenAI-style error
bodies, and OpenAI's `response_format` / string `prompt` forms in their requests. A request that
does not match is answered 422 (`error_type: "validation"`), and every violation, in either
direction, is kept in `spec_violations` for the tests to assert on.

Every request is logged (`requests`: method, path, JSON body, headers, status, served adapter).
Faults can be scheduled for the next N requests: `fail_next` (any status, e.g. 503/429/400),
`delay_next`, `cut_stream_next` (socket closed mid-body), `truncate_stream_next` (body ends
cleanly but early), `malformed_next` (invalid JSON with status 200) and `tool_call_next` (a
tool call in TGI's format, as its tool grammar would force).

Deviation from TGI, for test speed: when a request sets no token limit, 16 tokens are
generated (TGI's default is 1024 for `/generate`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from langchain_fspo.backends.base import Backend
from tests.http_server import QuietHTTPServer
from tests.tgi_server.faults import Fault, FaultSchedule
from tests.tgi_server.openai_routes import Flavor, OpenAIRoutes
from tests.tgi_server.spec import schema_errors
from tests.tgi_server.tgi_routes import TGIRoutes
from tests.tgi_server.wire import LoggedRequest, StreamCutError

__all__ = ["Fault", "Flavor", "LoggedRequest", "TGITestServer"]

logger = logging.getLogger(__name__)

_ERROR_TYPES = {
    400: "validation",
    404: "not_found",
    422: "validation",
    424: "generation",
    429: "overloaded",
    500: "incomplete_generation",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}
_REQUEST_SCHEMAS = {
    "/generate": "GenerateRequest",
    "/generate_stream": "GenerateRequest",
    "/": "CompatGenerateRequest",
    "/v1/chat/completions": "ChatRequest",
    "/v1/completions": "CompletionRequest",
    "/tokenize": "GenerateRequest",
}


class _HTTPServer(QuietHTTPServer):
    allow_reuse_address = True

    def __init__(self, app: TGITestServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small header + body writes: no 40 ms delayed-ACK stalls
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("tgi-test-server: %s", format % args)

    def do_GET(self) -> None:
        self.server.app.handle(self, "GET")

    def do_POST(self) -> None:
        self.server.app.handle(self, "POST")


class TGITestServer(TGIRoutes, OpenAIRoutes, FaultSchedule):
    """A TGI-speaking HTTP server for tests; see the module docstring.

    Example:
        ```python
        with TGITestServer(backend, adapters=["alice"]) as server:
            client = InferenceClient(base_url=server.url)
            client.chat_completion([{"role": "user", "content": "hi"}], model="alice")
            assert server.requests[-1].served_adapter == "alice"
        ```
    """

    def __init__(
        self,
        backend: Backend,
        *,
        model_id: str = "fspo/tiny-llama",
        adapters: Iterable[str] | None = None,
        flavor: Flavor = "tgi",
        max_input_tokens: int = 4096,
        max_total_tokens: int = 8192,
    ) -> None:
        """Configure the server; `start()` (or `with`) binds a free port on 127.0.0.1.

        Args:
            backend: The engine that generates (LocalBackend with the tiny model).
            model_id: The base model id reported by `/info` and `/v1/models`.
            adapters: The adapter ids "loaded at launch" (TGI's `LORA_ADAPTERS`); default:
                `backend.adapters` when the backend has that attribute.
            flavor: `tgi`, or `vllm` / `sglang` for the `/v1` adapter rules of those servers.
            max_input_tokens: Reported by `/info`; longer prompts get TGI's 422.
            max_total_tokens: Reported by `/info`.
        """
        self.backend = backend
        self.model_id = model_id
        if adapters is None:
            adapters = list(getattr(backend, "adapters", []) or [])
        self.adapters = set(adapters)
        self.flavor: Flavor = flavor
        self.max_input_tokens = max_input_tokens
        self.max_total_tokens = max_total_tokens
        self.requests: list[LoggedRequest] = []
        self.spec_violations: list[str] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` of the running server."""
        if self._httpd is None:
            msg = "The TGI test server is not started; call start() or use `with`."
            raise RuntimeError(msg)
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> TGITestServer:
        """Bind a free port and serve in a daemon thread."""
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="tgi-test-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls

    @property
    def handler_errors(self) -> list[BaseException]:
        """Errors raised while serving (not clients going away); kept, never printed."""
        return self._httpd.handler_errors if self._httpd is not None else []

    def reset(self) -> None:
        """Forget logged requests, spec violations, handler errors and pending faults."""
        with self._lock:
            self.requests.clear()
            self.spec_violations.clear()
            self.handler_errors.clear()
            self._faults.clear()

    def requests_to(self, path: str) -> list[LoggedRequest]:
        """The logged requests to `path`, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # ------------------------------------------------------------------ dispatch

    def handle(self, handler: _Handler, method: str) -> None:
        """Serve one request (called on the handler's thread)."""
        path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any = None
        parse_error = None
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as e:
                parse_error = str(e)
        entry = LoggedRequest(
            method, path, body, {k.lower(): v for k, v in handler.headers.items()}
        )
        with self._lock:
            self.requests.append(entry)
        try:
            self._dispatch(handler, method, path, body, parse_error, entry)
        except StreamCutError:
            handler.close_connection = True
        except (BrokenPipeError, ConnectionResetError):  # the client went away
            handler.close_connection = True

    def _dispatch(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        body: Any,
        parse_error: str | None,
        entry: LoggedRequest,
    ) -> None:
        routes_get = {"/health": self._health, "/info": self._info, "/v1/models": self._models}
        routes_post = {
            "/generate": self._generate,
            "/generate_stream": self._generate,
            "/": self._generate,
            "/tokenize": self._tokenize,
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._completions,
        }
        routes = routes_get if method == "GET" else routes_post
        if path not in routes:
            message = f"No route {method} {path}"
            self._send_error(handler, entry, 404, message, "not_found", schema=None)
            return
        fault = self._take_fault(path)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "status":
            error = fault.message or f"Injected failure (HTTP {fault.status})"
            error_type = _ERROR_TYPES.get(fault.status, "unknown")
            self._send_error(handler, entry, fault.status, error, error_type)
            return
        if method == "POST":
            if parse_error is not None or not isinstance(body, dict):
                message = f"Failed to deserialize the JSON body: {parse_error or 'not an object'}"
                self._violation(f"request {path}", [message])
                self._send_error(handler, entry, 422, message)
                return
            checked = body
            if self.flavor != "tgi" and path.startswith("/v1/"):
                # vLLM/SGLang also take OpenAI's `response_format` forms and `prompt` strings.
                checked = {k: v for k, v in body.items() if k not in {"response_format", "prompt"}}
                if path == "/v1/completions":
                    checked["prompt"] = [""]
            errors = schema_errors(_REQUEST_SCHEMAS[path], checked)
            if errors:
                self._violation(f"request {path}", errors)
                message = "Input validation error: " + "; ".join(errors)
                self._send_error(handler, entry, 422, message)
                return
        routes[path](handler, entry, body, fault)
