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

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_fspo._compare_search import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_SAMPLING_TEMPERATURE,
    CompareMode,
    Draft,
    Found,
    Settings,
    Spec,
    drive,
    make_settings,
    search,
    to_draft,
)
from langchain_fspo._conversation import resolve_user, split_messages, to_messages
from langchain_fspo.errors import InvalidExampleError
from langchain_fspo.preference import validate_user_id

if TYPE_CHECKING:
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


class _ChatModel(Protocol):
    """What `compare` needs of the chat model (a `ChatFSPO`)."""

    @property
    def model_name(self) -> str | None:
        """The adapter."""

    @property
    def user_id(self) -> str | None:
        """The default user."""

    @property
    def temperature(self) -> float | None:
        """The default sampling temperature."""

    @property
    def seed(self) -> int | None:
        """The default sampling seed."""

    def invoke(
        self,
        input: LanguageModelInput,  # noqa: A002 - LangChain's name
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Answer `input`."""

    async def ainvoke(
        self,
        input: LanguageModelInput,  # noqa: A002 - LangChain's name
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Async `invoke`."""


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


# ---------------------------------------------------------------------- compare


def swap_order(seed: int) -> bool:
    """Whether the first generated candidate is shown as "b" (a fair coin seeded by `seed`).

    Example:
        >>> swap_order(0) == swap_order(0)
        True
        >>> {swap_order(s) for s in range(16)} == {True, False}
        True
    """
    return random.Random(seed).getrandbits(1) == 1  # noqa: S311 - not for security


def _comparison(prompt: str, user: str | None, settings: Settings, found: Found) -> Comparison:
    first, second, runs = found
    if swap_order(settings.seed):
        first, second = second, first

    def candidate(label: Literal["a", "b"], draft: Draft) -> Candidate:
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
    model: _ChatModel,
    input: LanguageModelInput,  # noqa: A002 - LangChain's name
    config: RunnableConfig | None,
    user_id: str | None,
    mode: str,
    adapter: str | None,
    temperature: float | None,
    seed: int | None,
    max_attempts: int,
) -> tuple[list[BaseMessage], str, str | None, Settings]:
    messages = to_messages(input)
    prompt = split_messages(messages).query
    user = resolve_user(user_id, config, model.user_id, validate=True)
    chosen_adapter = adapter if adapter is not None else model.model_name
    settings = make_settings(
        mode,
        chosen_adapter,
        temperature,
        seed,
        max_attempts,
        model_temperature=model.temperature,
        model_seed=model.seed,
    )
    return messages, prompt, user, settings


def compare(
    llm: _ChatModel,
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
        llm: The chat model (a `ChatFSPO`).
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

    def run(spec: Spec) -> Draft:
        answer = llm.invoke(messages, config, user_id=user, **kwargs, **spec.kwargs())
        return to_draft(spec, answer)

    return _comparison(prompt, user, settings, drive(search(settings), run))


async def acompare(
    llm: _ChatModel,
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
    searching = search(settings)
    spec = next(searching)
    while True:
        answer = await llm.ainvoke(messages, config, user_id=user, **kwargs, **spec.kwargs())
        try:
            spec = searching.send(to_draft(spec, answer))
        except StopIteration as done:
            found: Found = done.value
            return _comparison(prompt, user, settings, found)
