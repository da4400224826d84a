"""The GPU check is ready to run: the shell script parses and the train check takes its flags.

`bash bench/gpu_check.sh --dry-run` runs the whole check on CPU with tiny sizes (about 2 minutes
on 2 cores: too slow for the suite); here only what can break without running it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.train

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_shell_script_parses_and_runs_the_anchor_setting() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text(encoding="utf-8")
    assert "--setting 3000:250" in text  # the anchor: P=3000, R=250
    assert "bench/results/train_throughput_h100.json" in text
    assert "bench/results/gpu_train_check.json" in text


def test_the_train_check_takes_its_flags() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_train_check.py"), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in ("--dry-run", "--steps", "--skip-fsdp", "--out"):
        assert flag in done.stdout
