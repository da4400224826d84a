"""langchain-fspo: personalise one LLM to every user from a few of their preferences (FSPO)."""

from langchain_fspo.errors import (
    AdapterNotFoundError,
    FSPOError,
    InferenceServerError,
    InvalidExampleError,
    PromptBudgetError,
    PromptFormatError,
)
from langchain_fspo.examples import PreferenceExample
from langchain_fspo.prompt_format import FORMAT_FILENAME, PromptFormat, RenderedPrompt

__all__ = [
    "FORMAT_FILENAME",
    "AdapterNotFoundError",
    "FSPOError",
    "InferenceServerError",
    "InvalidExampleError",
    "PreferenceExample",
    "PromptBudgetError",
    "PromptFormat",
    "PromptFormatError",
    "RenderedPrompt",
]
