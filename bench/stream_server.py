"""A server that streams a long completion at once, for timing how fast clients parse a stream.

`POST /v1/chat/completions` with `"stream": true` answers `max_tokens` server-sent events in
the OpenAI chunk shape (TGI's chat route uses the same), then a final event with the finish
reason and usage, then `data: [DONE]`: the whole body is built once per length and written as
fast as the socket takes it, so a client's time is its own reading and parsing. The text is
words with a line break every 13 tokens and a blank line every 97. Plain HTTP/1.1 on
127.0.0.1; nothing else is served.

    python -m bench.stream_server   # prints the base URL
"""

from __future__ import annotations

import functools
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["sse_body", "token_text"]


def token_text(i: int) -> str:
    """The text of the `i`-th streamed token."""
    if i % 97 == 96:
        return "\n\n"
    if i % 13 == 12:
        return "\n"
    return " tok"


@functools.lru_cache(maxsize=4)
def sse_body(tokens: int, model: str = "bench") -> bytes:
    """The whole event stream of a `tokens`-token chat completion."""
    head = f'{{"id":"s","object":"chat.completion.chunk","model":"{model}","choices":[{{"index":0,'
    events = [
        f'data: {head}"delta":{{"content":{json.dumps(token_text(i))}}}}}]}}\n\n'
        for i in range(tokens)
    ]
    usage = {"prompt_tokens": 3, "completion_tokens": tokens, "total_tokens": tokens + 3}
    final = {
        "id": "s",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
        "usage": usage,
    }
    events.append(f"data: {json.dumps(final)}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """No per-request log."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        data = sse_body(int(body.get("max_tokens") or 16), str(body.get("model") or "bench"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def main() -> None:
    """Serve until killed; print the base URL (`http://127.0.0.1:<port>`) first."""
    server = _Server(("127.0.0.1", 0), _Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
