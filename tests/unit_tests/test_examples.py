"""Every example documents how to run it; the server example's offline mode prints its guide.

The examples that run a model are exercised in `tests/train/test_examples.py`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (REPO_ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def test_the_expected_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "quickstart_local.py",
        "agent_middleware.py",
        "collect_preferences.py",
        "serve_tgi.py",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_has_its_command_in_its_docstring(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring is not None
    assert f"python examples/{path.name}" in docstring
    assert 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")


def test_serve_tgi_without_a_server_prints_how_to_launch_and_connect() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "serve_tgi.py")],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "No --base-url given" in out
    for needle in (
        "ghcr.io/huggingface/text-generation-inference",
        "LORA_ADAPTERS=your-org/fspo-adapter",
        "vllm serve",
        "--lora-modules fspo=",
        "sglang.launch_server",
        'backend="tgi"',
        "--base-url http://localhost:8080",
    ):
        assert needle in out, needle


def test_serve_tgi_needs_the_adapter_with_a_server() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "serve_tgi.py"), "--base-url", "http://x"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--adapter" in result.stderr
