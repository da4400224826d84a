"""Parse a completion while it streams, emitting exactly what `parse_completion` returns.

`PromptFormat.parse_completion` strips the headers the format writes (`## Preferred Response`,
RAT's `## User Description` block), cuts the answer where a new `#`/`##` block starts, and
strips surrounding blank lines. A stream cannot un-send text, so `CompletionStreamParser`
holds text back until it is sure it belongs to the answer: the header at the start, a line
that might become a `## ` marker, trailing whitespace.

Each `feed` costs time in the length of its own text, not of the text before it: the parser
looks back at most a header's length (for a header split across pieces) or three characters
(for a `## ` marker split across pieces), and the text it holds back (trailing whitespace)
is joined once, when it is emitted. The whole completion is joined once, in `finish`.
"""

from __future__ import annotations

import logging
import re
from enum import Enum

from langchain_fspo.prompt_format import ParsedCompletion, PromptFormat

__all__ = ["CompletionStreamParser"]

logger = logging.getLogger(__name__)

_DESCRIPTION = "## User Description\n"
_MARKER = re.compile(r"\n#{1,2} ")
_MARKER_PREFIXES = ("\n", "\n#", "\n##")
_LOOK_BACK = 3
"""A marker (`\\n# ` or `\\n## `) found in new text starts at most this many characters earlier."""


class _Phase(Enum):
    HEAD = "head"  # the text so far could still become a header
    DESCRIPTION = "description"  # inside RAT's description block, before the response header
    WAITING = "waiting"  # a description block starts later: only `finish` can tell
    BODY = "body"  # the answer is streaming
    DONE = "done"  # a marker ended the answer


class CompletionStreamParser:
    r"""Feed raw completion text piece by piece; get back the answer text safe to emit.

    The concatenation of everything `feed` and `finish` return equals
    `prompt_format.parse_completion(raw).response`, and `finish` returns the full parse
    (with the RAT user description).

    Example:
        >>> fmt = PromptFormat(style="paper")
        >>> parser = CompletionStreamParser(fmt)
        >>> parts = [parser.feed(p) for p in ["## Pref", "erred Response \nHel", "lo\n"]]
        >>> parts
        ['', 'Hel', 'lo']
        >>> tail, parsed = parser.finish()
        >>> tail, parsed.response
        ('', 'Hello')
    """

    def __init__(self, prompt_format: PromptFormat) -> None:
        self._format = prompt_format
        self._response_header = (
            "## Preferred Response \n" if prompt_format.include_rejected else "## Response \n"
        )
        self._pieces: list[str] = []
        """Everything fed, joined on demand (`raw`, `finish`)."""
        self._phase = _Phase.HEAD
        self._head = ""
        """HEAD: the text so far (shorter than a header)."""
        self._carry = ""
        """DESCRIPTION: the last characters searched, where a split response header may start."""
        self._unsent: list[str] = []
        """BODY: the body text after the emitted answer: whitespace, then at most a held line."""
        self._unsent_len = 0
        self._last = ""
        """BODY: the body's last `_LOOK_BACK` characters."""
        self._emitted: list[str] = []

    @property
    def raw(self) -> str:
        """Everything fed so far."""
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    def feed(self, text: str) -> str:
        """Add raw generated `text`; return the new answer text that is certain."""
        if not text:
            return ""
        self._pieces.append(text)
        if self._phase is _Phase.HEAD:
            return self._feed_head(text)
        if self._phase is _Phase.DESCRIPTION:
            return self._feed_description(text)
        if self._phase is _Phase.BODY:
            return self._feed_body(text)
        return ""  # WAITING or DONE

    def _feed_head(self, text: str) -> str:
        """Find where the answer starts once the headers at the start are known."""
        raw = self._head + text
        header = self._response_header
        if any(h.startswith(raw) and h != raw for h in (_DESCRIPTION, header)):
            self._head = raw
            return ""  # could still become a header: wait
        self._head = ""
        if raw.startswith(_DESCRIPTION):
            self._phase = _Phase.DESCRIPTION
            self._carry = ""
            return self._feed_description(raw[len(_DESCRIPTION) :])
        if _DESCRIPTION in raw:
            self._phase = _Phase.WAITING  # a description block later on changes everything
            return ""
        self._phase = _Phase.BODY
        return self._feed_body(raw.removeprefix(header))

    def _feed_description(self, text: str) -> str:
        """The description is being written: look for the response header that ends it."""
        window = self._carry + text
        header = self._response_header
        at = window.find(header)
        if at == -1:
            self._carry = window[-(len(header) - 1) :]
            return ""
        self._phase = _Phase.BODY
        return self._feed_body(window[at + len(header) :])

    def _feed_body(self, text: str) -> str:
        """The new answer text: up to a `## ` marker, held back where it may end.

        A line that might become a marker and trailing whitespace wait until more text shows
        that they belong to the answer.
        """
        if not text:
            return ""
        window = self._last + text  # the body's last characters, then `text`
        pending = self._unsent_len + len(text)  # body characters not emitted yet
        cut = _MARKER.search(window)
        if cut is not None:
            self._phase = _Phase.DONE
            keep = pending - (len(window) - cut.start())
            if keep <= 0:
                return ""  # the marker starts at or before the emitted end: nothing to add
            return self._emit(self._take_unsent(text)[:keep])
        self._last = window[-_LOOK_BACK:]
        newline = self._last.rfind("\n")
        held = 0
        if newline != -1 and self._last[newline:] in _MARKER_PREFIXES:
            held = len(self._last) - newline  # might be the start of a `## ` marker
        # The unsent text is whitespace but for its last `_LOOK_BACK` characters (a held line).
        recent = window[len(window) - min(pending, len(window)) :]
        if not recent[: len(recent) - held].strip():
            self._unsent.append(text)
            self._unsent_len = pending
            return ""
        unsent = self._take_unsent(text)
        answer = unsent[: len(unsent) - held].rstrip()
        rest = unsent[len(answer) :]
        self._unsent, self._unsent_len = [rest], len(rest)
        return self._emit(answer)

    def _take_unsent(self, text: str) -> str:
        unsent = "".join([*self._unsent, text])
        self._unsent, self._unsent_len = [], 0
        return unsent

    def _emit(self, text: str) -> str:
        """`text` continues the answer; before the answer starts, its blank lines are dropped."""
        if not self._emitted:
            text = text.lstrip("\n")
        text = text.rstrip() if self._phase is _Phase.DONE else text
        if text:
            self._emitted.append(text)
        return text

    def finish(self) -> tuple[str, ParsedCompletion]:
        """The answer text not emitted yet, and the full parse of the completion."""
        parsed = self._format.parse_completion(self.raw)
        emitted = "".join(self._emitted)
        if not parsed.response.startswith(emitted):
            logger.warning(
                "The streamed answer diverged from the parsed completion (emitted %r, parsed "
                "%r); the streamed text stands.",
                emitted,
                parsed.response,
            )
            return "", parsed
        tail = parsed.response[len(emitted) :]
        self._emitted = [parsed.response]
        return tail, parsed
