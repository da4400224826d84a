"""Serving backends: in-process transformers + PEFT, TGI, OpenAI-compatible servers."""

from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams

__all__ = ["Backend", "Generation", "GenerationChunk", "GenerationParams"]
