"""The table of methods: FSPO and the paper's baselines (§4.1), one definition for every evaluation.

A method is a model (the base model or a named adapter) and a way of prompting it; its accuracy
reference is another model prompted the same or a plainer way. `fspo eval`
(`fspo_train.eval.evaluate`) and the Reviews-mini benchmark (`fspo_train.reviews_mini`) both
run the rows below through `fspo_train.eval.engine.MethodRunner`, so a row means the same
thing, and gives the same numbers, in both.

| name       | model                    | prompt        | accuracy reference             |
|------------|--------------------------|---------------|--------------------------------|
| `fspo`     | the FSPO adapter         | `few_shot`    | `reference` (its stage 1)      |
| `base`     | base model               | `zero_shot`   | none (it is the reference)     |
| `few_shot` | base model               | `few_shot`    | base model, `zero_shot`        |
| `pref_ft`  | the stage-1 adapter      | `few_shot`    | base model, `few_shot`         |
| `ipo`      | a 0-shot IPO adapter     | `zero_shot`   | `ipo_reference`, `zero_shot`   |
| `fspo_rat` | FSPO trained with RAT    | `few_shot`    | `fspo_rat_reference`           |
| `oracle`   | base model               | `oracle`      | base model, `zero_shot`        |

A reference adapter that is not loaded is replaced by the base model (`fspo eval` without a
stage-1 adapter, or with an IPO adapter whose stage 1 is unknown). Adapters are looked up by
the names in the table (`FSPO`, `REFERENCE`, ...) in the `PolicySet`.

Prompt modes (`PromptMode`): `few_shot` is K of the user's shots and the question, and under
RAT the model writes the user description first (scoring teacher-forces the true one at the
start of the answer, as training does); `zero_shot` is the question alone; `oracle` adds the
true user description to the prompt (persona steering); `oracle_answer` puts the true
description at the start of the answer instead (for a model trained with it there).

`TRAINED_ORACLE` is the benchmark's oracle: an adapter trained 0-shot with the true description
teacher-forced at the start of its answers, evaluated the same way; a from-scratch base model
cannot follow a description in its prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BASE",
    "FEW_SHOT",
    "FSPO",
    "FSPO_RAT",
    "FSPO_RAT_REFERENCE",
    "IPO",
    "IPO_REFERENCE",
    "METHODS",
    "ORACLE",
    "ORACLE_REFERENCE",
    "PREF_FT",
    "REFERENCE",
    "TRAINED_ORACLE",
    "Method",
    "PromptMode",
]

PromptMode = Literal["few_shot", "zero_shot", "oracle", "oracle_answer"]

# Method names; an adapter that answers for a method is loaded under the method's name.
FSPO, BASE, FEW_SHOT, PREF_FT, IPO, FSPO_RAT, ORACLE = (
    "fspo", "base", "few_shot", "pref_ft", "ipo", "fspo_rat", "oracle",
)  # fmt: skip
# Accuracy references: each adapter's stage 1 (Pref-FT), the start of its preference stage.
REFERENCE = "reference"
IPO_REFERENCE = "ipo_reference"
FSPO_RAT_REFERENCE = "fspo_rat_reference"
ORACLE_REFERENCE = "oracle_reference"


@dataclass(frozen=True)
class Method:
    """How one method answers, and what its implicit-reward accuracy is measured against."""

    name: str
    label: str
    """Row label of tables and plots."""
    description: str
    """One line, as `fspo eval` lists it in `eval_results.json`."""
    adapter: str | None
    """The adapter that answers (its name in the `PolicySet`); None: the base model."""
    prompt: PromptMode
    reference_adapter: str | None = None
    """Adapter of the accuracy reference; None, or not loaded: the base model."""
    reference_prompt: PromptMode | None = None
    """Prompt of the accuracy reference; None: no accuracy for this method."""


_ROWS: tuple[tuple[str, str, str, str | None, PromptMode, str | None, PromptMode | None], ...] = (
    # name, label, description, adapter, prompt, reference adapter, reference prompt
    (FSPO, "FSPO", "FSPO adapter", FSPO, "few_shot", REFERENCE, "few_shot"),
    (BASE, "Base model", "base model, zero-shot", None, "zero_shot", None, None),
    (FEW_SHOT, "Few-shot prompting", "few-shot prompting", None, "few_shot", None, "zero_shot"),
    (PREF_FT, "Few-shot Pref-FT", "few-shot Pref-FT", PREF_FT, "few_shot", None, "few_shot"),
    (IPO, "IPO (not personalised)", "non-personalised IPO", IPO, "zero_shot", IPO_REFERENCE,
     "zero_shot"),
    (FSPO_RAT, "FSPO + RAT", "FSPO adapter trained with RAT (writes the user description)",
     FSPO_RAT, "few_shot", FSPO_RAT_REFERENCE, "few_shot"),
    (ORACLE, "Oracle (true description)", "oracle user description", None, "oracle", None,
     "zero_shot"),
)  # fmt: skip

METHODS: dict[str, Method] = {row[0]: Method(*row) for row in _ROWS}
"""Every method, by name, in the order `fspo eval` reports them."""

TRAINED_ORACLE = Method(
    name=ORACLE,
    label="Oracle (true description)",
    description="oracle adapter, the true user description teacher-forced at its answer's start",
    adapter=ORACLE,
    prompt="oracle_answer",
    reference_adapter=ORACLE_REFERENCE,
    reference_prompt="oracle_answer",
)
"""The oracle of a benchmark that trains one (see the module docstring)."""
