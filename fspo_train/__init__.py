"""fspo_train: FSPO training, evaluation, synthetic data and publishing (extra `[train]`).

Importing it is light: torch, transformers, peft and trl load when training or evaluation runs.
The training entry point is `fspo_train.train.train` (not re-exported here, so that the name
`fspo_train.train` keeps meaning the module).

Example:
    ```python
    from fspo_train import FSPOTrainConfig
    from fspo_train.train import train

    result = train(FSPOTrainConfig(model_name_or_path="...", train_file="prefs.jsonl"))
    print(result.adapter_dir)
    ```
"""

from fspo_train.config import FSPOTrainConfig, load_config
from fspo_train.episodes import build_episodes, split_records
from fspo_train.loaders import load_paper_dataset, load_records, write_records
from fspo_train.records import PreferenceRecord
from fspo_train.train import TrainResult

__all__ = [
    "FSPOTrainConfig",
    "PreferenceRecord",
    "TrainResult",
    "build_episodes",
    "load_config",
    "load_paper_dataset",
    "load_records",
    "split_records",
    "write_records",
]
