"""Which checkpoint a run resumes from: the newest one every rank finished (one process here).

The 2-process kill-and-resume is `test_distributed.py`; these are the folder rules alone.
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from fspo_train.trainer import distributed
from fspo_train.trainer.distributed import (
    CHECKPOINT_COMPLETE,
    drop_incomplete_checkpoints,
    last_complete_checkpoint,
)

pytestmark = pytest.mark.train


def _checkpoint(root: Path, step: int, *, complete: bool) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"x")
    if complete:
        (folder / CHECKPOINT_COMPLETE).write_text("{}", encoding="utf-8")
    return folder


def test_the_newest_complete_checkpoint_is_resumed_and_newer_partial_ones_go(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _checkpoint(tmp_path, 2, complete=True)
    keep = _checkpoint(tmp_path, 10, complete=True)  # numeric order, not text order
    old_partial = _checkpoint(tmp_path, 4, complete=False)
    partial = _checkpoint(tmp_path, 12, complete=False)
    (tmp_path / "checkpoint-x").mkdir()  # not a checkpoint name
    assert last_complete_checkpoint(tmp_path) == keep
    with caplog.at_level("WARNING", logger="fspo_train.trainer.distributed"):
        assert drop_incomplete_checkpoints(tmp_path, keep) == [partial]
    assert not partial.exists()
    assert old_partial.exists()  # older than the one resumed: training never reads it
    assert "was not completely written" in caplog.text


def test_no_complete_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    partial = _checkpoint(tmp_path, 1, complete=False)
    assert last_complete_checkpoint(tmp_path) is None
    assert last_complete_checkpoint(tmp_path / "missing") is None
    assert drop_incomplete_checkpoints(tmp_path, None) == [partial]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(distributed)
    assert result.failed == 0
    assert result.attempted > 0


def test_checkpoints_from_before_the_marker_resume_from_the_last_whole_one(tmp_path: Path) -> None:
    """Before this version (no marker anywhere), one process: `trainer_state.json` decides."""
    for step in (1, 2, 3):
        folder = _checkpoint(tmp_path, step, complete=False)
        if step < 3:
            (folder / "trainer_state.json").write_text("{}", encoding="utf-8")
    keep = last_complete_checkpoint(tmp_path)
    assert keep == tmp_path / "checkpoint-2"
    assert drop_incomplete_checkpoints(tmp_path, keep) == [tmp_path / "checkpoint-3"]
    assert (tmp_path / "checkpoint-1").is_dir()
