"""Training: the run's config, its entry point, and the TRL trainers it drives.

- `config`: `FSPOTrainConfig`, every setting of a run, parsed from YAML and flags.
- `run`: `train()`, Pref-FT then IPO/DPO into one adapter folder, resumable.
- `preference_trainer`, `losses`: the stage-2 `DPOTrainer` subclass and the paper's IPO loss.
- `prefix_sharing`: each pair's few-shot prompt runs once for both answers (exact).
- `distributed`: several processes (`accelerate launch`): complete checkpoints, ranks that agree.

Importing this package is light; torch, transformers and trl load when a run starts.
"""
