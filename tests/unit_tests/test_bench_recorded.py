"""Committed benchmark results record commands without this machine's paths."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.recorded import REPO_ROOT, portable, recorded_command


def test_machine_paths_become_placeholders() -> None:
    tmp = tempfile.gettempdir()
    text = portable(f"--cache {tmp}/bench --log {Path.home()}/x.log --data {REPO_ROOT}/runs")
    assert text == "--cache $TMPDIR/bench --log ~/x.log --data ./runs"


def test_the_recorded_command_is_runnable_from_the_repository() -> None:
    url = f"postgresql://u@/db?host={tempfile.gettempdir()}/pg&port=5447"
    command = recorded_command("bench/memory_pg_add.py", ["--admin-url", url, "--calls", "3"])
    assert command == (
        "python bench/memory_pg_add.py --admin-url postgresql://u@/db?host=$TMPDIR/pg&port=5447"
        " --calls 3"
    )
