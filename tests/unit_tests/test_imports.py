"""`import langchain_fspo` stays light: no torch, transformers, peft or trl at import time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import langchain_fspo

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")
LIGHT_MODULES = (
    "langchain_fspo",
    "langchain_fspo.backends",
    "langchain_fspo.backends.factory",
    "langchain_fspo.backends.local",
    "langchain_fspo.chat_models",
    "langchain_fspo.collect",
    "langchain_fspo.artifact",
    "langchain_fspo.memory",
    "langchain_fspo.middleware",
    "langchain_fspo.backends.tgi",
    "langchain_fspo.backends.openai_compat",
)


def test_serving_package_never_imports_the_training_stack() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {LIGHT_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_subprocess_imports_this_checkout() -> None:
    code = "import langchain_fspo; print(langchain_fspo.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    ).stdout
    assert Path(out.strip()).resolve() == REPO_ROOT / "langchain_fspo" / "__init__.py"


def test_every_exported_name_resolves() -> None:
    assert len(set(langchain_fspo.__all__)) == len(langchain_fspo.__all__)
    for name in langchain_fspo.__all__:
        assert getattr(langchain_fspo, name) is not None, name
