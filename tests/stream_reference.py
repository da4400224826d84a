"""The streaming answer parser as it was before it became linear, kept as the reference.

`ReferenceStreamParser` re-scans the whole completion on every `feed` (quadratic in the
stream's length) but is short enough to check by reading. The tests feed it and
`CompletionStreamParser` the same pieces and require the same output, piece by piece, and use
it to show that the allocation-growth check would catch a parser that re-scans.
"""

from __future__ import annotations

import re

from langchain_fspo.prompt_format import PromptFormat

__all__ = ["ReferenceStreamParser"]

_DESCRIPTION = "## User Description\n"
_MARKER = re.compile(r"\n#{1,2} ")
_MARKER_PREFIXES = ("\n", "\n#", "\n##")


class ReferenceStreamParser:
    """`feed` returns the new answer text that is certain (see `CompletionStreamParser`)."""

    def __init__(self, prompt_format: PromptFormat) -> None:
        self._header = (
            "## Preferred Response \n" if prompt_format.include_rejected else "## Response \n"
        )
        self._raw = ""
        self._body_start: int | None = None
        self._done = False
        self._emitted = ""

    def _resolve_head(self) -> None:
        raw = self._raw
        if any(h.startswith(raw) and h != raw for h in (_DESCRIPTION, self._header)):
            return
        if raw.startswith(_DESCRIPTION):
            at = raw.find(self._header, len(_DESCRIPTION))
            if at != -1:
                self._body_start = at + len(self._header)
            return
        if _DESCRIPTION in raw:
            return
        self._body_start = len(self._header) if raw.startswith(self._header) else 0

    def _safe_answer(self) -> str:
        assert self._body_start is not None
        body = self._raw[self._body_start :]
        cut = _MARKER.search(body)
        if cut:
            self._done = True
            body = body[: cut.start()]
        else:
            last = body.rfind("\n")
            if last != -1 and body[last:] in _MARKER_PREFIXES:
                body = body[:last]
        return body.lstrip("\n").rstrip()

    def feed(self, text: str) -> str:
        self._raw += text
        if self._done or not text:
            return ""
        if self._body_start is None:
            self._resolve_head()
            if self._body_start is None:
                return ""
        safe = self._safe_answer()
        if not safe.startswith(self._emitted):
            return ""
        new = safe[len(self._emitted) :]
        self._emitted = safe
        return new
