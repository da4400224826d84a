"""One small error hierarchy shared by `langchain_fspo` and `fspo_train`.

Each class also inherits the nearest builtin, so code that already catches `ValueError`,
`LookupError` or `RuntimeError` keeps working (the trick PEFT uses for its errors).
"""

from __future__ import annotations

__all__ = [
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


class FSPOError(Exception):
    """Base class for every error raised by langchain-fspo."""


class PromptFormatError(FSPOError, ValueError):
    """The prompt-format contract (`fspo_format.json`) is missing, invalid or does not match."""


class PromptBudgetError(PromptFormatError):
    """The query alone does not fit the prompt token budget, even with zero shots."""


class InvalidExampleError(FSPOError, ValueError):
    """A preference example or a user id is invalid; nothing was written."""


class ExampleConflictError(InvalidExampleError):
    """An example id the caller chose is already stored with other content; nothing was written."""


class MemoryWriteError(FSPOError, RuntimeError):
    """A multi-batch memory write failed part way; the batches before the failure are stored.

    Attributes:
        written: The user ids whose examples were stored before the failure.
    """

    def __init__(self, message: str, *, written: list[str]) -> None:
        super().__init__(message)
        self.written = written


class MemoryConfigError(FSPOError, ValueError):
    """The preference memory or its store cannot do what was asked as configured.

    For example `strategy="relevant"` on a store without an embedding index, or an unknown
    selection strategy.
    """


class AdapterNotFoundError(FSPOError, LookupError):
    """The requested adapter is not served, not allowed, or has no `fspo_format.json`."""


class InferenceServerError(FSPOError, RuntimeError):
    """The inference server answered with an error, a malformed response, or not at all.

    Attributes:
        url: The server URL (credentials stripped), when known.
        adapter: The adapter the call asked for (None: the base model).
        status_code: The HTTP status, when the server answered with one.
        retryable: False when retrying cannot help or was already done by the backend (a 4xx,
            a malformed answer, retries exhausted); None when the raiser does not say.
        body: The server's whole error body, when it sent one (the message quotes at most a
            few KB of it).
        retry_after: Seconds the server asked to wait before another try (`Retry-After`).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        adapter: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.adapter = adapter
        self.status_code = status_code
        self.retryable = retryable
        self.body = body
        self.retry_after = retry_after


class InferenceTimeoutError(InferenceServerError, TimeoutError):
    """An attempt did not finish within its `timeout` (or a stream within its deadline).

    Raised after the retries the policy allows; also a `TimeoutError`.
    """


class AdapterLoadError(InferenceServerError):
    """A running server refused to load or unload an adapter; the message says why.

    For example a rank above the server's cap, a PEFT feature it does not support, or runtime
    loading switched off.
    """


class IncompatibleAdapterError(FSPOError, ValueError):
    """An adapter that a serving engine would refuse, or serve only in part.

    See `langchain_fspo.engine_limits` for the rules.
    """


class UnsupportedParameterError(FSPOError, ValueError):
    """A generation parameter cannot be sent on the chosen route or server; nothing was sent."""


class AgentConfigError(FSPOError, TypeError):
    """`FSPOMiddleware` cannot personalise the agent's model call as configured.

    For example the agent's model is not a `ChatFSPO`, or no user could be found in the
    agent's runtime context while the middleware requires one.
    """


class ComparisonError(FSPOError, RuntimeError):
    """`ChatFSPO.compare` could not produce two different, non-empty candidate answers."""
