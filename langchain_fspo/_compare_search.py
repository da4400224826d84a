"""The search behind `compare`: which generations to run until two answers differ.

`search` is a generator driven by the caller: it yields the next generation to run (`Spec`)
and is sent the answer (`Draft`); it returns the two usable, different answers and how many
generations it took, or raises `ComparisonError` after `max_attempts` tries. `drive` runs it
with a synchronous model call; `collect.acompare` drives the same generator asynchronously.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal, cast

from langchain_core.messages import AIMessage

from langchain_fspo.errors import ComparisonError

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_SAMPLING_TEMPERATURE",
    "CompareMode",
    "Draft",
    "Found",
    "Settings",
    "Spec",
    "drive",
    "make_settings",
    "search",
    "to_draft",
]

logger = logging.getLogger(__name__)

CompareMode = Literal["sample", "base"]
"""How the two candidates differ.

- `"sample"`: two samples of the same adapter (different seeds).
- `"base"`: the adapter against the base model (same decoding settings); when they agree,
  both are re-sampled with new seeds.
"""

DEFAULT_MAX_ATTEMPTS = 4
"""Tries for a second candidate that differs from the first before giving up."""

DEFAULT_SAMPLING_TEMPERATURE = 1.0
"""Sampling temperature when neither the call nor the model sets one above 0."""

_SEED_RANGE = 2**31


@dataclass(frozen=True)
class Spec:
    """One generation to run: the call keywords that differ between candidates."""

    adapter: str | None
    temperature: float | None
    seed: int | None

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.adapter}
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.seed is not None:
            out["seed"] = self.seed
        return out


@dataclass(frozen=True)
class Draft:
    """A generated answer before it is labelled."""

    spec: Spec
    text: str
    example_ids: list[str]
    message: AIMessage


@dataclass(frozen=True)
class Settings:
    """What `compare` was asked, checked, with the defaults filled in (`make_settings`)."""

    mode: CompareMode
    adapter: str | None
    temperature: float
    seed: int
    max_attempts: int

    def spec(self, slot: int, attempt: int) -> Spec:
        """The generation for candidate `slot` (0 or 1) at try `attempt`."""
        if self.mode == "base" and attempt == 0:
            # The adapter against the base model, with the model's own decoding settings.
            return Spec(self.adapter if slot == 0 else None, None, None)
        adapter = self.adapter if self.mode == "sample" or slot == 0 else None
        return Spec(adapter, self.temperature, self.seed + 2 * attempt + slot)


Found = tuple[Draft, Draft, int]
"""The two different answers, in the order generated, and how many generations it took."""


def _differ(first: str, second: str) -> bool:
    return first.strip() != second.strip()


def search(settings: Settings) -> Generator[Spec, Draft, Found]:
    """Yield generations to run until two usable, different answers are found."""
    first: Draft | None = None
    seen: list[str] = []
    runs = 0
    for attempt in range(settings.max_attempts):
        if first is None:
            draft = yield settings.spec(0, attempt)
            runs += 1
            seen.append(draft.text)
            if not draft.text.strip():
                continue
            first = draft
        draft = yield settings.spec(1, attempt)
        runs += 1
        seen.append(draft.text)
        if draft.text.strip() and _differ(first.text, draft.text):
            return first, draft, runs
        logger.debug("compare: candidate %d gave no new answer (%r); retrying.", runs, draft.text)
    shown = ", ".join(repr(t[:60]) for t in seen)
    hint = (
        "raise `temperature`"
        if settings.mode == "sample"
        else "use mode='sample' or raise `temperature`"
    )
    msg = (
        f"compare: {settings.max_attempts} attempt(s) gave no two different non-empty answers "
        f"(mode={settings.mode!r}, temperature={settings.temperature}, seeds from "
        f"{settings.seed}; answers: {shown}). Try again with another seed, {hint}, allow more "
        "`max_tokens`, or raise `max_attempts`."
    )
    raise ComparisonError(msg)


def make_settings(
    mode: str,
    adapter: str | None,
    temperature: float | None,
    seed: int | None,
    max_attempts: int,
    *,
    model_temperature: float | None,
    model_seed: int | None,
) -> Settings:
    """Check the arguments of `compare` and fill in the defaults (the model's, then ours).

    Raises:
        ValueError: Bad `mode`, `temperature` or `max_attempts`, or `mode="base"` without
            an adapter.
    """
    if mode not in {"sample", "base"}:
        msg = f"`mode` must be 'sample' or 'base', got {mode!r}."
        raise ValueError(msg)
    if max_attempts < 1:
        msg = f"`max_attempts` must be at least 1, got {max_attempts}."
        raise ValueError(msg)
    if mode == "base" and adapter is None:
        msg = (
            "mode='base' compares the adapter with the base model, but no adapter is set: "
            "pass `model=` (the adapter name) or use mode='sample'."
        )
        raise ValueError(msg)
    if temperature is None:
        temperature = model_temperature or DEFAULT_SAMPLING_TEMPERATURE
    if temperature <= 0:
        msg = (
            f"compare samples its candidates, so `temperature` must be above 0, got "
            f"{temperature}; greedy decoding gives the same answer every time."
        )
        raise ValueError(msg)
    if seed is None:
        seed = (
            model_seed if model_seed is not None else random.SystemRandom().randrange(_SEED_RANGE)
        )
    return Settings(cast("CompareMode", mode), adapter, temperature, seed, max_attempts)


def to_draft(spec: Spec, message: AIMessage) -> Draft:
    """The generated answer to `spec`, with the example ids of its prompt."""
    ids = message.response_metadata.get("example_ids") or []
    return Draft(spec, str(message.text), list(ids), message)


def drive(search: Generator[Spec, Draft, Found], run: Callable[[Spec], Draft]) -> Found:
    """Run `search` to its end, answering each `Spec` with `run`."""
    spec = next(search)
    while True:
        try:
            spec = search.send(run(spec))
        except StopIteration as done:
            found: Found = done.value
            return found
