"""What `LocalBackend`'s mixins (`_local_rows`, `_local_streaming`) use of the backend.

The model, the tokenizer and the locked `generate` live in `local.LocalBackend`; the mixins
declare them here once, for the type checker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_fspo.backends.base import GenerationParams
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["LocalModelParts"]


class LocalModelParts:
    """The parts of `LocalBackend` its batching and streaming mixins call."""

    tokenizer: Any
    device: str
    default_max_tokens: int
    _eos_ids: list[int]

    if TYPE_CHECKING:

        def check_adapter(self, adapter: str | None) -> None: ...

        def encode_prompt(self, prompt: RenderedPrompt) -> list[int]: ...

        def _generate_locked(
            self,
            input_ids: Any,
            attention_mask: Any,
            adapter: str | None,
            seed: int | None,
            kwargs: dict[str, Any],
        ) -> Any: ...

        def _decode(self, ids: list[int]) -> str: ...

        def _max_new(self, params: GenerationParams) -> int: ...

        def _model_name(self, adapter: str | None) -> str: ...
