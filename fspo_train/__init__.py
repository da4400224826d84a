"""fspo_train: FSPO training, evaluation, synthetic data and publishing (extra `[train]`).

The package is grouped by stage: `data` (records, loaders, episodes, tokenization),
`trainer` (config, `train()`, the TRL trainers), `eval` (the evaluation core of `fspo eval`
and the benchmark), `publish` (model card, Hub upload), `synth` (synthetic data), `cli` (the
`fspo` command), `reviews_mini` (the quality benchmark) and `testing` (tiny offline models).

Importing it is light: torch, transformers, peft and trl load when training or evaluation runs.

Example:
    ```python
    from fspo_train import FSPOTrainConfig, train

    result = train(FSPOTrainConfig(model_name_or_path="...", train_file="prefs.jsonl"))
    print(result.adapter_dir)
    ```
"""

from importlib.metadata import PackageNotFoundError, version

from fspo_train.data.episodes import build_episodes, split_records
from fspo_train.data.loaders import load_paper_dataset, load_records, write_records
from fspo_train.data.records import PreferenceRecord
from fspo_train.trainer.config import FSPOTrainConfig, load_config
from fspo_train.trainer.run import TrainResult, train

try:
    __version__ = version("langchain-fspo")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "FSPOTrainConfig",
    "PreferenceRecord",
    "TrainResult",
    "__version__",
    "build_episodes",
    "load_config",
    "load_paper_dataset",
    "load_records",
    "split_records",
    "train",
    "write_records",
]
