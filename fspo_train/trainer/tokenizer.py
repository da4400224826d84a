"""The base model's tokenizer, and the `PromptFormat` a run trains with and saves.

The format freezes the run's rendering settings, the tokenizer's special tokens and the chat
template's hash (`style="chat"`), so that serving can detect a different template.
"""

from __future__ import annotations

import logging
from typing import Any

from fspo_train.trainer.config import FSPOTrainConfig
from langchain_fspo.errors import PromptFormatError
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["build_prompt_format", "chat_template_is_dated", "load_tokenizer"]

logger = logging.getLogger(__name__)


def load_tokenizer(config: FSPOTrainConfig) -> Any:
    """The base model's tokenizer (pad token = EOS when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        config.model_name_or_path, revision=config.base_model_revision
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


_DATE_FORMATS = ("%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%B %d, %Y", "%b %d, %Y")


def chat_template_is_dated(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template writes today's date into the prompt.

    Llama 3.x templates do (`strftime_now`): a prompt rendered at training time then differs
    from the same prompt rendered at serving time, by the date's tokens.
    """
    from datetime import UTC, datetime

    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return False
    if "strftime_now" in template:
        return True
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False
        )
    except Exception:  # noqa: BLE001 - a template that cannot render is reported elsewhere
        return False
    now = datetime.now(tz=UTC)
    return any(now.strftime(f) in str(text) for f in _DATE_FORMATS)


def build_prompt_format(config: FSPOTrainConfig, tokenizer: Any) -> PromptFormat:
    """The `PromptFormat` a run trains with and saves (special tokens, template hash)."""
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(token, "special", False):
            special.add(str(token.content))
    template_sha = None
    if config.style == "chat":
        template = getattr(tokenizer, "chat_template", None)
        if not template:
            msg = (
                f"The tokenizer of {config.model_name_or_path!r} has no chat template, which "
                "`style: chat` needs. Use `style: paper` (raw markdown) or a tokenizer with one."
            )
            raise PromptFormatError(msg)
        if not isinstance(template, str):
            msg = "Tokenizers with several named chat templates are not supported; pick one."
            raise PromptFormatError(msg)
        template_sha = PromptFormat.template_sha256(template)
        if chat_template_is_dated(tokenizer):
            logger.warning(
                "The chat template of %s writes today's date into every prompt, so serving on "
                "another day renders a few different tokens than training did. Serve with the "
                "date fixed (e.g. `date_string` in the template kwargs) or use `style: paper`.",
                config.model_name_or_path,
            )
    return PromptFormat(
        style=config.style,
        num_shots=config.num_shots,
        include_rejected=config.include_rejected,
        rationale=config.rationale,
        system_prompt=config.system_prompt,
        base_model_id=config.model_name_or_path,
        base_model_revision=config.base_model_revision,
        chat_template_sha256=template_sha,
        max_prompt_tokens=config.max_prompt_tokens,
        special_tokens=tuple(sorted(t for t in special if len(t) > 1)),
    )
