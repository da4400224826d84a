"""The public API is what `__all__` says, pinned so that a change is a decision."""

from __future__ import annotations

from importlib.metadata import version

import langchain_fspo
from langchain_fspo import backends, errors, prompt_format

EXPECTED_ALL = [
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


def test_all_is_pinned() -> None:
    assert sorted(langchain_fspo.__all__) == sorted(EXPECTED_ALL)


def test_errors_keep_their_builtin_bases() -> None:
    assert issubclass(errors.PromptFormatError, ValueError)
    assert issubclass(errors.InvalidExampleError, ValueError)
    assert issubclass(errors.AdapterNotFoundError, LookupError)
    assert issubclass(errors.InferenceServerError, RuntimeError)
    assert issubclass(errors.PromptBudgetError, errors.PromptFormatError)
    assert issubclass(errors.AdapterLoadError, errors.InferenceServerError)
    assert issubclass(errors.IncompatibleAdapterError, ValueError)


def test_middleware_is_exported_lazily() -> None:
    from langchain_fspo.middleware import FSPOMiddleware

    assert langchain_fspo.FSPOMiddleware is FSPOMiddleware


def test_interface_types_and_errors_live_one_level_down() -> None:
    assert sorted(backends.__all__) == [
        "Backend",
        "Generation",
        "GenerationChunk",
        "GenerationParams",
        "LocalBackend",
        "OpenAICompatibleBackend",
        "TGIBackend",
        "make_backend",
    ]
    assert sorted(errors.__all__) == [
        "AdapterLoadError",
        "AdapterNotFoundError",
        "AgentConfigError",
        "ComparisonError",
        "ExampleConflictError",
        "FSPOError",
        "IncompatibleAdapterError",
        "InferenceServerError",
        "InferenceTimeoutError",
        "InvalidExampleError",
        "MemoryConfigError",
        "MemoryWriteError",
        "PromptBudgetError",
        "PromptFormatError",
        "UnsupportedParameterError",
    ]
    assert {"FORMAT_FILENAME", "ParsedCompletion", "PromptFormat", "RenderedPrompt"} <= set(
        prompt_format.__all__
    )


def test_version_is_the_package_version() -> None:
    assert langchain_fspo.__version__ == version("langchain-fspo")
