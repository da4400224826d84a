"""Evaluation: one core for `fspo eval` and the Reviews-mini benchmark.

- `methods`: the table of methods (FSPO and the paper's baselines) and their prompt modes.
- `items`, `prompting`: evaluation queries and their token ids, as training tokenized them.
- `engine`: `MethodRunner`, log-probabilities and greedy answers of any method.
- `metrics`, `judges`: implicit-reward accuracy, pairwise win rates, user-aware judges.
- `scoring`: `PolicySet`, the base model with named adapters (torch; loaded when used).
- `config`, `evaluate`: `fspo eval` (`EvalConfig`, `run_evaluation`); `plots`: its figures.
"""

from fspo_train.eval.config import EvalConfig
from fspo_train.eval.engine import MethodRunner
from fspo_train.eval.evaluate import run_evaluation
from fspo_train.eval.judges import ChatModelJudge, FunctionJudge, Judge, as_judge
from fspo_train.eval.methods import METHODS, Method

__all__ = [
    "METHODS",
    "ChatModelJudge",
    "EvalConfig",
    "FunctionJudge",
    "Judge",
    "Method",
    "MethodRunner",
    "as_judge",
    "run_evaluation",
]
