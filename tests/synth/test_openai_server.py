"""The pipeline through a real OpenAI client (`langchain-openai`) against a local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fspo_train.synth import RunnerSettings, run_synth
from tests.synth.conftest import make_run
from tests.synth.server import FixedLatencyServer

pytestmark = pytest.mark.integration


def _strip(path: Path) -> list[dict[str, object]]:
    """Records without provenance (which names the models, and so differs by spec)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "provenance"} for r in rows]


def test_pipeline_over_chat_openai_matches_the_in_process_run(reference_run, tmp_path):
    reference, _ = reference_run
    with FixedLatencyServer(latency_s=0.0) as server:
        spec = f"openai:scripted@{server.base_url}"
        out = tmp_path / "http"
        settings = RunnerSettings(concurrency=8, backoff_base=0.0, progress=False, fsync=False)
        summary = run_synth(make_run(out, generators=[spec], labeller=spec, settings=settings))
        served = server.requests
    assert _strip(out / "records.jsonl") == _strip(reference / "records.jsonl")
    usage = json.loads((out / "usage.json").read_text())
    assert sum(s["requests"] for s in usage["stages"].values()) == served
    assert (
        usage["models"][spec]["input_tokens"] > 0
    )  # from the server's `usage`, via usage_metadata
    assert usage["models"][spec]["missing_usage"] == 0
    assert summary["records"]["records"] > 0
