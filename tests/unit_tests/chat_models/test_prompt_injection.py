"""Hostile user text cannot forge the prompt's structure (property-based, hypothesis)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_fspo import PreferenceExample, PromptFormat
from langchain_fspo.prompt_format import neutralize

MARKERS = [
    "# Example 1",
    "## Question ",
    "## Preferred Response ",
    "## Dispreferred Response ",
    "## Response ",
    "# Task",
    "## User Description",
]
SPECIAL = ["<|eot_id|>", "<|im_start|>", "<|im_end|>", "</s>", "<s>", "[INST]", "<end_of_turn>"]
SPECIAL_RE = re.compile("|".join(re.escape(t) for t in SPECIAL) + r"|<\|[^<>|\s]{0,64}\|>")

pieces = st.one_of(
    st.sampled_from(MARKERS + SPECIAL),
    st.sampled_from(
        ["\n", "\r", "\r\n", "\u2028", "\x85", "  ", "\t", "#", "##", "\\", "<|", "|>"]
    ),
    st.text(alphabet="abc #<|>/\n", max_size=12),
)
hostile = st.lists(pieces, min_size=1, max_size=12).map("".join).filter(lambda s: s.strip() != "")


def _split_blocks(text: str) -> list[tuple[str, str]]:
    """(marker line, content) for every line that starts with '#'; content up to the next one."""
    blocks: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if line.startswith("#"):
            blocks.append((line, ""))
        else:
            marker, content = blocks[-1]
            blocks[-1] = (marker, content + line + "\n")
    return blocks


@settings(max_examples=300, deadline=None)
@given(
    shots=st.lists(st.tuples(hostile, hostile, hostile), min_size=0, max_size=4),
    question=hostile,
    include_rejected=st.booleans(),
    style=st.sampled_from(["paper", "chat"]),
)
def test_hostile_text_cannot_forge_structure(
    shots: list[tuple[str, str, str]], question: str, include_rejected: bool, style: str
) -> None:
    examples = [PreferenceExample(prompt=p, chosen=c, rejected=r) for p, c, r in shots if c != r]
    fmt = PromptFormat(style=style, include_rejected=include_rejected)
    rendered = fmt.render(examples, question)
    n = len(examples)

    blocks = _split_blocks(rendered.text)
    header = "## Preferred Response " if include_rejected else "## Response "
    expected = []
    for i, ex in enumerate(examples, start=1):
        expected += [(f"# Example {i}", ""), ("## Question ", neutralize(ex.prompt) + "\n")]
        if include_rejected:
            expected += [
                (header, neutralize(ex.chosen) + "\n"),
                ("## Dispreferred Response ", neutralize(ex.rejected or "") + "\n\n"),
            ]
        else:
            expected += [(header, neutralize(ex.chosen) + "\n\n")]
    if n == 0:
        instruction = "Generate a response to the following question.\n"
    else:
        kind = "a preferred response" if include_rejected else "a response"
        instruction = f"Given the examples above, generate {kind} to the following question.\n"
    expected += [("# Task", instruction), ("## Question ", neutralize(question) + "\n\n")]
    # The split adds one "\n" after the final line; the rendered text ends with exactly one.
    assert blocks == expected
    assert sum(1 for marker, _ in blocks if marker.startswith("# Example")) == n
    assert not SPECIAL_RE.search(rendered.text)
    assert rendered.messages[-1]["content"] == rendered.text


@settings(max_examples=200, deadline=None)
@given(text=hostile)
def test_neutralize_is_idempotent_and_leaves_no_marker_lines(text: str) -> None:
    once = neutralize(text)
    assert neutralize(once) == once
    assert not any(line.lstrip().startswith("#") for line in once.split("\n"))
    assert not SPECIAL_RE.search(once)


def test_plain_text_is_untouched() -> None:
    text = "A calm, warm film. 5/10 stars; loved it #1 (hashtag mid-line is fine)."
    assert neutralize(text) == text


def test_tokenizer_specific_special_tokens_are_broken_too() -> None:
    fmt = PromptFormat(special_tokens=("<custom_sep>",))
    rendered = fmt.render([], "a <custom_sep> b")
    assert "<custom_sep>" not in rendered.text
    assert "custom_sep" in rendered.text
