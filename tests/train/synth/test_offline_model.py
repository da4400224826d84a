"""The offline synth path (`--generator offline`), and clients that never retry on their own.

The runner's `--max-retries` must count every request a failed item sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fspo_train.cli import main
from fspo_train.data.loaders import load_records
from fspo_train.synth.models import load_chat_model
from fspo_train.synth.offline import OfflineChatModel


def test_fspo_synth_runs_offline_on_a_packaged_domain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(key, raising=False)
    out = tmp_path / "data"
    argv = ["synth", "--domain", "reviews", "--generator", "offline", "--labeller", "offline"]
    assert main([*argv, "--questions", "8", "--out", str(out), "--no-progress"]) == 0
    train = load_records(out / "train.jsonl", strict=True).records
    test = load_records(out / "test.jsonl", strict=True).records
    assert train
    assert test
    assert {r.user_id for r in train}.isdisjoint({"positive+concise", "negative+verbose"})
    assert "records in" in capsys.readouterr().out


def test_the_offline_spec_builds_the_offline_model() -> None:
    model = load_chat_model("offline", temperature=1.0)
    assert isinstance(model, OfflineChatModel)
    assert model.temperature == 1.0


class _AlwaysFails(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        body = json.dumps({"error": {"message": "overloaded"}}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.enable_socket
def test_an_openai_client_sends_each_request_once() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysFails)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        model = load_chat_model(f"openai:served@{url}")
        with pytest.raises(Exception, match="overloaded"):
            model.invoke("hello")
    finally:
        server.shutdown()
        server.server_close()
    assert _AlwaysFails.calls == 1  # the runner's --max-retries is the only retry layer


def test_docstring_examples_run() -> None:
    import doctest

    import fspo_train.synth.offline

    result = doctest.testmod(fspo_train.synth.offline)
    assert result.attempted > 0
    assert result.failed == 0
