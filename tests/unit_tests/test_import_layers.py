"""`import fspo_train` stays light, and both packages depend one way (no import cycles)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "peft", "accelerate", "datasets", "matplotlib")
PACKAGES = (
    "fspo_train",
    "fspo_train.cli",
    "fspo_train.data",
    "fspo_train.eval",
    "fspo_train.publish",
    "fspo_train.reviews_mini",
    "fspo_train.synth",
    "fspo_train.testing",
    "fspo_train.trainer",
)


def test_packages_and_the_fspo_parser_load_no_training_stack() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {PACKAGES!r}:\n"
        "    importlib.import_module(name)\n"
        "from fspo_train.cli import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def _imports(path: Path) -> set[str]:
    """The `fspo_train` and `langchain_fspo` modules `path` imports (at any depth)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from package import module` depends on the module, not only on the package.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] in ("fspo_train", "langchain_fspo")}


def test_serving_never_imports_training() -> None:
    for path in (REPO_ROOT / "langchain_fspo").rglob("*.py"):
        offending = {n for n in _imports(path) if n.startswith("fspo_train")}
        assert not offending, f"{path.relative_to(REPO_ROOT)} imports {sorted(offending)}"


@pytest.mark.parametrize("package", ["fspo_train", "langchain_fspo"])
def test_no_import_cycles_between_modules(package: str) -> None:
    """No module reaches itself through imports, lazy (function-level) imports included."""
    root = REPO_ROOT / package
    modules = {
        ".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in root.rglob("*.py")
        if p.name != "__main__.py"  # entry points import the CLI on purpose
    }
    graph = {
        name: {n for n in _imports(path) if n in modules and n != name}
        for name, path in modules.items()
    }
    # A package's __init__ re-exports its modules; a module importing a sibling through the
    # package is resolved to the sibling above, so drop the edges into one's own parent package.
    graph = {
        name: {n for n in deps if not name.startswith(n + ".")} for name, deps in graph.items()
    }
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycle = [*stack[stack.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for child in sorted(graph[name]):
            visit(child, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
