"""langchain-fspo: personalise one LLM to every user from a few of their preferences (FSPO).

`import langchain_fspo` is light: torch, transformers and peft load only when the in-process
backend is used.
"""

from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import (
    AdapterNotFoundError,
    FSPOError,
    InferenceServerError,
    InvalidExampleError,
    MemoryConfigError,
    PromptBudgetError,
    PromptFormatError,
)
from langchain_fspo.examples import PreferenceExample
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import FORMAT_FILENAME, PromptFormat, RenderedPrompt

__all__ = [
    "FORMAT_FILENAME",
    "AdapterNotFoundError",
    "Backend",
    "ChatFSPO",
    "FSPOError",
    "Generation",
    "GenerationChunk",
    "GenerationParams",
    "InferenceServerError",
    "InvalidExampleError",
    "MemoryConfigError",
    "PreferenceExample",
    "PreferenceMemory",
    "PromptBudgetError",
    "PromptFormat",
    "PromptFormatError",
    "RenderedPrompt",
]
