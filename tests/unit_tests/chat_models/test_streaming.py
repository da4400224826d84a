"""Streaming parser: what is streamed always equals what `parse_completion` returns."""

from __future__ import annotations

import doctest
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import langchain_fspo.chat_models._streaming
from langchain_fspo.chat_models._streaming import CompletionStreamParser
from langchain_fspo.prompt_format import PromptFormat
from tests.allocation import per_feed_allocation
from tests.stream_reference import ReferenceStreamParser

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


WHITESPACE_PIECES = [*PIECES, "\t", "  ", "\n\n", " \n", "\n## ", "\n#", "##", "\u00a0"]


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


@settings(max_examples=600, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(WHITESPACE_PIECES), max_size=16),
    cuts=st.lists(st.integers(0, 90), max_size=10),
    which=st.integers(0, len(FORMATS) - 1),
)
def test_every_piece_matches_the_rescanning_reference(
    pieces: list[str], cuts: list[int], which: int
) -> None:
    """Piece by piece the same output as the parser that re-scanned everything on each feed."""
    fmt = FORMATS[which]
    raw = "".join(pieces)
    parser, reference = CompletionStreamParser(fmt), ReferenceStreamParser(fmt)
    for part in _split(raw, cuts):
        assert parser.feed(part) == reference.feed(part), (raw, part)
    assert parser.raw == raw


SAMPLES = [
    "## User Description\nLikes it short.\n## Preferred Response \n\nShort \n answer.\n## Next",
    "## User Description\nTerse.\n## Response \n Yes. \n\n# Example 2\n",
    "## Preferred Response \n\n\nA line\n#not a marker\n\t \nmore\n## Question \nx",
    "No header at all \n  \n\nthen text\n##",
]


@pytest.mark.parametrize("raw", SAMPLES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_three_way_split_matches_the_reference(raw: str, fmt: PromptFormat) -> None:
    """Headers and markers split at every point (the random splits rarely hit each one)."""
    for i in range(len(raw) + 1):
        for j in range(i, len(raw) + 1):
            parser, reference = CompletionStreamParser(fmt), ReferenceStreamParser(fmt)
            streamed = ""
            for part in (raw[:i], raw[i:j], raw[j:]):
                piece = parser.feed(part)
                assert piece == reference.feed(part), (i, j)
                streamed += piece
            tail, parsed = parser.finish()
            assert parsed == fmt.parse_completion(raw)
            assert streamed + tail == parsed.response


def _tokens(kind: str) -> Iterator[str]:
    i = 0
    while True:
        i += 1
        if kind == "text":
            yield "\n" if i % 13 == 0 else " tok"
        elif kind == "whitespace":  # a model stuck emitting blank lines
            yield "\n"
        else:  # a long RAT description, the response header not written yet
            yield " likes"


@pytest.mark.parametrize("kind", ["text", "whitespace", "description"])
def test_work_per_feed_does_not_grow_with_the_text(kind: str) -> None:
    fmt = FORMATS[1]
    start = "## User Description\n" if kind == "description" else "## Preferred Response \n"
    parser = CompletionStreamParser(fmt)
    parser.feed(start)
    early, late = per_feed_allocation(parser.feed, _tokens(kind))
    assert late <= early + 64, (early, late)
    # The check catches a parser that re-scans: the reference copies the text so far (at
    # least 7,500 characters more of it in the late window).
    reference = ReferenceStreamParser(fmt)
    reference.feed(start)
    early, late = per_feed_allocation(reference.feed, _tokens(kind))
    assert late > early + 5000, (early, late)
