"""The paper's synthetic preference data pipeline over any LangChain chat models.

Stages (each writes its own JSONL in the run folder and can be re-run alone): personas,
questions, views, responses, labels (both orders), refine (iterative persona improvement),
disagreement, records (splits + `PreferenceRecord` JSONL), report. See `run_synth` and `fspo synth`.

Example:
    ```python
    from fspo_train.synth import SynthRun, load_domain, run_synth

    summary = run_synth(
        SynthRun(
            domain=load_domain("elix").with_overrides(global_count=30),
            out="runs/elix-30",
            generators=["openai:gpt-4o-mini"],
            labeller="openai:gpt-4o-mini",
        )
    )
    ```
"""

from fspo_train.synth.domain import DomainConfig, available_domains, load_domain
from fspo_train.synth.errors import (
    OutputParseError,
    RunStateError,
    SynthConfigError,
    SynthIncompleteError,
)
from fspo_train.synth.models import load_chat_model
from fspo_train.synth.pipeline import STAGES, SynthRun, arun_synth, run_synth
from fspo_train.synth.prompts import available_prompts, load_prompt
from fspo_train.synth.runner import RunnerSettings
from fspo_train.synth.store import JsonlStore

__all__ = [
    "STAGES",
    "DomainConfig",
    "JsonlStore",
    "OutputParseError",
    "RunStateError",
    "RunnerSettings",
    "SynthConfigError",
    "SynthIncompleteError",
    "SynthRun",
    "arun_synth",
    "available_domains",
    "available_prompts",
    "load_chat_model",
    "load_domain",
    "load_prompt",
    "run_synth",
]
