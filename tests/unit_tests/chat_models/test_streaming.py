"""Streaming parser: what is streamed always equals what `parse_completion` returns."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import langchain_fspo.chat_models._streaming
from langchain_fspo.chat_models._streaming import CompletionStreamParser
from langchain_fspo.prompt_format import PromptFormat

FORMATS = [
    PromptFormat(style="paper"),
    PromptFormat(style="chat", rationale="user_description"),
    PromptFormat(style="chat", include_rejected=False),
]
PIECES = [
    "## User Description\n",
    "## Preferred Response \n",
    "## Response \n",
    "\n",
    "# ",
    "## ",
    "#",
    " ",
    "a",
    "bc",
    "\n# Task",
    "x y",
    "é",
]


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    return [text[i:j] for i, j in zip([0, *points], [*points, len(text)], strict=True)]


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=14),
    cuts=st.lists(st.integers(0, 80), max_size=8),
    which=st.integers(0, len(FORMATS) - 1),
)
def test_streamed_text_equals_the_parsed_answer(
    pieces: list[str], cuts: list[int], which: int
) -> None:
    fmt = FORMATS[which]
    raw = "".join(pieces)
    # A description block that starts mid-completion re-parses everything before it; a stream
    # cannot take back what it sent (documented; the parser logs a warning).
    description_later = "\n## User Description\n" in raw and not raw.startswith(
        "## User Description\n"
    )
    parser = CompletionStreamParser(fmt)
    streamed = "".join(parser.feed(part) for part in _split(raw, cuts))
    tail, parsed = parser.finish()
    assert parsed == fmt.parse_completion(raw)
    if not description_later:
        assert streamed + tail == parsed.response


@pytest.mark.parametrize("fmt", FORMATS)
def test_header_is_never_streamed(fmt: PromptFormat) -> None:
    header = "## Preferred Response \n" if fmt.include_rejected else "## Response \n"
    parser = CompletionStreamParser(fmt)
    out = [parser.feed(ch) for ch in f"{header}Hi there\n# Example 2\n## Question \nnext"]
    tail, parsed = parser.finish()
    assert "".join(out) + tail == "Hi there" == parsed.response
    assert all("#" not in piece for piece in out)


def test_rat_description_is_held_back_and_returned() -> None:
    fmt = PromptFormat(style="chat", rationale="user_description")
    parser = CompletionStreamParser(fmt)
    raw = "## User Description\nLikes brevity.\n## Preferred Response \nShort answer."
    out = [parser.feed(raw[i : i + 4]) for i in range(0, len(raw), 4)]
    tail, parsed = parser.finish()
    assert "".join(out) + tail == "Short answer."
    assert parsed.user_description == "Likes brevity."
    assert "Likes" not in "".join(out)


def test_docstring_example_runs() -> None:
    result = doctest.testmod(langchain_fspo.chat_models._streaming)
    assert result.attempted > 0
    assert result.failed == 0
