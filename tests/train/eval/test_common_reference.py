"""Implicit-reward accuracy against one common reference (`MethodRunner(common_reference=...)`).

Every row is scored against the same model, so the accuracy column compares methods (tiny
random Llama + LoRA adapters, seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fspo_train.eval.items import EvalItem
from fspo_train.eval.methods import FSPO, IPO, IPO_REFERENCE, METHODS, REFERENCE
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.prompt_format import PromptFormat

pytestmark = pytest.mark.train

torch = pytest.importorskip("torch")

SHOT = PreferenceExample(prompt="Tea?", chosen="I love tea!", rejected="Tea is dull.")
ITEMS = [
    EvalItem(
        user_id=user,
        question=f"What about {topic}?",
        chosen=f"{topic} is lovely.",
        rejected=f"{topic} is dull.",
        shots=(SHOT, SHOT),
        user_description=None,
        split="held_out",
    )
    for user in ("ana", "bo")
    for topic in ("rain", "cats", "maps")
]


@pytest.fixture(scope="module")
def policies(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]):
    from fspo_train.eval.scoring import PolicySet

    alpha, beta = tiny_adapter_dirs["alpha"], tiny_adapter_dirs["beta"]
    # Each method's own reference is a different model: FSPO's is `beta`, IPO's is `alpha`.
    adapters = {FSPO: alpha, REFERENCE: beta, IPO: beta, IPO_REFERENCE: alpha}
    return PolicySet(tiny_model_dir, dict(adapters))


def _runner(policies, tiny_adapter_dirs: dict[str, Path], common):
    from fspo_train.eval.engine import MethodRunner

    fmt = PromptFormat.from_pretrained(tiny_adapter_dirs["alpha"])
    return MethodRunner(policies, {None: fmt}, batch_size=4, common_reference=common)


def test_every_row_is_scored_against_the_same_reference(
    policies, tiny_adapter_dirs: dict[str, Path]
) -> None:
    common = _runner(policies, tiny_adapter_dirs, (None, "zero_shot"))
    base = common.logprobs(None, "zero_shot", ITEMS, key="t")
    rows = {name: common.pair_logprobs(METHODS[name], ITEMS, key="t") for name in (FSPO, IPO)}
    for pairs in rows.values():
        assert [p.reference_chosen for p in pairs] == base[0]
        assert [p.reference_rejected for p in pairs] == base[1]
    # The policies still differ: only the reference is shared.
    assert [p.policy_chosen for p in rows[FSPO]] != [p.policy_chosen for p in rows[IPO]]


def test_own_references_differ_between_rows(policies, tiny_adapter_dirs: dict[str, Path]) -> None:
    own = _runner(policies, tiny_adapter_dirs, None)
    fspo = own.pair_logprobs(METHODS[FSPO], ITEMS, key="t")
    ipo = own.pair_logprobs(METHODS[IPO], ITEMS, key="t")
    assert [p.reference_chosen for p in fspo] == own.logprobs(
        REFERENCE, "few_shot", ITEMS, key="t"
    )[0]
    assert [p.reference_chosen for p in fspo] != [p.reference_chosen for p in ipo]


def test_the_benchmark_uses_the_common_reference_by_default() -> None:
    from fspo_train.reviews_mini.evaluation import COMMON_REFERENCE, EvalSettings, _runner

    assert _runner(None, {}, EvalSettings()).common_reference == COMMON_REFERENCE
    assert _runner(None, {}, EvalSettings(accuracy_reference="own")).common_reference is None
