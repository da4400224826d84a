"""Resumption: a run killed with SIGKILL mid-stage, started again, gives the same records.

Byte for byte the records of an uninterrupted run, and neither repeats nor loses finished work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fspo_train.synth import RunnerSettings, run_synth
from tests.train.synth.conftest import REPO_ROOT, SCRIPTED, TINY_DOMAIN, make_run

COMPARED = ("records.jsonl", "train.jsonl", "test.jsonl", "splits.json", "disagreement.json")
STAGE_FILES = (
    "personas.jsonl",
    "questions.jsonl",
    "views.jsonl",
    "responses.jsonl",
    "labels.jsonl",
    "refinements.jsonl",
    "relabels.jsonl",
)


def _cli(out: Path, latency: str = "0.02") -> subprocess.Popen[bytes]:
    """`fspo synth` in a subprocess; the latency makes it slow enough to be killed mid-stage."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SCRIPTED_LATENCY_S": latency}
    cmd = [
        sys.executable,
        "-m",
        "fspo_train.synth",
        "synth",
        "--domain",
        str(TINY_DOMAIN),
        "--out",
        str(out),
        "--generator",
        SCRIPTED,
        "--labeller",
        SCRIPTED,
        "--concurrency",
        "4",
        "--backoff",
        "0",
        "--no-progress",
    ]
    return subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _kill_when(proc: subprocess.Popen[bytes], path: Path, lines: int) -> None:
    deadline = time.monotonic() + 120
    while _lines(path) < lines:
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"the run ended before it could be killed: {err.decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path.name} never reached {lines} lines")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows), f"{path.name} repeats an id"
    return by_id


@pytest.mark.slow
def test_sigkill_mid_stage_then_resume_gives_the_same_records(reference_run, tmp_path):
    reference, _ = reference_run
    out = tmp_path / "killed"
    total_labels = _lines(reference / "labels.jsonl")

    _kill_when(_cli(out), out / "labels.jsonl", 20)
    done = _lines(out / "labels.jsonl")
    assert 20 <= done < total_labels, "killed in the middle of the labels stage"
    assert not (out / "records.jsonl").exists()
    before = _rows(out / "labels.jsonl")

    _kill_when(_cli(out), out / "relabels.jsonl", 15)
    assert not (out / "records.jsonl").exists()
    after = _rows(out / "labels.jsonl")
    # Finished work is kept unchanged, not redone.
    assert {k: after[k] for k in before} == before

    proc = _cli(out, latency="0")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]

    for name in COMPARED:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    for name in STAGE_FILES:
        resumed, uninterrupted = _rows(out / name), _rows(reference / name)
        assert resumed.keys() == uninterrupted.keys(), name
        for key, row in uninterrupted.items():
            assert resumed[key]["output"] == row["output"], (name, key)
            assert resumed[key]["usage"] == row["usage"], (name, key)


def test_a_half_written_last_line_is_dropped_and_redone(reference_run, tmp_path):
    import shutil

    reference, _ = reference_run
    out = tmp_path / "torn"
    shutil.copytree(reference, out)
    labels = (out / "labels.jsonl").read_bytes().splitlines(keepends=True)
    # Drop the last 5 rows, then leave half of the next one, as a crash mid-write would.
    torn = b"".join(labels[:-5]) + labels[-5][: len(labels[-5]) // 2]
    (out / "labels.jsonl").write_bytes(torn)
    for name in ("records.jsonl", "report.json"):
        (out / name).unlink()
    run_synth(make_run(out, settings=RunnerSettings(progress=False, fsync=False)))
    assert _rows(out / "labels.jsonl") == _rows(reference / "labels.jsonl")
    for name in COMPARED:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
