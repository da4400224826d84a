"""Offline building blocks for prefix-sharing tests and benchmarks.

A byte-level tokenizer (one token per byte, built without any download), random Llama-family models,
and synthetic FSPO-shaped preference rows whose prompts and answers have exact token counts.
"""

from __future__ import annotations

import random
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    MistralConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

__all__ = ["byte_tokenizer", "random_causal_lm", "synthetic_pairs"]

_SPECIALS = ("<pad>", "<eos>", "<bos>")
_CONFIGS: dict[str, Any] = {
    "llama": LlamaConfig,
    "mistral": MistralConfig,
    "qwen2": Qwen2Config,
    "qwen3": Qwen3Config,
}


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer with one token per byte (ids 3..258) and ``<pad>``/``<eos>``/``<bos>`` = 0/1/2.

    Example:
        >>> tok = byte_tokenizer()
        >>> tok("ab c")["input_ids"]
        [67, 68, 223, 69]
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=ord)
    vocab = {token: i for i, token in enumerate(_SPECIALS)}
    vocab.update({char: len(_SPECIALS) + i for i, char in enumerate(alphabet)})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(_SPECIALS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=_SPECIALS[0],
        eos_token=_SPECIALS[1],
        bos_token=_SPECIALS[2],
    )


def random_causal_lm(
    model_type: str = "llama",
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    vocab_size: int = 259 + 5,
    attn_implementation: str = "sdpa",
    seed: int = 0,
    **config_kwargs: object,
) -> PreTrainedModel:
    """A randomly initialised decoder: ``llama``, ``mistral``, ``qwen2`` or ``qwen3``.

    Example:
        >>> model = random_causal_lm(hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1)
        >>> model.config.model_type
        'llama'
    """
    config = _CONFIGS[model_type](
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=16384,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
        **config_kwargs,
    )
    config._attn_implementation = attn_implementation  # noqa: SLF001 - the documented switch
    import torch

    torch.manual_seed(seed)
    model: PreTrainedModel = AutoModelForCausalLM.from_config(
        config, attn_implementation=attn_implementation
    )
    return model


def synthetic_pairs(
    count: int,
    prompt_tokens: int | tuple[int, int],
    answer_tokens: int | tuple[int, int],
    *,
    seed: int = 0,
) -> list[dict[str, str]]:
    """Rows ``{"prompt", "chosen", "rejected"}`` of random lowercase text, one token per byte.

    Lengths are exact token counts with `byte_tokenizer` (EOS excluded); a ``(low, high)`` pair
    draws each length uniformly, so that prompts and answers differ within a batch.

    Example:
        >>> rows = synthetic_pairs(2, 10, (3, 5), seed=1)
        >>> [len(row["prompt"]) for row in rows]
        [10, 10]
    """
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security

    def length(spec: int | tuple[int, int]) -> int:
        return spec if isinstance(spec, int) else rng.randint(*spec)

    def text(n: int) -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz     ") for _ in range(n))

    rows = []
    for _ in range(count):
        prompt = text(length(prompt_tokens))
        chosen = text(length(answer_tokens))
        rejected = text(length(answer_tokens))
        # Make the answers differ from their first token, as real pairs usually do.
        chosen, rejected = "A" + chosen[1:], "B" + rejected[1:]
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows
