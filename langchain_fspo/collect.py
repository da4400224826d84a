"""Collect new preferences: show a user two different answers, record the one they choose.

`ChatFSPO.compare(question, user_id=...)` generates two different candidate answers for the
user (two samples of the adapter by default, or the adapter against the base model), in a
seeded random order so that the user's choice is not biased by position. The returned
`Comparison` records the choice into a `PreferenceMemory`: `"a"` or `"b"` becomes one of the
user's few-shot examples (chosen over the other); `"tie"` and `"neither"` are kept for
analysis but never become shots.

Example:
    >>> from langchain_fspo.collect import Candidate, Comparison
    >>> from langchain_fspo.memory import PreferenceMemory
    >>> cmp = Comparison(
    ...     prompt="Tea or coffee?",
    ...     user_id="ada",
    ...     a=Candidate(label="a", text="Tea, always."),
    ...     b=Candidate(label="b", text="Coffee, black."),
    ... )
    >>> memory = PreferenceMemory()
    >>> _ = cmp.record(memory, "b")
    >>> ex = memory.list("ada")[0]
    >>> ex.chosen, ex.rejected
    ('Coffee, black.', 'Tea, always.')
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config

from langchain_fspo._messages import split_messages
from langchain_fspo.errors import ComparisonError, InvalidExampleError
from langchain_fspo.preference import validate_user_id

if TYPE_CHECKING:
    from langchain_fspo.chat_models import ChatFSPO
    from langchain_fspo.memory import Choice, ChoiceRecord, PreferenceMemory

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_SAMPLING_TEMPERATURE",
    "Candidate",
    "CompareMode",
    "Comparison",
    "acompare",
    "compare",
    "swap_order",
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
class Candidate:
    """One answer shown to the user, and how it was generated."""

    label: Literal["a", "b"]
    """Its label in the comparison (the user answers "a" or "b")."""
    text: str
    """The answer."""
    adapter: str | None = None
    """The adapter that wrote it (None: the base model)."""
    temperature: float | None = None
    """The sampling temperature sent (None: the model's own setting)."""
    seed: int | None = None
    """The sampling seed sent (None: the model's own setting)."""
    example_ids: list[str] = field(default_factory=list)
    """The user's examples that were in its prompt."""
    message: AIMessage | None = field(default=None, compare=False, repr=False)
    """The full chat-model answer (metadata, usage)."""

    def source(self) -> dict[str, Any]:
        """How it was generated, as JSON (stored with the recorded choice)."""
        return {"adapter": self.adapter, "temperature": self.temperature, "seed": self.seed}


@dataclass(frozen=True)
class Comparison:
    """Two different answers to one question, for one user to choose between.

    The order of `a` and `b` is random (seeded by `compare`'s seed), so that which source
    is shown first cannot bias the user.
    """

    prompt: str
    """The question, as it is stored in the user's examples (the last human message)."""
    a: Candidate
    """The candidate labelled "a"."""
    b: Candidate
    """The candidate labelled "b"."""
    user_id: str | None = None
    """The user the candidates were generated for."""
    attempts: int = 1
    """Generations it took to get two different, non-empty answers (2 at best)."""

    def __getitem__(self, label: str) -> Candidate:
        """The candidate labelled `label` ("a" or "b")."""
        if label == "a":
            return self.a
        if label == "b":
            return self.b
        msg = f"A comparison has candidates 'a' and 'b', got {label!r}."
        raise KeyError(msg)

    def _args(self, user_id: str | None, metadata: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        user = user_id if user_id is not None else self.user_id
        if user is None:
            msg = (
                "This comparison was made without a user; pass `user_id=` to `record` to say "
                "whose choice it is."
            )
            raise InvalidExampleError(msg)
        meta = {"comparison": {"a": self.a.source(), "b": self.b.source()}, **metadata}
        return validate_user_id(user), meta

    def record(
        self,
        memory: PreferenceMemory,
        choice: Choice,
        *,
        user_id: str | None = None,
        **metadata: Any,
    ) -> ChoiceRecord:
        """Store the user's `choice` ("a", "b", "tie" or "neither") in `memory`.

        "a"/"b" also adds the preference (chosen over the other) to the user's examples, so
        the next answers for this user follow it; "tie"/"neither" are kept but never become
        shots. How each candidate was generated is stored in the record's metadata
        (`metadata["comparison"]`), with any extra `metadata` given here.

        Args:
            memory: The memory to write to.
            choice: What the user chose.
            user_id: Whose choice it is; default: the comparison's user.
            **metadata: More JSON metadata for the record (e.g. the UI's session id).

        Raises:
            InvalidExampleError: Unknown `choice`, no user, or metadata that is not JSON.
        """
        user, meta = self._args(user_id, metadata)
        return memory.record_choice(user, self.prompt, self.a.text, self.b.text, choice, **meta)

    async def arecord(
        self,
        memory: PreferenceMemory,
        choice: Choice,
        *,
        user_id: str | None = None,
        **metadata: Any,
    ) -> ChoiceRecord:
        """Async `record`."""
        user, meta = self._args(user_id, metadata)
        return await memory.arecord_choice(
            user, self.prompt, self.a.text, self.b.text, choice, **meta
        )


# ---------------------------------------------------------------------- the search


@dataclass(frozen=True)
class _Spec:
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
class _Draft:
    """A generated answer before it is labelled."""

    spec: _Spec
    text: str
    example_ids: list[str]
    message: AIMessage


@dataclass(frozen=True)
class _Settings:
    mode: CompareMode
    adapter: str | None
    temperature: float
    seed: int
    max_attempts: int

    def spec(self, slot: int, attempt: int) -> _Spec:
        """The generation for candidate `slot` (0 or 1) at try `attempt`."""
        if self.mode == "base" and attempt == 0:
            # The adapter against the base model, with the model's own decoding settings.
            return _Spec(self.adapter if slot == 0 else None, None, None)
        adapter = self.adapter if self.mode == "sample" or slot == 0 else None
        return _Spec(adapter, self.temperature, self.seed + 2 * attempt + slot)


def swap_order(seed: int) -> bool:
    """Whether the first generated candidate is shown as "b" (a fair coin seeded by `seed`).

    Example:
        >>> swap_order(0) == swap_order(0)
        True
        >>> {swap_order(s) for s in range(16)} == {True, False}
        True
    """
    return random.Random(seed).getrandbits(1) == 1  # noqa: S311 - not for security


def _differ(first: str, second: str) -> bool:
    return first.strip() != second.strip()


def _search(settings: _Settings) -> Generator[_Spec, _Draft, tuple[_Draft, _Draft, int]]:
    """Yield generations to run until two usable, different answers are found."""
    first: _Draft | None = None
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


def _messages(value: LanguageModelInput) -> list[BaseMessage]:
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, str):
        return [HumanMessage(content=value)]
    return convert_to_messages(value)


def _user(model: ChatFSPO, user_id: str | None, config: RunnableConfig | None) -> str | None:
    if user_id is not None:
        return validate_user_id(user_id)
    configured = (ensure_config(config).get("configurable") or {}).get("user_id")
    if configured is not None:
        return validate_user_id(configured)
    return model.user_id


def _settings(
    model: ChatFSPO,
    mode: str,
    adapter: str | None,
    temperature: float | None,
    seed: int | None,
    max_attempts: int,
) -> _Settings:
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
        temperature = model.temperature or DEFAULT_SAMPLING_TEMPERATURE
    if temperature <= 0:
        msg = (
            f"compare samples its candidates, so `temperature` must be above 0, got "
            f"{temperature}; greedy decoding gives the same answer every time."
        )
        raise ValueError(msg)
    if seed is None:
        seed = (
            model.seed if model.seed is not None else random.SystemRandom().randrange(_SEED_RANGE)
        )
    return _Settings(cast("CompareMode", mode), adapter, temperature, seed, max_attempts)


def _draft(spec: _Spec, message: AIMessage) -> _Draft:
    ids = message.response_metadata.get("example_ids") or []
    return _Draft(spec, str(message.text), list(ids), message)


def _comparison(
    prompt: str, user: str | None, settings: _Settings, found: tuple[_Draft, _Draft, int]
) -> Comparison:
    first, second, runs = found
    if swap_order(settings.seed):
        first, second = second, first

    def candidate(label: Literal["a", "b"], draft: _Draft) -> Candidate:
        spec = draft.spec
        return Candidate(
            label=label,
            text=draft.text,
            adapter=spec.adapter,
            temperature=spec.temperature,
            seed=spec.seed,
            example_ids=draft.example_ids,
            message=draft.message,
        )

    return Comparison(
        prompt=prompt,
        a=candidate("a", first),
        b=candidate("b", second),
        user_id=user,
        attempts=runs,
    )


def _prepare(
    model: ChatFSPO,
    input: LanguageModelInput,  # noqa: A002 - LangChain's name
    config: RunnableConfig | None,
    user_id: str | None,
    mode: str,
    adapter: str | None,
    temperature: float | None,
    seed: int | None,
    max_attempts: int,
) -> tuple[list[BaseMessage], str, str | None, _Settings]:
    messages = _messages(input)
    prompt = split_messages(messages).query
    user = _user(model, user_id, config)
    chosen_adapter = adapter if adapter is not None else model.model_name
    settings = _settings(model, mode, chosen_adapter, temperature, seed, max_attempts)
    return messages, prompt, user, settings


def compare(
    llm: ChatFSPO,
    input: LanguageModelInput,  # noqa: A002 - LangChain's name
    config: RunnableConfig | None = None,
    *,
    user_id: str | None = None,
    model: str | None = None,
    mode: CompareMode = "sample",
    temperature: float | None = None,
    seed: int | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    **kwargs: Any,
) -> Comparison:
    """Generate two different answers to `input` for the user, to ask which they prefer.

    Both candidates are personalised to the user (their examples are in both prompts). In
    `mode="sample"` both come from the adapter, sampled at `temperature` with seeds `seed`,
    `seed + 1`, ...; in `mode="base"` the adapter's answer is put against the base model's.
    A candidate that is empty or equal (up to surrounding whitespace) to the other is
    generated again with the next seeds, up to `max_attempts` times.

    Args:
        llm: The chat model.
        input: The question: a string, messages or a prompt value (the last human message
            is what the recorded example's `prompt` will be).
        config: Runnable config (callbacks, tags; `configurable.user_id`).
        user_id: The user; default: `config["configurable"]["user_id"]`, then the model's.
        model: The adapter; default: the chat model's (`ChatFSPO.model_name`).
        mode: `"sample"` (default) or `"base"` (see `CompareMode`).
        temperature: Sampling temperature (> 0); default: the model's, else 1.0.
        seed: Seeds the samples and the a/b order; default: the model's seed, else random.
        max_attempts: Tries before `ComparisonError`.
        **kwargs: More call parameters for both candidates (`max_tokens`, `stop`, ...).

    Returns:
        The `Comparison` (candidates in random order; `record` stores the choice).

    Raises:
        ComparisonError: No two different non-empty answers after `max_attempts` tries.
        ValueError: Bad `mode`, `temperature` or `max_attempts`.
    """
    messages, prompt, user, settings = _prepare(
        llm, input, config, user_id, mode, model, temperature, seed, max_attempts
    )

    def run(spec: _Spec) -> _Draft:
        answer = llm.invoke(messages, config, user_id=user, **kwargs, **spec.kwargs())
        return _draft(spec, answer)

    return _comparison(prompt, user, settings, _drive(_search(settings), run))


async def acompare(
    llm: ChatFSPO,
    input: LanguageModelInput,  # noqa: A002 - LangChain's name
    config: RunnableConfig | None = None,
    *,
    user_id: str | None = None,
    model: str | None = None,
    mode: CompareMode = "sample",
    temperature: float | None = None,
    seed: int | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    **kwargs: Any,
) -> Comparison:
    """Async `compare` (the model is called with `ainvoke`)."""
    messages, prompt, user, settings = _prepare(
        llm, input, config, user_id, mode, model, temperature, seed, max_attempts
    )
    search = _search(settings)
    spec = next(search)
    while True:
        answer = await llm.ainvoke(messages, config, user_id=user, **kwargs, **spec.kwargs())
        try:
            spec = search.send(_draft(spec, answer))
        except StopIteration as done:
            found: tuple[_Draft, _Draft, int] = done.value
            return _comparison(prompt, user, settings, found)


def _drive(
    search: Generator[_Spec, _Draft, tuple[_Draft, _Draft, int]],
    run: Callable[[_Spec], _Draft],
) -> tuple[_Draft, _Draft, int]:
    spec = next(search)
    while True:
        try:
            spec = search.send(run(spec))
        except StopIteration as done:
            found: tuple[_Draft, _Draft, int] = done.value
            return found
