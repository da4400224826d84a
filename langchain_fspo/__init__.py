"""langchain-fspo: personalise one LLM to every user from a few of their preferences (FSPO).

The top level is what an application imports: the chat model, the preference memory and its
examples, the prompt contract, the preference collection's results, the agent middleware and
the base error. One level down:

- `langchain_fspo.backends`: the `Backend` interface (`Generation`, `GenerationChunk`,
  `GenerationParams`) and its implementations (`LocalBackend`, `TGIBackend`,
  `OpenAICompatibleBackend`, `make_backend`);
- `langchain_fspo.errors`: every error class;
- `langchain_fspo.prompt_format`: `RenderedPrompt`, `ParsedCompletion`, `neutralize`;
- `langchain_fspo.artifact`: the adapter's files; `langchain_fspo.memory`, `.collect`,
  `.selection`: the rest of each component.

`import langchain_fspo` is light: torch, transformers and peft load only when the in-process
backend is used.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.collect import Candidate, Comparison
from langchain_fspo.errors import FSPOError
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.prompt_format import PromptFormat

if TYPE_CHECKING:
    from langchain_fspo.middleware import FSPOMiddleware

try:
    __version__ = version("langchain-fspo")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "Candidate",
    "ChatFSPO",
    "Comparison",
    "FSPOError",
    "FSPOMiddleware",
    "PreferenceExample",
    "PreferenceMemory",
    "PromptFormat",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # FSPOMiddleware needs `langchain` (extra `[agents]`): import it only when asked for.
    if name == "FSPOMiddleware":
        from langchain_fspo.middleware import FSPOMiddleware

        return FSPOMiddleware
    msg = f"module 'langchain_fspo' has no attribute {name!r}"
    raise AttributeError(msg)
