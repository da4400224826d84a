"""Run one `fspo_train.train` job in its own process (the runner starts several at once).

Usage: `python -m fspo_train.reviews_mini._train_job JOB_DIR THREADS`, where JOB_DIR holds
`config.yaml` (an `FSPOTrainConfig`) and `records.jsonl`; the result is written to
`JOB_DIR/result.json`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Train the job in `argv[0]` with `argv[1]` torch threads."""
    import torch

    from fspo_train.data.records import PreferenceRecord
    from fspo_train.trainer.config import load_config
    from fspo_train.trainer.run import train

    job = Path(argv[0])
    torch.set_num_threads(int(argv[1]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger(__name__).info("torch threads: %d", torch.get_num_threads())
    config = load_config(job / "config.yaml")
    lines = (job / "records.jsonl").read_text(encoding="utf-8").splitlines()
    records = [PreferenceRecord.model_validate_json(line) for line in lines if line]
    result = train(config, records)
    metrics = {k: v for k, v in result.metrics.items() if "loss" in k or "step" in k}
    payload = {
        "adapter_dir": str(result.adapter_dir),
        "stage1_dir": str(result.stage1_dir) if result.stage1_dir else None,
        "metrics": metrics,
    }
    (job / "result.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
