"""Serving backends: in-process transformers + PEFT, TGI, OpenAI-compatible servers.

Importing this package is light: `LocalBackend` loads torch, transformers and peft only when
it is constructed.
"""

from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.backends.factory import make_backend
from langchain_fspo.backends.local import LocalBackend
from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend
from langchain_fspo.backends.tgi import TGIBackend

__all__ = [
    "Backend",
    "Generation",
    "GenerationChunk",
    "GenerationParams",
    "LocalBackend",
    "OpenAICompatibleBackend",
    "TGIBackend",
    "make_backend",
]
