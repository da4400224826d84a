"""Stream chunks that arrived together, as fewer chunks.

A fast server sends many tokens in one network read. Each chunk a stream yields costs a
LangChain message chunk, callbacks and a part in the final merge (tens of microseconds), so
text that arrived at once is yielded at once: consecutive text-only chunks become one.
Tool-call pieces and the final chunk (finish reason, usage) stay as they are.
"""

from __future__ import annotations

from langchain_fspo.backends.base import GenerationChunk

__all__ = ["CARRIED", "coalesce"]


CARRIED = ("finish_reason", "input_tokens", "output_tokens", "model_name", "cached_tokens")
"""The `GenerationChunk` fields besides text and tool-call pieces (None unless set)."""


def _text_only(chunk: GenerationChunk) -> bool:
    # Attribute by attribute: comparing with a new GenerationChunk costs more per token.
    return (
        not chunk.tool_call_chunks
        and chunk.finish_reason is None
        and chunk.input_tokens is None
        and chunk.output_tokens is None
        and chunk.model_name is None
        and chunk.cached_tokens is None
    )


def coalesce(chunks: list[GenerationChunk]) -> list[GenerationChunk]:
    """`chunks` with each run of consecutive text-only chunks joined into one.

    Example:
        >>> parts = [GenerationChunk(text="a"), GenerationChunk(text="b")]
        >>> [c.text for c in coalesce(parts)]
        ['ab']
        >>> call = GenerationChunk(text="", tool_call_chunks=[{"index": 0, "args": "{"}])
        >>> [c.text for c in coalesce([*parts, call, GenerationChunk(text="c")])]
        ['ab', '', 'c']
    """
    out: list[GenerationChunk] = []
    run: list[str] = []
    for chunk in chunks:
        if _text_only(chunk):
            run.append(chunk.text)
            continue
        if run:
            out.append(GenerationChunk(text="".join(run)))
            run = []
        out.append(chunk)
    if run:
        out.append(GenerationChunk(text="".join(run)))
    return out
