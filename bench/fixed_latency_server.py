"""A minimal OpenAI-compatible chat server for the benchmarks: a fixed latency, answers by function.

It stands in for an inference server (vLLM, SGLang, TGI's `/v1`) where only the protocol and
the time per request matter: the speed benchmarks time clients against it, and
tests/synth/test_openai_server.py drives `fspo synth` through `langchain-openai` with it. It
serves `POST /v1/chat/completions`, not streamed, in the OpenAI shape that TGI's route of the
same name also uses (so `TGIBackend`, `huggingface_hub` and `langchain-openai` all talk to it),
and `GET /v1/models`; no spec checks, no fault injection (tests/tgi_server does those) other than
a provider's rate limit: with `rate_limit=(n, window_s)` it answers 429 with a `Retry-After`
header (whole seconds until a slot frees, as HTTP defines it) and OpenAI's error body to any
request beyond `n` in the last `window_s` seconds, and logs those in `rejected`. Every accepted
completion request is logged (`requests`, with its arrival time) to show what a client sent.
Handler threads print nothing: a client that resets its connection is dropped, any other
handler error is kept in `errors` and raised by the context manager on exit.

    python -m bench.fixed_latency_server --latency 0.05 --answers synth   # prints the base URL
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Answerer = Callable[[list[str]], str]
"""The answer to a request, from the text of its user messages (the first is the prompt)."""

FIXED_ANSWER = "A fixed answer of a few words."


def fixed_answer(_: list[str]) -> str:
    """Answer every request with `FIXED_ANSWER` (no generation time)."""
    return FIXED_ANSWER


def synth_answer(user_messages: list[str]) -> str:
    """Answer `fspo synth`'s prompts by rule; a repeated user message is a retry."""
    from bench.synth_rules import answer

    return answer(user_messages[0], attempt=len(user_messages))


ANSWERERS: dict[str, Answerer] = {"fixed": fixed_answer, "synth": synth_answer}


@dataclass(frozen=True)
class ChatRequest:
    """One logged completion request."""

    body: dict[str, Any]
    content_length: int
    at: float = 0.0
    """`time.monotonic()` when it arrived."""


@dataclass(frozen=True)
class Rejection:
    """One request answered 429: when it arrived and the `Retry-After` it was given."""

    at: float
    retry_after: int


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """No per-request log."""

    def _reply(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            self._reply(404, {"error": f"no route GET {self.path}"})
            return
        self._reply(200, {"object": "list", "data": [{"id": "bench", "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._reply(404, {"error": f"no route POST {self.path}"})
            return
        arrived = time.monotonic()
        wait = self.server.admit(arrived)
        if wait is not None:
            error = {
                "message": "Rate limit reached for requests. Please try again later.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
            self._reply(429, {"error": error}, {"Retry-After": str(wait)})
            return
        time.sleep(self.server.latency_s)
        messages = body.get("messages") or []
        users = [_text(m.get("content", "")) for m in messages if m.get("role") == "user"]
        text = self.server.answer(users or [""])
        with self.server.lock:
            self.server.requests.append(ChatRequest(body, length, arrived))
            number = len(self.server.requests)
        prompt_tokens = sum(len(_text(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(text.split())
        self._reply(
            200,
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or "bench",
                "system_fingerprint": "bench",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self,
        port: int,
        latency_s: float,
        answer: Answerer,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.latency_s = latency_s
        self.answer = answer
        self.rate_limit = rate_limit
        self.lock = threading.Lock()
        self.requests: list[ChatRequest] = []
        self.rejected: list[Rejection] = []
        self.errors: list[BaseException] = []
        self._admitted: collections.deque[float] = collections.deque()

    def admit(self, now: float) -> int | None:
        """Count a request against the rate limit: None if admitted, else the seconds to wait."""
        if self.rate_limit is None:
            return None
        limit, window = self.rate_limit
        with self.lock:
            while self._admitted and self._admitted[0] <= now - window:
                self._admitted.popleft()
            if len(self._admitted) < limit:
                self._admitted.append(now)
                return None
            wait = max(1, math.ceil(self._admitted[0] + window - now))
            self.rejected.append(Rejection(now, wait))
            return wait

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        """Keep the handler's error (a client going away aside); never print it here."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError):
            with self.lock:
                self.errors.append(error)


class FixedLatencyServer:
    """The server on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(
        self,
        latency_s: float = 0.0,
        answer: Answerer = fixed_answer,
        port: int = 0,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        """Listen on `port` (0: any free port); sleep `latency_s`, then `answer`, per request.

        `rate_limit=(n, window_s)`: at most `n` requests in any `window_s` seconds, 429 beyond.
        """
        self._server = _Server(port, latency_s, answer, rate_limit)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` (TGI clients take this)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, `<url>/v1`."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[ChatRequest]:
        """The completion requests served so far, oldest first."""
        with self._server.lock:
            return list(self._server.requests)

    @property
    def rejected(self) -> list[Rejection]:
        """The requests answered 429, oldest first."""
        with self._server.lock:
            return list(self._server.rejected)

    @property
    def errors(self) -> list[BaseException]:
        """Errors raised in handlers (not clients going away), oldest first."""
        with self._server.lock:
            return list(self._server.errors)

    def clear(self) -> None:
        """Forget the logged requests."""
        with self._server.lock:
            self._server.requests.clear()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving; raise the first handler error, if any (and no other is in flight)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._server.errors and exc[0] is None:
            msg = f"the fixed-latency server failed while serving: {self._server.errors!r}"
            raise RuntimeError(msg) from self._server.errors[0]


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; print the OpenAI base URL (`http://127.0.0.1:<port>/v1`) first."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per completion")
    parser.add_argument("--answers", choices=sorted(ANSWERERS), default="fixed")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = _Server(args.port, args.latency, ANSWERERS[args.answers])
    print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
