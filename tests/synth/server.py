"""A local OpenAI-compatible chat server with a fixed latency per request, answering by rule.

Test double for a real inference server (vLLM, SGLang, TGI's `/v1`): it speaks the OpenAI chat
completions protocol (`POST /v1/chat/completions`, non-streaming, with `usage`; `GET /v1/models`),
sleeps `latency_s` per request to stand in for generation time, and answers with
`tests.synth.rules`, so a real client (`langchain-openai`'s `ChatOpenAI(base_url=...)`) can drive
the pipeline against it. Used by the integration test and by `bench/synth_throughput.py`.

Example:
    ```python
    with FixedLatencyServer(latency_s=0.05) as server:
        spec = f"openai:scripted@{server.base_url}"
    ```
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from tests.http_server import QuietHTTPServer
from tests.synth.rules import answer


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request log."""

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        messages = payload.get("messages") or []
        users = [_text(m.get("content", "")) for m in messages if m.get("role") == "user"]
        if not users:
            self._send(400, {"error": {"message": "no user message", "type": "invalid_request"}})
            return
        time.sleep(self.server.latency_s)
        text = answer(users[0], attempt=len(users))
        n_in = sum(len(_text(m.get("content", "")).split()) for m in messages)
        n_out = len(text.split())
        with self.server.lock:
            self.server.requests += 1
            number = self.server.requests
            self.server.params[users[0]] = {k: v for k, v in payload.items() if k != "messages"}
        self._send(
            200,
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": payload.get("model", "scripted"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": n_in,
                    "completion_tokens": n_out,
                    "total_tokens": n_in + n_out,
                },
            },
        )


class _Server(QuietHTTPServer):
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], latency_s: float) -> None:
        super().__init__(address, _Handler)
        self.latency_s = latency_s
        self.lock = threading.Lock()
        self.requests = 0
        self.params: dict[str, dict[str, Any]] = {}
        """The request parameters (all but `messages`) each prompt was last sent with."""


class FixedLatencyServer:
    """Run the server on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self, latency_s: float = 0.05, port: int = 0) -> None:
        """Listen on `port` (0: any free port); sleep `latency_s` per completion."""
        self._server = _Server(("127.0.0.1", port), latency_s)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, `http://127.0.0.1:<port>/v1`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        """Request parameters (all but `messages`) by prompt (the first user message)."""
        return self._server.params

    @property
    def seeds(self) -> dict[str, int]:
        """The `seed` each prompt was last sent with (prompts sent without one are absent)."""
        return {p: v["seed"] for p, v in self._server.params.items() if "seed" in v}

    @property
    def handler_errors(self) -> list[BaseException]:
        """Errors raised while serving (not clients going away); kept, never printed."""
        return self._server.handler_errors

    @property
    def requests(self) -> int:
        """Completions served so far."""
        return self._server.requests

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving; fail if a handler raised (clients going away aside)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        errors = list(self._server.handler_errors)
        if exc[0] is None:
            assert not errors, f"the synth test server failed while serving: {errors!r}"


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.synth.server --latency 0.05`: serve until killed; print the base URL."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per completion")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = _Server(("127.0.0.1", args.port), args.latency)
    print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
