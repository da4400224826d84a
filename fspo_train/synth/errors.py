"""Errors of the synthetic data pipeline, in the `langchain_fspo.errors` hierarchy."""

from __future__ import annotations

from langchain_fspo.errors import FSPOError, InferenceServerError

__all__ = ["OutputParseError", "RunStateError", "SynthConfigError", "SynthIncompleteError"]


class SynthConfigError(FSPOError, ValueError):
    """A domain config, a model spec or a run option is invalid."""


class OutputParseError(FSPOError, ValueError):
    """A model's answer is not in the format the prompt asked for (the attempt is retried)."""


class RunStateError(FSPOError, RuntimeError):
    """A run directory is corrupt or was created with different settings."""


class SynthIncompleteError(InferenceServerError):
    """Some work items failed with server errors after all retries; run again to resume them."""
