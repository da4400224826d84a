"""The public API is what `__all__` says, pinned so that a change is a decision."""

from __future__ import annotations

import langchain_fspo

EXPECTED_ALL = [
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


def test_all_is_pinned() -> None:
    assert sorted(langchain_fspo.__all__) == sorted(EXPECTED_ALL)


def test_errors_keep_their_builtin_bases() -> None:
    assert issubclass(langchain_fspo.PromptFormatError, ValueError)
    assert issubclass(langchain_fspo.InvalidExampleError, ValueError)
    assert issubclass(langchain_fspo.AdapterNotFoundError, LookupError)
    assert issubclass(langchain_fspo.InferenceServerError, RuntimeError)
    assert issubclass(langchain_fspo.PromptBudgetError, langchain_fspo.PromptFormatError)


def test_middleware_is_exported_lazily() -> None:
    from langchain_fspo.middleware import FSPOMiddleware

    assert langchain_fspo.FSPOMiddleware is FSPOMiddleware
