"""`neutralize` returns plain text after one scan; the result is the full rewrite's, always."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_fspo import _neutralize
from langchain_fspo._neutralize import neutralize

PLAIN = ["a", " ", "\t", "\n", "/", "s", "INST", "eot_id", "é", "SYS", ">", "|", "]"]
TRIGGERS = ["#", "<", "[", "\r", "\r\n", "\x0b", "\x85", "\u2028", "<|", "|>", "</s>", "<s>"]
ALPHABET = st.sampled_from([*PLAIN, *TRIGGERS, "[INST]", "<\uff5cx\uff5c>"])


def _full_rewrite(text: str, extra: tuple[str, ...]) -> str:
    """Every substitution, whatever the text (what `neutralize` did before its fast path)."""
    text = _neutralize._LINE_BREAKS.sub("\n", text)
    text = _neutralize._HEADING_LINE.sub(lambda m: m.group(1) + "\\#", text)
    while (broken := _neutralize._SPECIAL_TOKEN.sub(_neutralize._break_token, text)) != text:
        text = broken
    for token in extra:
        if len(token) > 1 and token in text:
            text = text.replace(token, token[0] + _neutralize._BREAK + token[1:])
    return text


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(ALPHABET, max_size=20), extra=st.sampled_from([(), ("INST", "s a")]))
def test_neutralize_equals_the_full_rewrite(pieces: list[str], extra: tuple[str, ...]) -> None:
    text = "".join(pieces)
    assert neutralize(text, extra) == _full_rewrite(text, extra)


def test_plain_text_is_returned_as_is() -> None:
    text = "A plain question, with punctuation (and numbers: 42)!\nSecond line."
    assert neutralize(text) is text
    assert neutralize(text, ("numbers",)) == text.replace("numbers", "n\u200bumbers")
