"""The paper's synthetic preference data pipeline over any LangChain chat models.

Stages, in order; each writes its own files in the run folder and can be re-run alone
(`fspo synth ... --stages labels --redo`):

- personas (`personas.jsonl`): fixed users, or personas written from trait combinations;
- questions (`questions.jsonl`): seeds plus augmented global questions, persona-specific ones;
- views (`views.jsonl`): viewpoints per question (view conditioning);
- responses (`responses.jsonl`): one per view or per steered persona, generators in turn;
- labels (`labels.jsonl`): user-aware pairwise labels in both orders;
- refine (`refinements.jsonl`, `relabels.jsonl`): persona additions and relabels per round;
- disagreement (`disagreement.json`): the cross-user disagreement matrix and its flag;
- records (`records.jsonl`, `train.jsonl`, `test.jsonl`, `splits.json`): `PreferenceRecord`s;
- report (`report.json`, `report.md`, `disagreement.png`, `usage.json`).

`run.json` pins the domain recipe, seed, models and prompt versions of the folder. Every JSONL
row is one work item: `id`, `status` (`ok`/`failed`), `output`, `error`, `attempts`, `usage`
(requests and tokens), `model`, `prompt` (`name@vN`) and `meta`. `train.jsonl` is what
`fspo train --train-file` reads.

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
from fspo_train.synth.estimate import estimate_requests
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
    "estimate_requests",
    "load_chat_model",
    "load_domain",
    "load_prompt",
    "run_synth",
]
