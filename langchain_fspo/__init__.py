"""langchain-fspo: personalise one LLM to every user from a few of their preferences (FSPO).

`import langchain_fspo` is light: torch, transformers and peft load only when the in-process
backend is used.
"""

from typing import TYPE_CHECKING, Any

from langchain_fspo.backends import (
    Backend,
    Generation,
    GenerationChunk,
    GenerationParams,
    LocalBackend,
    OpenAICompatibleBackend,
    TGIBackend,
)
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.collect import Candidate, Comparison
from langchain_fspo.errors import (
    AdapterNotFoundError,
    AgentConfigError,
    ComparisonError,
    FSPOError,
    InferenceServerError,
    InvalidExampleError,
    MemoryConfigError,
    PromptBudgetError,
    PromptFormatError,
    UnsupportedParameterError,
)
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.prompt_format import FORMAT_FILENAME, PromptFormat, RenderedPrompt

if TYPE_CHECKING:
    from langchain_fspo.middleware import FSPOMiddleware

__all__ = [
    "FORMAT_FILENAME",
    "AdapterNotFoundError",
    "AgentConfigError",
    "Backend",
    "Candidate",
    "ChatFSPO",
    "Comparison",
    "ComparisonError",
    "FSPOError",
    "FSPOMiddleware",
    "Generation",
    "GenerationChunk",
    "GenerationParams",
    "InferenceServerError",
    "InvalidExampleError",
    "LocalBackend",
    "MemoryConfigError",
    "OpenAICompatibleBackend",
    "PreferenceExample",
    "PreferenceMemory",
    "PromptBudgetError",
    "PromptFormat",
    "PromptFormatError",
    "RenderedPrompt",
    "TGIBackend",
    "UnsupportedParameterError",
]


def __getattr__(name: str) -> Any:
    # FSPOMiddleware needs `langchain` (extra `[agents]`): import it only when asked for.
    if name == "FSPOMiddleware":
        from langchain_fspo.middleware import FSPOMiddleware

        return FSPOMiddleware
    msg = f"module 'langchain_fspo' has no attribute {name!r}"
    raise AttributeError(msg)
