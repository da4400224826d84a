"""The pipeline through a real OpenAI client (`langchain-openai`) against a local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.fixed_latency_server import FixedLatencyServer, synth_answer
from fspo_train.synth import RunnerSettings, load_domain, run_synth
from tests.train.synth.conftest import TINY_DOMAIN, make_run

pytestmark = pytest.mark.integration


def _server() -> FixedLatencyServer:
    return FixedLatencyServer(latency_s=0.0, answer=synth_answer)


def _params(server: FixedLatencyServer) -> dict[str, dict[str, Any]]:
    """Request parameters (all but `messages`) by prompt (first user message), last sent."""
    params = {}
    for request in server.requests:
        users = [m["content"] for m in request.body["messages"] if m["role"] == "user"]
        params[users[0]] = {k: v for k, v in request.body.items() if k != "messages"}
    return params


def _seeds(server: FixedLatencyServer) -> dict[str, int]:
    """The `seed` each prompt was last sent with (prompts sent without one are absent)."""
    return {prompt: p["seed"] for prompt, p in _params(server).items() if "seed" in p}


def _strip(path: Path) -> list[dict[str, object]]:
    """Records without provenance (which names the models, and so differs by spec)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "provenance"} for r in rows]


def test_pipeline_over_chat_openai_matches_the_in_process_run(reference_run, tmp_path):
    reference, _ = reference_run
    with _server() as server:
        spec = f"openai:scripted@{server.base_url}"
        out = tmp_path / "http"
        settings = RunnerSettings(concurrency=8, backoff_base=0.0, progress=False, fsync=False)
        summary = run_synth(make_run(out, generators=[spec], labeller=spec, settings=settings))
        served = len(server.requests)
    assert _strip(out / "records.jsonl") == _strip(reference / "records.jsonl")
    usage = json.loads((out / "usage.json").read_text())
    assert sum(s["requests"] for s in usage["stages"].values()) == served
    assert set(usage["models"]) == {f"{spec} t=1", f"{spec} t=0"}  # generator, labeller
    for model in usage["models"].values():
        assert model["input_tokens"] > 0  # from the server's `usage`, via usage_metadata
        assert model["missing_usage"] == 0
    assert summary["records"]["records"] > 0


def test_request_seeds_reach_the_server_and_are_stable(tmp_path):
    domain = load_domain(TINY_DOMAIN).with_overrides(global_count=6, specific_per_user=0)
    seen = []
    for name in ("a", "b"):
        with _server() as server:
            spec = f"openai:scripted@{server.base_url}"
            settings = RunnerSettings(concurrency=4, backoff_base=0.0, progress=False, fsync=False)
            run_synth(
                make_run(
                    tmp_path / name,
                    domain=domain,
                    generators=[spec],
                    labeller=spec,
                    settings=settings,
                    request_seeds=True,
                ),
                stages=["personas", "questions", "views"],
            )
            seen.append(_seeds(server))
    assert seen[0] == seen[1]
    assert len(seen[0]) == 4 + 1 + 6  # personas, one question batch, views of 6 questions
    assert len(set(seen[0].values())) == len(seen[0])
    with _server() as server:
        spec = f"openai:scripted@{server.base_url}"
        run_synth(
            make_run(tmp_path / "none", domain=domain, generators=[spec], labeller=spec),
            stages=["personas"],
        )
        assert len(server.requests) == 4
        assert _seeds(server) == {}


def test_json_schema_mode_sends_the_schema_as_response_format(tmp_path):
    domain = load_domain(TINY_DOMAIN).with_overrides(global_count=6, specific_per_user=0)
    settings = RunnerSettings(
        concurrency=4,
        backoff_base=0.0,
        progress=False,
        fsync=False,
        structured_output="json_schema",
    )
    with _server() as server:
        spec = f"openai:scripted@{server.base_url}"
        run_synth(
            make_run(
                tmp_path / "r", domain=domain, generators=[spec], labeller=spec, settings=settings
            ),
            stages=["personas", "questions", "views", "responses"],
        )
        params = _params(server)
    formats: dict[str, set[str]] = {}
    schemas = ("PersonaOut", "QuestionsOut", "ViewsOut")
    for prompt, p in params.items():
        kind = next((s for s in schemas if f'"title": "{s}"' in prompt), "response")
        rf = p.get("response_format")
        formats.setdefault(kind, set()).add(rf["json_schema"]["name"] if rf else "none")
    assert formats["PersonaOut"] == {"PersonaOut"}
    assert formats["ViewsOut"] == {"ViewsOut"}
    assert formats["QuestionsOut"] == {"QuestionsOut"}
    assert formats["response"] == {"none"}  # free text is not constrained
    persona = next(p for q, p in params.items() if '"title": "PersonaOut"' in q)
    assert persona["response_format"]["type"] == "json_schema"
    assert set(persona["response_format"]["json_schema"]["schema"]["properties"]) == {
        "name",
        "description",
    }
