"""Neutralise user text so that it cannot forge the structure of an FSPO prompt.

Examples, questions and kept chat turns are written by users. A line that reads `# Task` or
`## Preferred Response`, or a chat control token such as `<|eot_id|>`, must not become
structure in the prompt the model reads. Training and serving both render through
`PromptFormat`, which calls `neutralize` on every user text, so both see the same bytes.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence

__all__ = ["neutralize", "special_token_finder"]

# Line breaks that some tokenizers or renderers honour besides "\n": folded to "\n" so that a
# marker cannot hide behind them.
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# A line that a markdown reader (or the model) could take for a heading.
_HEADING_LINE = re.compile(r"^([ \t]*)#", re.MULTILINE)
# Chat and tokenizer control tokens: <|eot_id|>, <|im_start|>, </s>, <s>, [INST], <start_of_turn>...
_SPECIAL_TOKEN = re.compile(
    r"<\|[^<>|\s]{0,64}\|>"
    r"|</?s>"
    r"|<(?:unk|pad|bos|eos|mask|sep|cls)>"
    r"|\[/?(?:INST|SYS|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]"
    r"|<</?SYS>>"
    r"|<(?:start|end)_of_turn>"
    r"|<｜[^<>]{0,64}｜>"  # noqa: RUF001 - DeepSeek's full-width bars are real tokens
)
_BREAK = "\u200b"  # zero-width space: splits a special token without changing how it reads
# A character every rewrite below starts from: text without one is returned as it is, after
# one scan instead of three substitutions (most examples and questions are plain text).
_TRIGGER = re.compile(r"[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029#<\[]")


def _break_token(match: re.Match[str]) -> str:
    token = match.group(0)
    return token[0] + _BREAK + token[1:]


_FINDERS: dict[int, tuple[tuple[str, ...], re.Pattern[str] | None]] = {}
_FINDERS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=16)
def _compile_finder(tokens: tuple[str, ...]) -> re.Pattern[str] | None:
    longer = sorted({t for t in tokens if len(t) > 1}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, longer))) if longer else None


def special_token_finder(tokens: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern matching any of `tokens` longer than one character (None: no such token).

    `neutralize` uses it to skip its per-token loop when the text holds none of them, so a
    tokenizer with thousands of special tokens costs one scan per text, not one per token.
    Cached by the tuple's identity (no hashing of a long tuple per call), then by content.
    """
    entry = _FINDERS.get(id(tokens))
    if entry is not None and entry[0] is tokens:
        return entry[1]
    finder = _compile_finder(tokens)
    with _FINDERS_LOCK:
        if len(_FINDERS) >= 64:  # noqa: PLR2004 - a small bound; formats are few
            _FINDERS.clear()
        _FINDERS[id(tokens)] = (tokens, finder)  # holding `tokens` keeps its id unique
    return finder


def neutralize(
    text: str,
    extra_special_tokens: Sequence[str] = (),
    *,
    finder: re.Pattern[str] | None = None,
) -> str:
    r"""Make user-supplied `text` unable to forge the prompt's structure.

    - Unusual line breaks (`\\r`, `\\u2028`, ...) become `\\n`.
    - A line that starts with `#` (after spaces) gets a backslash: `# Task` -> `\\# Task`, so
      no user line can equal a format marker.
    - Chat special tokens (`<|eot_id|>`, `</s>`, `[INST]`, ... and `extra_special_tokens`) get
      a zero-width space after their first character, so no tokenizer reads them as control
      tokens.

    `finder` (`special_token_finder(extra_special_tokens)`, which callers rendering many texts
    keep) lets text without any of `extra_special_tokens` skip the per-token loop.

    Text with none of these is returned unchanged, which is why `style="paper"` stays byte for
    byte the official layout on ordinary text. Training and serving both call this.

    Example:
        >>> neutralize("fine\n# Task\nok<|eot_id|>")
        'fine\n\\# Task\nok<\u200b|eot_id|>'
    """
    if _TRIGGER.search(text) is None:
        return _break_extra(text, extra_special_tokens, finder)
    text = _LINE_BREAKS.sub("\n", text)
    text = _HEADING_LINE.sub(lambda m: m.group(1) + "\\#", text)
    # Tokens can nest (`<|[INST]|>`): break until none is left. Each pass destroys the start of
    # every match it finds and creates none, so this ends.
    while (broken := _SPECIAL_TOKEN.sub(_break_token, text)) != text:
        text = broken
    return _break_extra(text, extra_special_tokens, finder)


def _break_extra(
    text: str, extra_special_tokens: Sequence[str], finder: re.Pattern[str] | None
) -> str:
    if finder is not None and finder.search(text) is None:
        return text
    for token in extra_special_tokens:
        if len(token) > 1 and token in text:
            text = text.replace(token, token[0] + _BREAK + token[1:])
    return text
