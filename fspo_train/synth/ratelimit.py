"""Provider rate limits for `fspo synth`: pace requests and tokens, wait out 429s together.

Hosted providers limit requests per minute (RPM) and tokens per minute (TPM) and answer HTTP 429,
usually with a `Retry-After` header, above them. A large run with many requests in flight would
otherwise spend its retries on 429s and leave items unfinished. `RateLimits`, one per run and
shared by every request of it:

- paces requests with LangChain's `InMemoryRateLimiter` (`requests_per_minute`, a bucket of one
  request, so the rate never bursts above the limit);
- paces tokens with a token bucket (`tokens_per_minute`): a request reserves an estimate of its
  prompt tokens (characters / 4) before it is sent, and the difference to the `usage` the server
  reports is settled when it answers;
- after a 429 pauses **every** request of the run until the server's `Retry-After` (or
  `retry-after-ms`) has passed, or an exponential backoff when it sent none; these waits do not
  count against `max_retries` (the runner bounds them by `max_rate_limit_wait` per request);
- measures the rate actually sent over the last minute, for the progress bar.

Example:
    >>> limits = RateLimits(requests_per_minute=600)
    >>> limits.describe()
    '0 req/min, 0 tok/min'
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
from typing import Any

from langchain_core.rate_limiters import InMemoryRateLimiter

from langchain_fspo.backends._http import parse_retry_after

__all__ = ["CHARS_PER_TOKEN", "RateLimits", "TokenBucket", "retry_after_seconds"]

CHARS_PER_TOKEN = 4
"""The estimate of prompt tokens before the server counts them: about 4 characters per token."""
_WINDOW_S = 60.0


def retry_after_seconds(error: BaseException, now: float | None = None) -> float | None:
    """How long the server asked to wait (`retry-after-ms`, `Retry-After`), or None.

    `Retry-After` is either seconds or an HTTP date. The headers are read from the error's
    `response` (openai, anthropic and httpx errors carry it).

    Example:
        >>> class Response:
        ...     headers = {"retry-after": "3"}
        >>> class RateLimitError(Exception):
        ...     response = Response()
        >>> retry_after_seconds(RateLimitError())
        3.0
    """
    headers: Any = getattr(getattr(error, "response", None), "headers", None)
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"), now=now)


class TokenBucket:
    """`tokens_per_minute`, refilled continuously, holding at most 10 seconds' worth.

    `acquire(n)` waits until `n` tokens are there and takes them (a request larger than the
    bucket waits for a full bucket); `settle(n)` takes `n` more (or gives back, if negative)
    once the true count is known, so the bucket can go into debt and later requests wait.
    """

    def __init__(self, tokens_per_minute: float, *, burst_s: float = 10.0) -> None:
        """A bucket of `tokens_per_minute / 60 * burst_s` tokens, full at the start."""
        if tokens_per_minute <= 0:
            msg = f"tokens_per_minute must be > 0, got {tokens_per_minute}."
            raise ValueError(msg)
        self.rate = tokens_per_minute / 60
        self.capacity = self.rate * burst_s
        self._level = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._level = min(self.capacity, self._level + (now - self._last) * self.rate)
        self._last = now

    def try_acquire(self, tokens: float, now: float | None = None) -> float:
        """Take `tokens` if they are there and return 0, else the seconds to wait first."""
        wanted = min(tokens, self.capacity)
        with self._lock:
            self._refill(time.monotonic() if now is None else now)
            if self._level >= wanted:
                self._level -= wanted
                return 0.0
            return (wanted - self._level) / self.rate

    async def acquire(self, tokens: float) -> None:
        """Wait until `tokens` are in the bucket, then take them."""
        # The wait is computed, not polled: nothing else could signal an Event earlier.
        while (wait := self.try_acquire(tokens)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)

    def settle(self, tokens: float) -> None:
        """Take `tokens` more (negative: give them back) once the true usage is known."""
        with self._lock:
            self._level = min(self.capacity, self._level - tokens)


class RateLimits:
    """The limits of one run, shared by all its requests (see the module docstring)."""

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ) -> None:
        """No limit where None; 429 pauses and the measured rate work either way."""
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and value <= 0:
                msg = f"{name} must be > 0, got {value}."
                raise ValueError(msg)
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._requests = None
        if requests_per_minute is not None:
            per_second = requests_per_minute / 60
            self._requests = InMemoryRateLimiter(
                requests_per_second=per_second,
                check_every_n_seconds=min(0.1, 0.25 / per_second),
                max_bucket_size=1,
            )
        self._tokens = TokenBucket(tokens_per_minute) if tokens_per_minute else None
        self._pause_until = 0.0
        self._lock = threading.Lock()
        self._sent: collections.deque[tuple[float, int]] = collections.deque()
        self.rate_limited = 0
        """429 (and 503 with `Retry-After`) answers seen."""

    async def wait_turn(self, estimated_tokens: int) -> None:
        """Wait out any 429 pause, then the request and token budgets."""
        while (delay := self._pause_until - time.monotonic()) > 0:  # noqa: ASYNC110 - a deadline
            await asyncio.sleep(delay)
        if self._requests is not None:
            await self._requests.aacquire()
        if self._tokens is not None:
            await self._tokens.acquire(estimated_tokens)

    def record(self, estimated_tokens: int, used_tokens: int | None) -> None:
        """A request was answered: settle its tokens, count it in the measured rate."""
        tokens = estimated_tokens if used_tokens is None else used_tokens
        if self._tokens is not None:
            self._tokens.settle(tokens - estimated_tokens)
        now = time.monotonic()
        with self._lock:
            self._sent.append((now, tokens))
            self._forget(now)

    def pause(self, seconds: float) -> None:
        """A 429: hold every request of the run for `seconds` (a longer pause wins)."""
        with self._lock:
            self.rate_limited += 1
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def _forget(self, now: float) -> None:
        while self._sent and self._sent[0][0] < now - _WINDOW_S:
            self._sent.popleft()

    def measured(self) -> tuple[float, float]:
        """(requests, tokens) per minute answered over the last minute (or since the start)."""
        now = time.monotonic()
        with self._lock:
            self._forget(now)
            if not self._sent:
                return 0.0, 0.0
            span = max(now - self._sent[0][0], 1.0)
            scale = _WINDOW_S / min(span, _WINDOW_S)
            count = len(self._sent)
            tokens = sum(t for _, t in self._sent)
        return count * scale, tokens * scale

    def describe(self) -> str:
        """The measured rate, and the 429s seen, for a progress bar."""
        requests, tokens = self.measured()
        text = f"{math.floor(requests)} req/min, {math.floor(tokens)} tok/min"
        return text + (f", {self.rate_limited} x 429" if self.rate_limited else "")
