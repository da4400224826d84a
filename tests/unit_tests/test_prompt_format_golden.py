"""`style="paper"` renders byte for byte what the official FSPO code renders.

The golden strings in `tests/fixtures/paper_format_golden.json` were produced by the official
code's `shots_to_text` (Asap7772/fewshot-preference-optimization @ 756559f).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from langchain_fspo import PreferenceExample, PromptFormat

GOLDEN = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "paper_format_golden.json").read_text()
)
CASES = {case["name"]: case for case in GOLDEN["cases"]}


def _shots(inputs: dict[str, Any]) -> list[PreferenceExample]:
    return [
        PreferenceExample(prompt=q, chosen=c, rejected=r)
        for q, c, r in zip(
            inputs["fewshot_prompts"],
            inputs["fewshot_preferred"],
            inputs["fewshot_dispreferred"],
            strict=True,
        )
    ]


def _format(inputs: dict[str, Any]) -> PromptFormat:
    return PromptFormat(
        style="paper",
        include_rejected=inputs["include_dispreferred"],
        rationale="user_description" if inputs.get("add_persona") else "none",
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_paper_prompt_matches_official_code(name: str) -> None:
    case = CASES[name]
    inputs = case["inputs"]
    fmt = _format(inputs)
    forced = inputs["persona_chosen"] if inputs.get("teacher_forced") else None
    rendered = fmt.render(_shots(inputs), inputs["final_question"], user_description=forced)
    assert rendered.text == case["prompt"]
    assert rendered.messages == [{"role": "user", "content": case["prompt"]}]


@pytest.mark.parametrize("name", sorted(CASES))
def test_paper_completions_match_official_code(name: str) -> None:
    case = CASES[name]
    inputs = case["inputs"]
    fmt = _format(inputs)
    in_completion = inputs.get("add_persona") and not inputs.get("teacher_forced")
    chosen_desc = inputs.get("persona_chosen") if in_completion else None
    rejected_desc = inputs.get("persona_rejected") if in_completion else None
    assert fmt.completion(inputs["final_chosen"], user_description=chosen_desc) == case["chosen"]
    assert (
        fmt.completion(inputs["final_rejected"], user_description=rejected_desc) == case["rejected"]
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_parse_completion_recovers_answer_and_description(name: str) -> None:
    case = CASES[name]
    inputs = case["inputs"]
    parsed = _format(inputs).parse_completion(case["chosen"])
    assert parsed.response == inputs["final_chosen"]
    if inputs.get("add_persona") and not inputs.get("teacher_forced"):
        assert parsed.user_description == inputs["persona_chosen"]
    else:
        assert parsed.user_description is None


def test_chat_style_wraps_the_same_text_in_messages() -> None:
    inputs = CASES["paper_default_dispreferred_shown"]["inputs"]
    fmt = PromptFormat(style="chat", system_prompt="Be helpful.")
    rendered = fmt.render(_shots(inputs), inputs["final_question"])
    assert rendered.messages == [
        {"role": "system", "content": "Be helpful."},
        {"role": "user", "content": CASES["paper_default_dispreferred_shown"]["prompt"]},
    ]
    assert fmt.completion("An answer.") == "An answer."
    assert fmt.parse_completion("An answer.").response == "An answer."
