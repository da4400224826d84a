"""Turn episodes into token ids exactly as serving will tokenize the prompt.

- `style="paper"`: `tokenizer(prompt_text, add_special_tokens=False)` (no BOS, as the official
  code), completion = `tokenizer(completion_text, add_special_tokens=False)` + EOS, tokenized
  separately and concatenated, as the official DPO codebase does.
- `style="chat"`: prompt = `apply_chat_template(messages, add_generation_prompt=True)`, which is
  what TGI/vLLM compute for `/v1/chat/completions`; the completion is the rest of the template
  rendered with the assistant message appended.

Over `max_length` an episode loses its oldest shots (through `PromptFormat.render` with
`reserve_tokens` = the longer completion), never its response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fspo_train.data.episodes import Episode
from langchain_fspo.errors import InvalidExampleError, PromptBudgetError, PromptFormatError
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt

__all__ = [
    "TokenizedEpisode",
    "completion_token_ids",
    "prompt_token_ids",
    "token_counter",
    "tokenize_episode",
]


@dataclass(frozen=True)
class TokenizedEpisode:
    """Token ids of one episode: the prompt and both completions."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    rendered: RenderedPrompt
    dropped_shots: int
    """Shots of the episode left out (the format's K cap or the token budget)."""


def _ids(encoded: Any) -> list[int]:
    ids = encoded["input_ids"] if not isinstance(encoded, list) else encoded
    return [int(i) for i in ids]


def _chat_ids(tokenizer: Any, messages: list[dict[str, Any]], *, generation: bool) -> list[int]:
    return _ids(
        tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation, tokenize=True, return_dict=True
        )
    )


def prompt_token_ids(fmt: PromptFormat, tokenizer: Any, rendered: RenderedPrompt) -> list[int]:
    """The prompt token ids serving computes for `rendered` (see the module docstring)."""
    if fmt.style == "paper":
        return _ids(tokenizer(rendered.text, add_special_tokens=False))
    return _chat_ids(tokenizer, rendered.messages, generation=True)


def completion_token_ids(
    fmt: PromptFormat,
    tokenizer: Any,
    rendered: RenderedPrompt,
    completion: str,
    prompt_ids: list[int] | None = None,
) -> list[int]:
    """Token ids of `completion` (a `PromptFormat.completion` text) after the prompt.

    Raises:
        PromptFormatError: chat style and the template does not render the prompt as a prefix
            of prompt + answer (training would then see a different context than serving).
    """
    if fmt.style == "paper":
        if tokenizer.eos_token_id is None:
            msg = "The tokenizer has no EOS token; `style='paper'` ends each response with EOS."
            raise PromptFormatError(msg)
        return [*_ids(tokenizer(completion, add_special_tokens=False)), int(tokenizer.eos_token_id)]
    if prompt_ids is None:
        prompt_ids = prompt_token_ids(fmt, tokenizer, rendered)
    messages = [*rendered.messages, {"role": "assistant", "content": completion}]
    full = _chat_ids(tokenizer, messages, generation=False)
    if full[: len(prompt_ids)] != prompt_ids:
        msg = (
            "The chat template renders the prompt differently when an assistant answer follows "
            "(the generation prompt is not a prefix of prompt + answer), so training would not "
            "see the prompt serving sends. Use a template without that behaviour, or style='paper'."
        )
        raise PromptFormatError(msg)
    return full[len(prompt_ids) :]


def token_counter(fmt: PromptFormat, tokenizer: Any) -> Callable[[str], int]:
    """A `count_tokens` for `PromptFormat.render` that counts exactly what serving sends."""
    if fmt.style == "paper":
        return lambda text: len(_ids(tokenizer(text, add_special_tokens=False)))
    system = fmt.system_prompt

    def count(countable: str) -> int:
        messages: list[dict[str, Any]] = []
        text = countable
        if system:
            text = countable[len(system) + 1 :]
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": text})
        return len(_chat_ids(tokenizer, messages, generation=True))

    return count


def tokenize_episode(
    fmt: PromptFormat,
    tokenizer: Any,
    episode: Episode,
    *,
    max_length: int,
) -> TokenizedEpisode:
    """Render and tokenize `episode`; drop its oldest shots if prompt + response > `max_length`.

    Under RAT (`fmt.rationale == "user_description"`) both completions start with the query's
    user description (so its log-probability cancels in the preference loss, and Pref-FT
    teaches the model to write it).

    Raises:
        InvalidExampleError: RAT without a `user_description` on the query record.
        PromptBudgetError: even with zero shots the question and response do not fit.
    """
    query = episode.query
    description = None
    if fmt.rationale == "user_description":
        description = query.user_description
        if description is None:
            msg = (
                f"rationale='user_description' needs a `user_description` on every record; "
                f"user {episode.user_id!r} has none."
            )
            raise InvalidExampleError(msg)
    shots = [record.to_example() for record in episode.shots]
    counter = token_counter(fmt, tokenizer)
    rendered = fmt.render(
        shots, query.question, count_tokens=counter if fmt.max_prompt_tokens else None
    )
    chosen_text = fmt.completion(query.chosen, user_description=description)
    rejected_text = fmt.completion(query.rejected, user_description=description)

    def encode(r: RenderedPrompt) -> tuple[list[int], list[int], list[int]]:
        prompt = prompt_token_ids(fmt, tokenizer, r)
        chosen = completion_token_ids(fmt, tokenizer, r, chosen_text, prompt)
        rejected = completion_token_ids(fmt, tokenizer, r, rejected_text, prompt)
        return prompt, chosen, rejected

    prompt_ids, chosen_ids, rejected_ids = encode(rendered)
    reserve = max(len(chosen_ids), len(rejected_ids))
    if len(prompt_ids) + reserve > max_length:
        budget_fmt = fmt.model_copy(update={"max_prompt_tokens": max_length})
        rendered = budget_fmt.render(
            rendered.shots, query.question, count_tokens=counter, reserve_tokens=reserve
        )
        prompt_ids, chosen_ids, rejected_ids = encode(rendered)
        longest = len(prompt_ids) + max(len(chosen_ids), len(rejected_ids))
        if longest > max_length:
            msg = (
                f"Episode of user {episode.user_id!r} is {longest} tokens with "
                f"{len(rendered.shots)} shots, over `max_length`={max_length}."
            )
            raise PromptBudgetError(msg)
    return TokenizedEpisode(
        prompt_ids=prompt_ids,
        chosen_ids=chosen_ids,
        rejected_ids=rejected_ids,
        rendered=rendered,
        dropped_shots=len(shots) - len(rendered.shots),
    )
