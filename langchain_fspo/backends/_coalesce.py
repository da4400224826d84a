"""Stream chunks that arrived together, as fewer chunks.

A fast server sends many tokens in one network read. Each chunk a stream yields costs a
LangChain message chunk, callbacks and a part in the final merge (tens of microseconds), so
text that arrived at once is yielded at once: consecutive text-only chunks become one.
Tool-call pieces and the final chunk (finish reason, usage) stay as they are.
"""

from __future__ import annotations

from langchain_fspo.backends.base import GenerationChunk

__all__ = ["coalesce"]


def _text_only(chunk: GenerationChunk) -> bool:
    return chunk == GenerationChunk(text=chunk.text)


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
