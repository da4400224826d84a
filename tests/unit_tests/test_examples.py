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


def _serve_tgi(*args: str) -> subprocess.CompletedProcess[str]:
    """Run examples/serve_tgi.py with `args` from the repository root."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "serve_tgi.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
    )


def test_serve_tgi_without_a_server_prints_how_to_launch_and_connect() -> None:
    result = _serve_tgi()
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
    result = _serve_tgi("--base-url", "http://x")
    assert result.returncode == 2
    assert "--adapter" in result.stderr
