"""The offline examples run end to end (each in its own process) and print what they claim.

Each script runs as a user would run it (`python examples/<name>.py`), with the repository
root as working directory and `PYTHONPATH`. The quickstart builds its own tiny model (the
offline default); the others get the session's tiny adapters through `--adapter`, which is
also how a real adapter is passed. `serve_tgi.py` runs against the TGI-speaking test server
(tests/tgi_server: a test double of TGI and vLLM that generates with the tiny model).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tgi_server import TGITestServer
from tests.tgi_server import fixtures as tgi_fixtures

pytestmark = pytest.mark.train

# The TGI test server stack (pytest finds fixtures by their name in this module).
tgi = tgi_fixtures.tgi
vllm = tgi_fixtures.vllm
tiny_stack = tgi_fixtures.tiny_stack

pytest.importorskip("torch")
pytest.importorskip("langchain.agents")

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        timeout=300,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _section(out: str, user: str) -> str:
    match = re.search(rf"== {user} ==\n(.*?)(?=\n== |\nstreaming|\Z)", out, re.DOTALL)
    assert match, f"no section for {user} in:\n{out}"
    return match.group(1)


def test_quickstart_builds_a_tiny_model_and_personalises_two_users(tmp_path: Path) -> None:
    out = run_example("quickstart_local.py", "--workdir", str(tmp_path), "--max-tokens", "4")

    assert "Building a tiny random model offline" in out
    assert (tmp_path / "tiny-adapter" / "fspo_format.json").is_file()
    ada, bob, newcomer = (_section(out, u) for u in ("ada", "bob", "newcomer"))
    assert "Arrival" in ada
    assert "Mad Max" not in ada
    assert "Mad Max" in bob
    assert "Arrival" not in bob
    assert "examples in the prompt: 0" in newcomer
    assert "Arrival" not in newcomer
    assert re.search(r"metadata: user_id=ada adapter=tiny-adapter shots=2 example_ids=\['", ada)
    assert "metadata: user_id=bob adapter=tiny-adapter shots=1" in bob
    assert "metadata: user_id=newcomer adapter=tiny-adapter shots=0 example_ids=[]" in newcomer
    assert "\nstreaming for ada:" in out


def test_agent_middleware_serves_each_user_with_their_examples_and_adapter(
    tiny_adapter_dirs: dict[str, Path],
) -> None:
    alpha, beta = tiny_adapter_dirs["alpha"], tiny_adapter_dirs["beta"]
    out = run_example(
        "agent_middleware.py",
        "--adapter",
        str(alpha),
        "--adapter-b",
        str(beta),
        "--max-tokens",
        "4",
    )
    lines = [line for line in out.splitlines() if "user_id=" in line]
    assert lines == [
        "[ada] user_id=ada adapter=alpha shots=1 own_examples=True",
        "[bob] user_id=bob adapter=second shots=1 own_examples=True",
        "[ada] user_id=ada adapter=alpha shots=1 own_examples=True",
    ]


def test_collect_preferences_records_a_choice_and_a_tie(
    tiny_adapter_dirs: dict[str, Path],
) -> None:
    out = run_example(
        "collect_preferences.py",
        "--adapter",
        str(tiny_adapter_dirs["alpha"]),
        "--max-tokens",
        "6",
    )
    choices = re.findall(r"recorded: ada chose '(\w+)'", out)
    assert len(choices) == 2
    assert choices[0] in {"a", "b"}
    assert choices[1] == "tie"
    assert "ada now has 1 example(s) and 2 recorded choice(s)" in out
    assert "the next prompt for ada holds 1 example(s)" in out
    assert "question 'Recommend a film for tonight.' in the next prompt: True" in out
    assert "question 'What should I cook for dinner?' in the next prompt: False" in out


def test_collect_preferences_interactively_from_a_sqlite_file(
    tiny_adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    db = tmp_path / "prefs.db"
    args = ("--adapter", str(tiny_adapter_dirs["alpha"]), "--max-tokens", "6", "--db", str(db))
    out = run_example("collect_preferences.py", "--interactive", *args, stdin="x\nb\nneither\n")

    assert "Please answer a, b, tie or neither." in out
    assert re.findall(r"recorded: ada chose '(\w+)'", out) == ["b", "neither"]

    from langchain_fspo.memory import PreferenceMemory

    with PreferenceMemory.sqlite(db) as memory:
        assert [c.choice for c in memory.list_choices("ada")] == ["b", "neither"]
        (example,) = memory.list("ada")
        assert example.prompt == "Recommend a film for tonight."
        assert example.metadata["source"] == "collect_preferences.py"


# ---------------------------------------------------------------- serve_tgi.py against a server


def _serve(server: TGITestServer, tiny_stack, *args: str) -> str:
    folder = tiny_stack.adapter_dirs["fspo-alice"]
    return run_example(
        "serve_tgi.py",
        "--base-url",
        server.url,
        "--adapter",
        str(folder),
        "--adapter-id",
        "fspo-alice",
        "--max-tokens",
        "4",
        *args,
    )


@pytest.mark.integration
def test_serve_tgi_against_a_tgi_speaking_server(tgi, tiny_stack) -> None:
    out = _serve(tgi, tiny_stack)

    assert f"connected to {tgi.url} (tgi); adapter 'fspo-alice'" in out
    assert "[ada] adapter=fspo-alice shots=1" in out
    generations = [r for r in tgi.requests if r.method == "POST"]
    assert len(generations) == 2  # invoke, then stream
    for request in generations:
        assert request.served_adapter == "fspo-alice"
        assert "Arrival: quiet, clever science fiction." in str(request.body)


@pytest.mark.integration
def test_serve_tgi_against_a_vllm_flavored_server(vllm, tiny_stack) -> None:
    out = _serve(vllm, tiny_stack, "--kind", "openai", "--flavor", "vllm")

    assert "(openai); adapter 'fspo-alice'" in out
    generations = [r for r in vllm.requests if r.path == "/v1/chat/completions"]
    assert len(generations) == 2
    assert {r.body["model"] for r in generations} == {"fspo-alice"}
    assert {r.served_adapter for r in generations} == {"fspo-alice"}
