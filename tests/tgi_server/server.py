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

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal, NoReturn, Self

from langchain_fspo.backends.base import Backend, GenerationChunk, GenerationParams
from langchain_fspo.prompt_format import RenderedPrompt
from tests.http_server import QuietHTTPServer
from tests.tgi_server.spec import schema_errors

logger = logging.getLogger(__name__)

Flavor = Literal["tgi", "vllm", "sglang"]
FaultKind = Literal["status", "delay", "cut", "truncate", "malformed", "tool_call"]

DEFAULT_MAX_TOKENS = 16
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


@dataclass
class Fault:
    """A misbehaviour applied to the next `remaining` matching requests."""

    kind: FaultKind
    remaining: int
    status: int = 503
    seconds: float = 0.0
    after_events: int = 1
    path: str | None = None
    message: str | None = None
    tool_name: str = ""
    tool_arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Outcome:
    """What the engine produced for one request."""

    pieces: list[str] = field(default_factory=list)
    finish_reason: str = "length"
    input_tokens: int = 0
    output_tokens: int = 0


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


class _StreamCutError(Exception):
    """Raised inside the handler to abandon a response mid-way (fault injection)."""


class TGITestServer:
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

    def fail_next(
        self, n: int = 1, *, status: int = 503, path: str | None = None, message: str | None = None
    ) -> None:
        """Answer the next `n` requests (to `path`, if given) with `status` and a TGI error."""
        self._add(Fault("status", n, status=status, path=path, message=message))

    def delay_next(self, n: int = 1, *, seconds: float, path: str | None = None) -> None:
        """Wait `seconds` before answering the next `n` requests."""
        self._add(Fault("delay", n, seconds=seconds, path=path))

    def cut_stream_next(
        self, n: int = 1, *, after_events: int = 1, path: str | None = None
    ) -> None:
        """Close the socket mid-body after `after_events` SSE events (or mid-JSON)."""
        self._add(Fault("cut", n, after_events=after_events, path=path))

    def truncate_stream_next(
        self, n: int = 1, *, after_events: int = 1, path: str | None = None
    ) -> None:
        """End the body cleanly after `after_events` SSE events, without the final one."""
        self._add(Fault("truncate", n, after_events=after_events, path=path))

    def tool_call_next(self, name: str, arguments: dict[str, Any], n: int = 1) -> None:
        """Answer the next `n` chat requests with a tool call, as TGI's tool grammar forces.

        The engine still runs (for usage); its text is replaced by the call. Non-streamed, the
        arguments are a JSON object (TGI's shape); streamed, JSON text in pieces.
        """
        fault = Fault("tool_call", n, path="/v1/chat/completions")
        fault.tool_name, fault.tool_arguments = name, dict(arguments)
        self._add(fault)

    def malformed_next(self, n: int = 1, *, path: str | None = None) -> None:
        """Answer the next `n` requests with status 200 and a body that is not valid JSON."""
        self._add(Fault("malformed", n, path=path))

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path is None or fault.path == path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _violation(self, where: str, errors: list[str]) -> None:
        if errors:
            with self._lock:
                self.spec_violations.append(f"{where}: " + "; ".join(errors))

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
        except _StreamCutError:
            handler.close_connection = True
        except (BrokenPipeError, ConnectionResetError):  # the client went away
            handler.close_connection = True

    def _dispatch(
        self,
        handler: _Handler,
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
            self._send_json(
                handler,
                entry,
                404,
                {"error": f"No route {method} {path}", "error_type": "not_found"},
                schema=None,
            )
            return
        fault = self._take_fault(path)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "status":
            error = fault.message or f"Injected failure (HTTP {fault.status})"
            error_type = _ERROR_TYPES.get(fault.status, "unknown")
            self._send_json(
                handler,
                entry,
                fault.status,
                {"error": error, "error_type": error_type},
                schema="ErrorResponse",
            )
            return
        if method == "POST":
            if parse_error is not None or not isinstance(body, dict):
                message = f"Failed to deserialize the JSON body: {parse_error or 'not an object'}"
                self._violation(f"request {path}", [message])
                self._send_json(
                    handler,
                    entry,
                    422,
                    {"error": message, "error_type": "validation"},
                    schema="ErrorResponse",
                )
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
                self._send_json(
                    handler,
                    entry,
                    422,
                    {"error": message, "error_type": "validation"},
                    schema="ErrorResponse",
                )
                return
        routes[path](handler, entry, body, fault)

    # ------------------------------------------------------------------ GET routes

    def _health(
        self, handler: _Handler, entry: LoggedRequest, body: Any, fault: Fault | None
    ) -> None:
        entry.status = 200
        handler.send_response(200)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _info(
        self, handler: _Handler, entry: LoggedRequest, body: Any, fault: Fault | None
    ) -> None:
        info = {
            "model_id": self.model_id,
            "model_sha": None,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": 128,
            "max_best_of": 2,
            "max_stop_sequences": 4,
            "max_input_tokens": self.max_input_tokens,
            "max_total_tokens": self.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": 4,
            "router": "text-generation-router",
            "version": "3.3.7",
            "sha": None,
            "docker_label": None,
        }
        self._send_json(handler, entry, 200, info, schema="Info", fault=fault)

    def _models(
        self, handler: _Handler, entry: LoggedRequest, body: Any, fault: Fault | None
    ) -> None:
        created = int(time.time())
        if self.flavor == "tgi":
            model = {
                "id": self.model_id,
                "object": "model",
                "created": created,
                "owned_by": self.model_id,
            }
            self._send_json(handler, entry, 200, model, schema="ModelInfo", fault=fault)
            return
        owner = self.flavor
        data = [
            {
                "id": self.model_id,
                "object": "model",
                "created": created,
                "owned_by": owner,
                "root": self.model_id,
                "parent": None,
            }
        ]
        for name in sorted(self.adapters):
            served = f"{self.model_id}:{name}" if self.flavor == "sglang" else name
            data.append(
                {
                    "id": served,
                    "object": "model",
                    "created": created,
                    "owned_by": owner,
                    "root": name,
                    "parent": self.model_id,
                }
            )
        self._send_json(
            handler, entry, 200, {"object": "list", "data": data}, schema=None, fault=fault
        )

    # ------------------------------------------------------------------ adapters

    def _adapter_from_model(self, model: str | None) -> tuple[str | None, str | None]:
        """(adapter to run, error message) for a `/v1` request's `model`."""
        if self.flavor == "tgi":
            if model is None or model == "tgi" or model not in self.adapters:
                return None, None  # TGI: unknown adapter ids silently run the base model
            return model, None
        if model is None or model == self.model_id:
            return None, None
        name = model
        if self.flavor == "sglang":
            base, sep, name = model.partition(":")
            if not sep or base != self.model_id:
                return (
                    None,
                    f"The model `{model}` does not exist (SGLang expects '<base>:<adapter>').",
                )
        if name not in self.adapters:
            return None, f"The model `{model}` does not exist."
        return name, None

    def _openai_error(self, handler: _Handler, entry: LoggedRequest, message: str) -> None:
        if self.flavor == "vllm":
            payload: dict[str, Any] = {
                "object": "error",
                "message": message,
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            }
            self._send_json(handler, entry, 404, payload, schema=None)
        else:
            payload = {"error": {"message": message, "type": "BadRequestError", "code": 400}}
            self._send_json(handler, entry, 400, payload, schema=None)

    # ------------------------------------------------------------------ engine

    def _run(
        self, prompt: RenderedPrompt, adapter: str | None, params: GenerationParams
    ) -> Iterator[tuple[str, _Outcome | None]]:
        """Stream `(piece, None)` pairs, then `(last piece, final outcome)`."""
        outcome = _Outcome()
        last: GenerationChunk | None = None
        for chunk in self.backend.stream(prompt, adapter=adapter, params=params):
            last = chunk
            if chunk.finish_reason is None:
                outcome.pieces.append(chunk.text)
                yield chunk.text, None
        tail = last.text if last is not None and last.finish_reason is not None else ""
        outcome.pieces.append(tail)
        outcome.finish_reason = (last.finish_reason if last else None) or "length"
        outcome.input_tokens = (last.input_tokens if last else None) or 0
        outcome.output_tokens = (last.output_tokens if last else None) or sum(
            1 for p in outcome.pieces if p
        )
        yield tail, outcome

    def _run_all(
        self, prompt: RenderedPrompt, adapter: str | None, params: GenerationParams
    ) -> _Outcome:
        for _, final in self._run(prompt, adapter, params):
            if final is not None:
                return final
        return _Outcome()  # pragma: no cover - _run always ends with the outcome

    def _too_long(self, handler: _Handler, entry: LoggedRequest, prompt: RenderedPrompt) -> bool:
        text = (
            prompt.text
            if prompt.style == "paper"
            else "\n".join(str(m.get("content")) for m in prompt.messages)
        )
        counted = self.backend.count_tokens(text)
        if counted is not None and counted > self.max_input_tokens:
            message = (
                f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
                f"{self.max_total_tokens}. Given: {counted} `inputs` tokens"
            )
            self._send_json(
                handler,
                entry,
                422,
                {"error": message, "error_type": "validation"},
                schema="ErrorResponse",
            )
            return True
        return False

    # ------------------------------------------------------------------ /tokenize

    def _tokenize(
        self, handler: _Handler, entry: LoggedRequest, body: dict[str, Any], fault: Fault | None
    ) -> None:
        tokenizer = getattr(self.backend, "tokenizer", None)
        if tokenizer is None:
            error = {"error": "No fast tokenizer available", "error_type": "tokenizer"}
            self._send_json(handler, entry, 404, error, schema="ErrorResponse")
            return
        text = body["inputs"]
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        tokens = [
            {"id": int(token_id), "text": text[start:stop], "start": start, "stop": stop}
            for token_id, (start, stop) in zip(
                encoded["input_ids"], encoded["offset_mapping"], strict=True
            )
        ]
        self._send_json(handler, entry, 200, tokens, schema="TokenizeResponse", fault=fault)

    # ------------------------------------------------------------------ /generate

    def _generate(
        self, handler: _Handler, entry: LoggedRequest, body: dict[str, Any], fault: Fault | None
    ) -> None:
        params_in: dict[str, Any] = body.get("parameters") or {}
        requested = params_in.get("adapter_id")
        adapter = requested if requested in self.adapters else None
        entry.served_adapter = adapter
        temperature = params_in.get("temperature")
        if not params_in.get("do_sample") and temperature is None:
            temperature = 0.0
        elif temperature is None:
            temperature = 1.0
        params = GenerationParams(
            temperature=temperature,
            max_tokens=params_in.get("max_new_tokens") or DEFAULT_MAX_TOKENS,
            top_p=params_in.get("top_p"),
            top_k=params_in.get("top_k"),
            seed=params_in.get("seed"),
            stop=params_in.get("stop") or None,
            frequency_penalty=params_in.get("frequency_penalty"),
            repetition_penalty=params_in.get("repetition_penalty"),
        )
        prompt = RenderedPrompt(
            text=body["inputs"],
            messages=[{"role": "user", "content": body["inputs"]}],
            shots=[],
            style="paper",
        )
        if self._too_long(handler, entry, prompt):
            return
        stream = entry.path == "/generate_stream" or (entry.path == "/" and body.get("stream"))
        if not stream:
            outcome = self._run_all(prompt, adapter, params)
            text = "".join(outcome.pieces)
            response: dict[str, Any] = {"generated_text": text}
            if params_in.get("details"):
                response["details"] = {
                    "finish_reason": _tgi_finish(outcome.finish_reason),
                    "generated_tokens": outcome.output_tokens,
                    "seed": params.seed,
                    "prefill": [],
                    "tokens": [_token(i, p) for i, p in enumerate(outcome.pieces) if p],
                }
            self._send_json(handler, entry, 200, response, schema="GenerateResponse", fault=fault)
            return

        def events() -> Iterator[dict[str, Any]]:
            produced = ""
            for index, (piece, outcome) in enumerate(self._run(prompt, adapter, params)):
                produced += piece
                event: dict[str, Any] = {
                    "index": index,
                    "token": _token(index, piece),
                    "generated_text": None,
                    "details": None,
                    "top_tokens": [],
                }
                if outcome is not None:
                    event["generated_text"] = produced
                    event["details"] = {
                        "finish_reason": _tgi_finish(outcome.finish_reason),
                        "generated_tokens": outcome.output_tokens,
                        "input_length": outcome.input_tokens,
                        "seed": params.seed,
                    }
                yield event

        self._send_sse(handler, entry, events(), schema="StreamResponse", done=False, fault=fault)

    # ------------------------------------------------------------------ /v1

    def _openai_params(self, body: dict[str, Any]) -> GenerationParams:
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        return GenerationParams(
            temperature=body.get("temperature"),
            max_tokens=body.get("max_tokens") or DEFAULT_MAX_TOKENS,
            top_p=body.get("top_p"),
            top_k=body.get("top_k"),  # vLLM / SGLang extension; TGI ignores it
            seed=body.get("seed"),
            stop=stop or None,
            frequency_penalty=body.get("frequency_penalty"),
            presence_penalty=body.get("presence_penalty"),
            repetition_penalty=body.get("repetition_penalty"),
        )

    def _echo_model(self, body: dict[str, Any]) -> str:
        model = body.get("model")
        return model if model and model != "tgi" else self.model_id

    def _chat(
        self, handler: _Handler, entry: LoggedRequest, body: dict[str, Any], fault: Fault | None
    ) -> None:
        adapter, error = self._adapter_from_model(body.get("model"))
        if error is not None:
            self._openai_error(handler, entry, error)
            return
        entry.served_adapter = adapter
        messages = [
            {"role": m.get("role", "user"), "content": _content_text(m.get("content"))}
            for m in body["messages"]
        ]
        prompt = RenderedPrompt(
            text="\n".join(m["content"] for m in messages),
            messages=messages,
            shots=[],
            style="chat",
        )
        if self._too_long(handler, entry, prompt):
            return
        params = self._openai_params(body)
        model = self._echo_model(body)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "3.3.7-tgi-test-server",
        }
        if fault is not None and fault.kind == "tool_call":
            self._tool_call(
                handler, entry, body, base, self._run_all(prompt, adapter, params), fault
            )
            return
        if not body.get("stream"):
            outcome = self._run_all(prompt, adapter, params)
            response = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(outcome.pieces)},
                        "logprobs": None,
                        "finish_reason": _openai_finish(outcome.finish_reason),
                    }
                ],
                "usage": _usage(outcome),
            }
            self._send_json(handler, entry, 200, response, schema="ChatCompletion", fault=fault)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[dict[str, Any]]:
            for piece, outcome in self._run(prompt, adapter, params):
                yield {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": piece},
                            "logprobs": None,
                            "finish_reason": _openai_finish(outcome.finish_reason)
                            if outcome
                            else None,
                        }
                    ],
                    "usage": None,
                }
                if outcome is not None and include_usage:
                    yield {
                        **base,
                        "object": "chat.completion.chunk",
                        "choices": [],
                        "usage": _usage(outcome),
                    }

        self._send_sse(
            handler, entry, events(), schema="ChatCompletionChunk", done=True, fault=fault
        )

    def _tool_call(
        self,
        handler: _Handler,
        entry: LoggedRequest,
        body: dict[str, Any],
        base: dict[str, Any],
        outcome: _Outcome,
        fault: Fault,
    ) -> None:
        call_id = f"call_{uuid.uuid4().hex[:8]}"
        if not body.get("stream"):
            function = {
                "name": fault.tool_name,
                "arguments": fault.tool_arguments,
                "description": None,
            }
            message = {
                "role": "assistant",
                "tool_calls": [{"id": call_id, "type": "function", "function": function}],
            }
            response = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": _usage(outcome),
            }
            self._send_json(handler, entry, 200, response, schema="ChatCompletion")
            return
        text = json.dumps(fault.tool_arguments)
        pieces = [text[: len(text) // 2], text[len(text) // 2 :]]
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[dict[str, Any]]:
            for i, piece in enumerate(["", *pieces]):
                function = {"name": fault.tool_name if i == 0 else None, "arguments": piece}
                delta = {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call_id if i == 0 else "",
                            "type": "function",
                            "function": function,
                        }
                    ],
                }
                yield {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
                    ],
                    "usage": None,
                }
            final = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
            yield {**base, "object": "chat.completion.chunk", "choices": [final], "usage": None}
            if include_usage:
                yield {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": _usage(outcome),
                }

        self._send_sse(
            handler, entry, events(), schema="ChatCompletionChunk", done=True, fault=None
        )

    def _completions(
        self, handler: _Handler, entry: LoggedRequest, body: dict[str, Any], fault: Fault | None
    ) -> None:
        adapter, error = self._adapter_from_model(body.get("model"))
        if error is not None:
            self._openai_error(handler, entry, error)
            return
        entry.served_adapter = adapter
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        if len(prompts) != 1:
            self._send_json(
                handler,
                entry,
                422,
                {
                    "error": "This test server takes one prompt per request.",
                    "error_type": "validation",
                },
                schema="ErrorResponse",
            )
            return
        prompt = RenderedPrompt(
            text=prompts[0],
            messages=[{"role": "user", "content": prompts[0]}],
            shots=[],
            style="paper",
        )
        if self._too_long(handler, entry, prompt):
            return
        params = self._openai_params(body)
        base = {
            "id": f"cmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": self._echo_model(body),
            "system_fingerprint": "3.3.7-tgi-test-server",
            "object": "text_completion",
        }
        if not body.get("stream"):
            outcome = self._run_all(prompt, adapter, params)
            response = {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "text": "".join(outcome.pieces),
                        "logprobs": None,
                        "finish_reason": _openai_finish(outcome.finish_reason),
                    }
                ],
                "usage": _usage(outcome),
            }
            self._send_json(handler, entry, 200, response, schema="CompletionFinal", fault=fault)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[dict[str, Any]]:
            for piece, outcome in self._run(prompt, adapter, params):
                yield {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "text": piece,
                            "logprobs": None,
                            "finish_reason": _openai_finish(outcome.finish_reason)
                            if outcome
                            else "",
                        }
                    ],
                }
                if outcome is not None and include_usage:  # vLLM's extension (TGI sends none)
                    yield {**base, "choices": [], "usage": _usage(outcome)}

        self._send_sse(handler, entry, events(), schema="Chunk", done=True, fault=fault)

    # ------------------------------------------------------------------ writing

    def _send_json(
        self,
        handler: _Handler,
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
        handler: _Handler,
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


def _abort(handler: _Handler) -> NoReturn:
    """Close the connection mid-body: the client sees an incomplete response."""
    handler.wfile.flush()
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)
    raise _StreamCutError


def _token(index: int, text: str) -> dict[str, Any]:
    return {"id": index, "text": text, "logprob": None, "special": False}


def _tgi_finish(reason: str) -> str:
    return {"length": "length", "stop": "eos_token", "stop_sequence": "stop_sequence"}.get(
        reason, "eos_token"
    )


def _openai_finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _usage(outcome: _Outcome) -> dict[str, int]:
    return {
        "prompt_tokens": outcome.input_tokens,
        "completion_tokens": outcome.output_tokens,
        "total_tokens": outcome.input_tokens + outcome.output_tokens,
    }


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))
