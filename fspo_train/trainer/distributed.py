"""What keeps a run correct over several processes: complete checkpoints, ranks that agree.

`fspo train` runs under `accelerate launch` (DDP, FSDP, DeepSpeed; gloo on CPU) as it runs in
one process: the Trainer shards each global batch over the ranks, rank 0 writes every file.
Two things the Trainer does not do are added here:

- **A checkpoint is complete only when every rank has written its part.** transformers writes
  `checkpoint-N/` file by file (the model and optimizer on rank 0, one `rng_state_<rank>.pth`
  per rank) and picks the newest folder on resume, whole or not. `CheckpointCompleteCallback`
  waits for all ranks after each save, then rank 0 writes `fspo_checkpoint_complete.json` into
  the folder (atomically); `last_complete_checkpoint` only considers folders that have it, and
  `drop_incomplete_checkpoints` deletes newer folders a killed run left half-written.
- **The ranks end with the same weights.** With data parallelism (DDP, multi-CPU) every rank
  holds the full model; `check_ranks_agree` compares a float64 checksum of the trained weights
  over all ranks and raises if they differ (sharded engines, FSDP and ZeRO-3, are skipped).

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "checkpoint-2").mkdir()
    >>> _ = (root / "checkpoint-2" / CHECKPOINT_COMPLETE).write_text("{}")
    >>> (root / "checkpoint-4").mkdir()  # killed while saving: no marker
    >>> last_complete_checkpoint(root).name
    'checkpoint-2'
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from langchain_fspo.errors import FSPOError

__all__ = [
    "CHECKPOINT_COMPLETE",
    "CheckpointCompleteCallback",
    "check_ranks_agree",
    "drop_incomplete_checkpoints",
    "last_complete_checkpoint",
]

logger = logging.getLogger(__name__)

CHECKPOINT_COMPLETE = "fspo_checkpoint_complete.json"
"""Written into `checkpoint-N/` once every rank has saved its part of it."""

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = [(_CHECKPOINT.match(p.name), p) for p in directory.iterdir() if p.is_dir()]
    return sorted((int(m.group(1)), p) for m, p in found if m is not None)


def last_complete_checkpoint(directory: Path) -> Path | None:
    """The newest `checkpoint-N` folder under `directory` that every rank finished, or None.

    Folders written before the completion marker existed (no folder has one) count, in a
    one-process run only, when they hold `trainer_state.json`: one process writes it last. With
    several processes another rank may still have been writing its RNG state.
    """
    from accelerate.state import PartialState

    found = [p for _, p in _checkpoints(directory)]
    complete = [p for p in found if (p / CHECKPOINT_COMPLETE).is_file()]
    if not complete and PartialState().num_processes == 1:
        complete = [p for p in found if (p / "trainer_state.json").is_file()]
    return complete[-1] if complete else None


def drop_incomplete_checkpoints(directory: Path, keep: Path | None) -> list[Path]:
    """Delete (on the main process) the checkpoint folders newer than `keep`.

    `keep` is `last_complete_checkpoint`, so newer folders are ones a killed run left
    half-written; training again from `keep` writes them anew. All ranks return once the
    folders are gone. Returns the folders deleted (on every rank).
    """
    from accelerate.state import PartialState

    state = PartialState()
    newest = -1 if keep is None else int(keep.name.rsplit("-", 1)[1])
    stale = [p for step, p in _checkpoints(directory) if step > newest]
    state.wait_for_everyone()  # every rank has listed the folders before any goes
    if state.is_main_process:
        for path in stale:
            logger.warning(
                "Ignoring %s: it was not completely written (the run was stopped).", path
            )
            shutil.rmtree(path, ignore_errors=True)
    state.wait_for_everyone()
    return stale


class CheckpointCompleteCallback(TrainerCallback):
    """After each checkpoint save: wait for every rank, then mark the folder complete."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:  # noqa: ARG002
        """Write `fspo_checkpoint_complete.json` into the checkpoint just saved (rank 0)."""
        from accelerate.state import PartialState

        ranks = PartialState()
        ranks.wait_for_everyone()
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ranks.is_main_process and folder.is_dir():
            info = {"global_step": state.global_step, "num_processes": ranks.num_processes}
            tmp = folder / (CHECKPOINT_COMPLETE + ".tmp")
            tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
            tmp.replace(folder / CHECKPOINT_COMPLETE)
        ranks.wait_for_everyone()


def check_ranks_agree(trainer: Any) -> float | None:
    """The checksum of the trained weights, equal on every rank, or an error if not.

    The checksum is the float64 sum of the trainable parameters plus the sum of their squares.
    Returns None where ranks hold different shards by design (FSDP, DeepSpeed).

    Raises:
        FSPOError: two ranks hold different weights (a data-parallel bug).
    """
    import torch
    from accelerate.utils import DistributedType

    accelerator = trainer.accelerator
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        return None
    model = accelerator.unwrap_model(trainer.model)
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                values = param.detach().to(torch.float64)
                total[0] += values.sum()
                total[1] += values.square().sum()
    gathered = accelerator.gather(total.unsqueeze(0)).cpu()
    if not bool((gathered == gathered[0]).all()):
        msg = (
            "The processes ended training with different weights (checksums "
            f"{gathered.tolist()}); the data-parallel run is broken, do not use its adapter."
        )
        raise FSPOError(msg)
    checksum = float(gathered[0].sum())
    if accelerator.num_processes > 1:
        logger.info(
            "All %d processes hold the same trained weights (checksum %.12g).",
            accelerator.num_processes,
            checksum,
        )
    return checksum
