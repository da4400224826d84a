"""`RetryPolicy`: the settings of the one retry layer (`_retry`), held by every backend."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how patiently and for how long each attempt a call is tried."""

    max_retries: int = 2
    """Retries after the first attempt (0: never retry)."""
    backoff_factor: float = 0.5
    """Seconds before the first retry; doubled on each further retry."""
    backoff_max: float = 8.0
    """The longest wait between two attempts, in seconds (a longer `Retry-After`: no retry)."""
    timeout: float | None = None
    """Seconds one attempt may take, whole (a stream: to open and between two chunks)."""
    stream_timeout: float | None = None
    """Seconds a whole stream may take (None: no total limit; `timeout` still bounds gaps)."""

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            msg = f"`max_retries` must be >= 0, got {self.max_retries}."
            raise ValueError(msg)
        if self.backoff_factor < 0 or self.backoff_max < 0:
            msg = (
                f"`backoff_factor` and `backoff_max` must be >= 0, got {self.backoff_factor} "
                f"and {self.backoff_max}."
            )
            raise ValueError(msg)
        for name in ("timeout", "stream_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                msg = f"`{name}` must be > 0 seconds or None, got {value}."
                raise ValueError(msg)

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with `changes` (checked as a new policy)."""
        return dataclasses.replace(self, **changes)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based), with 10% jitter."""
        base = min(self.backoff_max, self.backoff_factor * 2.0 ** (retry - 1))
        if retry_after is not None:
            base = min(self.backoff_max, max(base, retry_after))
        return base * (1 + random.random() / 10)  # noqa: S311 - jitter, not cryptography

    def waits_too_long(self, retry_after: float | None) -> bool:
        """Whether the server asks for a longer wait than `backoff_max` allows."""
        return retry_after is not None and retry_after > self.backoff_max
