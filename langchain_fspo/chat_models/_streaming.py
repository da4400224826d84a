"""Parse a completion while it streams, emitting exactly what `parse_completion` returns.

`PromptFormat.parse_completion` strips the headers the format writes (`## Preferred Response`,
RAT's `## User Description` block), cuts the answer where a new `#`/`##` block starts, and
strips surrounding blank lines. A stream cannot un-send text, so `CompletionStreamParser`
holds text back until it is sure it belongs to the answer: the header at the start, a line
that might become a `## ` marker, trailing whitespace.
"""

from __future__ import annotations

import logging
import re

from langchain_fspo.prompt_format import ParsedCompletion, PromptFormat

__all__ = ["CompletionStreamParser"]

logger = logging.getLogger(__name__)

_DESCRIPTION = "## User Description\n"
_MARKER = re.compile(r"\n#{1,2} ")
_MARKER_PREFIXES = ("\n", "\n#", "\n##")


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
        self._raw = ""
        self._body_start: int | None = None
        self._done = False
        self._emitted = ""

    @property
    def raw(self) -> str:
        """Everything fed so far."""
        return self._raw

    def _resolve_head(self) -> None:
        """Find where the answer starts once the headers at the start are known."""
        raw = self._raw
        headers = (_DESCRIPTION, self._response_header)
        if any(h.startswith(raw) and h != raw for h in headers):
            return  # could still become a header: wait
        if raw.startswith(_DESCRIPTION):
            at = raw.find(self._response_header, len(_DESCRIPTION))
            if at != -1:
                self._body_start = at + len(self._response_header)
            return  # the description is still being written
        if _DESCRIPTION in raw:
            return  # a description block later on changes everything: wait for the end
        if raw.startswith(self._response_header):
            self._body_start = len(self._response_header)
        else:
            self._body_start = 0

    def _safe_answer(self) -> str:
        assert self._body_start is not None  # noqa: S101 - only called once resolved
        body = self._raw[self._body_start :]
        cut = _MARKER.search(body)
        if cut:
            self._done = True
            body = body[: cut.start()]
        else:
            last = body.rfind("\n")
            if last != -1 and body[last:] in _MARKER_PREFIXES:
                body = body[:last]  # might be the start of a `## ` marker
        return body.lstrip("\n").rstrip()

    def feed(self, text: str) -> str:
        """Add raw generated `text`; return the new answer text that is certain."""
        if self._done or not text:
            self._raw += text
            return ""
        self._raw += text
        if self._body_start is None:
            self._resolve_head()
            if self._body_start is None:
                return ""
        safe = self._safe_answer()
        if not safe.startswith(self._emitted):
            return ""  # cannot happen for well-formed input; `finish` reconciles
        new = safe[len(self._emitted) :]
        self._emitted = safe
        return new

    def finish(self) -> tuple[str, ParsedCompletion]:
        """The answer text not emitted yet, and the full parse of the completion."""
        parsed = self._format.parse_completion(self._raw)
        if not parsed.response.startswith(self._emitted):
            logger.warning(
                "The streamed answer diverged from the parsed completion (emitted %r, parsed "
                "%r); the streamed text stands.",
                self._emitted,
                parsed.response,
            )
            return "", parsed
        tail = parsed.response[len(self._emitted) :]
        self._emitted = parsed.response
        return tail, parsed
