"""Reviews-mini, the quality benchmark: a synthetic domain with an exact judge, trained end to end.

- `Domain`, `Question`, `SimUser`: the interface a synthetic domain implements
  (`fspo_train.reviews_mini.domain`).
- `ReviewsMini`: the paper's Reviews domain in miniature (`fspo_train.reviews_mini.reviews`).
- `ExactJudge`, `build_records`: judge-labelled per-user preference records.
- `BenchConfig`, `run_benchmark`: base LM from scratch, FSPO and the baselines, the table
  (`python -m fspo_train.reviews_mini`; `python -m fspo_train.demo` adds a LangChain serving demo).

Importing this package is light; torch and friends load when a run starts.
"""

from fspo_train.reviews_mini.config import BenchConfig, StageConfig
from fspo_train.reviews_mini.data import ExactJudge, build_records
from fspo_train.reviews_mini.domain import Domain, Question, SimUser
from fspo_train.reviews_mini.reviews import ReviewsMini
from fspo_train.reviews_mini.runner import run_benchmark

__all__ = [
    "BenchConfig",
    "Domain",
    "ExactJudge",
    "Question",
    "ReviewsMini",
    "SimUser",
    "StageConfig",
    "build_records",
    "run_benchmark",
]
