"""The README's Python quickstarts run as written (on a tiny adapter built offline).

Blocks that talk to a server (they contain `http://`) are left out: the same calls run against
the TGI test server in `tests/integration_tests/`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)

pytestmark = pytest.mark.train


def test_readme_has_the_quickstarts() -> None:
    joined = "\n".join(BLOCKS)
    for name in ("ChatFSPO.from_pretrained", "PreferenceMemory", "FSPOMiddleware", "compare"):
        assert name in joined


def test_readme_python_blocks_run_in_order(
    tiny_adapter_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the quickstart writes preferences.db in the working directory
    # What `fspo tiny runs/tiny` writes (the wheel test runs that command itself).
    shutil.copytree(tiny_adapter_dirs["alpha"], tmp_path / "runs" / "tiny" / "adapter")
    namespace: dict[str, object] = {}
    ran = 0
    for block in BLOCKS:
        if "http://" in block:
            continue
        exec(compile(block, str(README), "exec"), namespace)
        ran += 1
    assert ran >= 4
    assert (tmp_path / "preferences.db").is_file()
    memory = namespace["memory"]
    oldest = memory.list("ada")[0]
    assert oldest.chosen.startswith("Arrival")
