"""A `fspo train` entry point whose stage-2 steps are slow, so a test can kill it mid-stage."""

from __future__ import annotations


def slow_run_script(seconds_per_step: float) -> str:
    """Python source that runs the `fspo` CLI, sleeping `seconds_per_step` after each stage-2 step.

    Run it with `python -c SOURCE train ...` (or write it to a file for `accelerate launch`).
    """
    return f"""
import sys, time
from transformers import TrainerCallback
import fspo_train.trainer.run as t

class SlowStage2(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if args.output_dir.endswith("stage2"):
            time.sleep({seconds_per_step!r})

_train = t.train
def slow_train(config, records=None, callbacks=None):
    return _train(config, records, callbacks=[SlowStage2()])

t.train = slow_train
from fspo_train.cli import main
sys.exit(main(sys.argv[1:]))
"""
