"""Concurrent, resumable execution of a stage's work items against chat models.

A stage is a list of `WorkItem`s with deterministic ids. `run_items` skips the ids already in the
stage's `JsonlStore`, runs the rest with at most `concurrency` requests in flight, and appends one
row per finished item:

- the answer parses: `status="ok"` with the parsed `output`;
- it does not parse after `max_attempts` answers (each retry shows the model its error): the item
  is `status="failed"`, counted, and never parsed into garbage;
- the request itself fails (connection, 5xx) after `max_retries` with exponential backoff:
  nothing is written, the item is retried by the next run, and `SynthIncompleteError` is raised at
  the end of the stage. Client errors (400, 404, 413, 422) fail the item; 401/403 stop the run.
- the provider's rate limit answers 429 (or 503 with `Retry-After`): every request of the run
  waits as long as the server asked (`fspo_train.synth.ratelimit`), without spending
  `max_retries`; `requests_per_minute` / `tokens_per_minute` pace the run below the limits so
  that 429s stay rare. The progress bar shows the rate sent.

Every row carries the request and token counts of all its attempts (from `usage_metadata`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from tqdm.auto import tqdm

from fspo_train.synth.errors import OutputParseError, SynthIncompleteError
from fspo_train.synth.ids import digest
from fspo_train.synth.prompts import SynthPrompt, load_prompt
from fspo_train.synth.ratelimit import CHARS_PER_TOKEN, RateLimits, retry_after_seconds
from fspo_train.synth.schemas import JsonOutput, OutputParser
from fspo_train.synth.store import JsonlStore
from langchain_fspo.errors import InferenceServerError

__all__ = ["RunnerSettings", "StageOutcome", "WorkItem", "run_items"]

logger = logging.getLogger(__name__)

_MAX_KEPT_ANSWER = 2000
"""Characters of an unparseable answer kept in a failed row, for debugging prompts."""
_CLIENT_ERRORS = frozenset({400, 404, 413, 422})
_AUTH_ERRORS = frozenset({401, 403})
_RATE_LIMITED = 429
_UNAVAILABLE = 503


@dataclass(frozen=True)
class RunnerSettings:
    """How work items are executed.

    Attributes:
        concurrency: Most requests in flight at once.
        max_attempts: Answers asked for per item before a parse failure is final.
        max_retries: Retries of one request that failed at the transport level.
        backoff_base: First backoff in seconds; doubles per retry, with jitter.
        backoff_max: Longest backoff in seconds.
        max_consecutive_errors: Stop the stage after this many items in a row exhausted their
            retries (the server is down; waiting longer only burns time).
        progress: Show a tqdm bar per stage.
        fsync: fsync each appended line (durability against power loss, not only crashes).
        structured_output: `prompt` shows the JSON schema in the prompt; `json_schema` also
            sends it as the OpenAI `response_format`, so servers with constrained decoding
            (vLLM, SGLang, OpenAI) cannot answer outside it. Answers are parsed strictly either
            way; use `prompt` for providers that reject `response_format`.
        request_seed: When set, every request carries `seed=<hash of this and the item id>`
            (OpenAI-compatible servers such as vLLM and SGLang then sample reproducibly per
            item); None sends no seed (for providers that reject the parameter).
        requests_per_minute: Most requests sent per minute (None: no limit).
        tokens_per_minute: Most tokens (prompt + answer) per minute (None: no limit).
        max_rate_limit_wait: Longest total wait, in seconds, on 429 answers for one request
            before it counts as failed (retried by the next run).
        limits: The run's shared `RateLimits`, built from the two limits (not an argument).
    """

    concurrency: int = 8
    max_attempts: int = 3
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_consecutive_errors: int = 20
    progress: bool = True
    fsync: bool = True
    request_seed: int | None = None
    structured_output: Literal["prompt", "json_schema"] = "prompt"
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_rate_limit_wait: float = 900.0
    limits: RateLimits = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the limits; build the run's shared rate limiter."""
        limits = RateLimits(self.requests_per_minute, self.tokens_per_minute)
        object.__setattr__(self, "limits", limits)  # frozen: set once, here
        for name in ("concurrency", "max_attempts", "max_consecutive_errors"):
            if getattr(self, name) < 1:
                msg = f"RunnerSettings.{name} must be >= 1, got {getattr(self, name)}."
                raise ValueError(msg)
        if min(self.max_retries, self.backoff_base, self.backoff_max) < 0 or (
            self.max_rate_limit_wait < 0
        ):
            msg = (
                "RunnerSettings.max_retries, backoff_base, backoff_max and max_rate_limit_wait "
                "must be >= 0."
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class WorkItem:
    """One model request of a stage.

    Attributes:
        id: Deterministic id; the resumption key.
        model: Key of the chat model in the `models` mapping given to `run_items`.
        prompt: The versioned template.
        variables: Template variables (the output schema is added for JSON parsers).
        parser: Strict parser of the answer.
        meta: Inputs copied into the row for the stages downstream.
    """

    id: str
    model: str
    prompt: SynthPrompt
    variables: dict[str, str]
    parser: OutputParser
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageOutcome:
    """What one `run_items` call did."""

    stage: str
    total: int
    skipped: int
    ok: int = 0
    failed: int = 0
    errored: list[str] = field(default_factory=list)


@dataclass
class _Usage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    missing_usage: int = 0

    def add(self, message: BaseMessage) -> int | None:
        """Count an answer; return its total tokens (None when the server reported none)."""
        self.requests += 1
        meta = getattr(message, "usage_metadata", None)
        if not meta:
            self.missing_usage += 1
            return None
        self.input_tokens += int(meta.get("input_tokens", 0))
        self.output_tokens += int(meta.get("output_tokens", 0))
        self.total_tokens += int(meta.get("total_tokens", 0))
        return int(meta.get("total_tokens", 0))

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _ItemError(Exception):
    """A request failed for good; `final` means the item is recorded as failed."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final


def _status_code(error: BaseException) -> int | None:
    for obj in (error, getattr(error, "response", None)):
        code = getattr(obj, "status_code", None)
        if isinstance(code, int):
            return code
    return None


async def _invoke(
    model: BaseChatModel,
    messages: list[BaseMessage],
    usage: _Usage,
    settings: RunnerSettings,
    jitter: random.Random,
    call_kwargs: dict[str, Any],
) -> AIMessage:
    limits = settings.limits
    estimate = sum(len(m.text) for m in messages) // CHARS_PER_TOKEN + 1
    retry = throttled = 0
    waited = 0.0
    while True:
        await limits.wait_turn(estimate)
        try:
            answer = await model.ainvoke(messages, **call_kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            usage.requests += 1
            code = _status_code(e)
            if code in _AUTH_ERRORS:
                msg = f"The model server refused the credentials (HTTP {code}): {e}"
                raise InferenceServerError(msg) from e
            if code in _CLIENT_ERRORS:
                msg = f"HTTP {code}: {e}"
                raise _ItemError(msg, final=True) from e
            asked = retry_after_seconds(e)
            if code == _RATE_LIMITED or (code == _UNAVAILABLE and asked is not None):
                # The provider's limit, not a failure: wait as asked, retries untouched.
                delay = asked if asked is not None else _backoff(settings, throttled, jitter)
                throttled += 1
                if waited + delay <= settings.max_rate_limit_wait:
                    waited += delay
                    limits.pause(delay)
                    logger.debug("rate limited (HTTP %s), all requests wait %.2fs", code, delay)
                    continue
            if retry == settings.max_retries or code == _RATE_LIMITED:
                msg = f"{type(e).__name__}: {e}"
                raise _ItemError(msg, final=False) from e
            delay = _backoff(settings, retry, jitter)
            retry += 1
            logger.debug("request failed (%s), retry %d in %.2fs", e, retry, delay)
            await asyncio.sleep(delay)
            continue
        limits.record(estimate, usage.add(answer))
        return answer


def _backoff(settings: RunnerSettings, retry: int, jitter: random.Random) -> float:
    delay = min(settings.backoff_max, settings.backoff_base * 2.0**retry)
    return float(delay * (0.5 + jitter.random()))


async def _process(
    item: WorkItem, model: BaseChatModel, settings: RunnerSettings
) -> dict[str, Any]:
    variables = dict(item.variables)
    schema = ""
    if isinstance(item.parser, JsonOutput):
        schema = item.parser.schema_json()
        variables["schema"] = schema
        repair = load_prompt("repair_json")
    else:
        repair = load_prompt("repair_text")
    messages: list[BaseMessage] = [HumanMessage(item.prompt.format(**variables))]
    usage = _Usage()
    jitter = random.Random(item.id)  # noqa: S311 - backoff jitter only
    call_kwargs: dict[str, Any] = {}
    if settings.structured_output == "json_schema" and isinstance(item.parser, JsonOutput):
        call_kwargs["response_format"] = item.parser.response_format()
    if settings.request_seed is not None:
        call_kwargs["seed"] = int(digest(settings.request_seed, item.id, length=8), 16) % 2**31
    row: dict[str, Any] = {
        "id": item.id,
        "model": item.model,
        "prompt": item.prompt.ref,
        "meta": item.meta,
        "output": None,
        "error": None,
    }
    error = ""
    for attempt in range(1, settings.max_attempts + 1):
        try:
            answer = await _invoke(model, messages, usage, settings, jitter, call_kwargs)
        except _ItemError as e:
            if not e.final:
                raise
            error = str(e)
            break
        text = answer.text
        try:
            row["output"] = item.parser.parse(text)
        except OutputParseError as e:
            error = f"attempt {attempt}: {e}"
            row["last_answer"] = text[:_MAX_KEPT_ANSWER]
            repair_vars = {"error": str(e)}
            if schema:
                repair_vars["schema"] = schema
            messages = [*messages, AIMessage(text), HumanMessage(repair.format(**repair_vars))]
            continue
        row.pop("last_answer", None)
        row.update(status="ok", attempts=attempt, usage=usage.as_dict())
        return row
    row.update(status="failed", attempts=attempt, usage=usage.as_dict(), error=error)
    return row


async def run_items(
    stage: str,
    items: Sequence[WorkItem],
    store: JsonlStore,
    models: dict[str, BaseChatModel],
    settings: RunnerSettings,
) -> StageOutcome:
    """Run the items not yet in `store`, appending one row each (see the module docstring).

    Raises:
        SynthIncompleteError: some items failed at the transport level after all retries (their
            rows are not written; run again to retry them). Raised after the other items ran.
        InferenceServerError: the server refused the credentials.
    """
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        msg = f"Stage {stage!r} produced duplicate work-item ids; ids must be unique."
        raise ValueError(msg)
    missing = sorted({item.model for item in items} - set(models))
    if missing:
        msg = f"Stage {stage!r} needs models {missing}, only {sorted(models)} are configured."
        raise ValueError(msg)
    store.touch()
    pending = [item for item in items if item.id not in store]
    outcome = StageOutcome(stage=stage, total=len(items), skipped=len(items) - len(pending))
    if not pending:
        return outcome
    queue = iter(pending)
    consecutive = 0
    stop = asyncio.Event()
    bar = tqdm(
        total=len(items),
        initial=outcome.skipped,
        desc=stage,
        unit="req",
        disable=not settings.progress,
        dynamic_ncols=True,
    )

    async def worker() -> None:
        nonlocal consecutive
        for item in queue:
            if stop.is_set():
                return
            try:
                row = await _process(item, models[item.model], settings)
            except _ItemError as e:
                outcome.errored.append(item.id)
                consecutive += 1
                logger.warning("%s: item %s failed after retries: %s", stage, item.id, e)
                if consecutive >= settings.max_consecutive_errors:
                    stop.set()
                continue
            consecutive = 0
            store.append(row)
            if row["status"] == "ok":
                outcome.ok += 1
            else:
                outcome.failed += 1
            bar.set_postfix_str(settings.limits.describe(), refresh=False)
            bar.update()

    try:
        await asyncio.gather(*(worker() for _ in range(min(settings.concurrency, len(pending)))))
    finally:
        bar.close()
    logger.info(
        "%s: %d items done; %s", stage, outcome.ok + outcome.failed, settings.limits.describe()
    )
    if outcome.errored:
        not_started = len(pending) - outcome.ok - outcome.failed - len(outcome.errored)
        msg = (
            f"Stage {stage!r}: {len(outcome.errored)} requests failed after "
            f"{settings.max_retries} retries (e.g. {outcome.errored[0]})"
            + (f" and {not_started} were not started" if not_started else "")
            + f"; {outcome.ok + outcome.skipped} items are done and kept. Check the model "
            "server, then run the same command again to resume."
        )
        raise SynthIncompleteError(msg)
    return outcome
