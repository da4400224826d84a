"""Tiny random Llama models, tokenizers and LoRA adapters, built offline in a second.

Tests, the demo and the benchmarks cannot download models here, so they build their own: a
byte-level BPE tokenizer trained on a small corpus, a 2-layer Llama with random weights, and
LoRA adapters whose weights really change the outputs. The folders look like Hub repos
(`config.json`, `model.safetensors`, `tokenizer.json`, ...; `adapter_config.json`,
`adapter_model.safetensors`, `fspo_format.json`), so the production loading code runs on them.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> base = build_tiny_base_model(root / "base")
    >>> adapter = build_tiny_adapter(base, root / "adapter")
    >>> sorted(p.name for p in adapter.iterdir())
    ['adapter_config.json', 'adapter_model.safetensors', 'fspo_format.json']
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from langchain_fspo.artifact import ADAPTER_CONFIG_FILENAME
from langchain_fspo.prompt_format import PromptFormat

__all__ = [
    "DEFAULT_CHAT_TEMPLATE",
    "DEFAULT_CORPUS",
    "TINY_SPECIAL_TOKENS",
    "build_tiny_adapter",
    "build_tiny_base_model",
]

logger = logging.getLogger(__name__)

BOS_TOKEN = "<s>"  # noqa: S105 - a token, not a secret
EOS_TOKEN = "</s>"  # noqa: S105
PAD_TOKEN = "<pad>"  # noqa: S105
UNK_TOKEN = "<unk>"  # noqa: S105
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
TINY_SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, *ROLE_TOKENS)
"""Special tokens of the tiny tokenizer, in id order (pad is 0)."""

DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
"""A Zephyr-like template: `<s><|user|>\\n...</s>\\n<|assistant|>\\n`."""

DEFAULT_CORPUS: tuple[str, ...] = (
    (
        "# Example 1\n## Question \nWhat should I cook tonight?\n## Preferred Response \n"
        "A quick vegetable curry with rice.\n## Dispreferred Response \nOrder a pizza.\n"
    ),
    (
        "# Task\nGiven the examples above, generate a preferred response to the following "
        "question.\n## Question \nRecommend a book for a long flight.\n"
    ),
    "Generate a response to the following question.\n## Response \n## User Description\n",
    (
        "Generate a user description based on the examples above. Then, generate a preferred "
        "response to the following question.\n"
    ),
    "The user prefers short, direct answers with concrete examples and no jargon.",
    "She likes science fiction, long walks in the park, and strong black coffee.",
    "He would rather read a detailed explanation than a one-line summary.",
    "Explain photosynthesis to a five year old: plants eat sunlight to make sugar.",
    "Review the movie 'Dune': a slow but beautiful epic about power and sand.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.",
    "Write a haiku about autumn leaves falling on a quiet river at dawn.",
    "Please summarise the meeting notes: budget approved, launch moved to May.",
    "How do I learn to program? Start with Python, build small projects, read code.",
    "I think the answer is yes, because the evidence points that way, but I am not sure.",
    "Thank you! That was helpful. Could you give me one more example, please?",
    "Numbers and symbols: 0 1 2 3 4 5 6 7 8 9 + - * / = ( ) [ ] { } < > | ' \" , . ; : ? !",
)
"""A small English corpus with the FSPO markers, enough for a few hundred BPE merges."""


def _train_tokenizer(corpus: Iterable[str], vocab_size: int, chat_template: str) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(TINY_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        additional_special_tokens=list(ROLE_TOKENS),
        padding_side="left",
        model_max_length=4096,
    )
    fast.chat_template = chat_template
    return fast


def build_tiny_base_model(
    out_dir: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_position_embeddings: int = 4096,
    seed: int = 0,
    chat_template: str = DEFAULT_CHAT_TEMPLATE,
    initializer_range: float = 0.5,
    mlp_ratio: int = 2,
) -> Path:
    """Build a random-weight Llama and its byte-level BPE tokenizer into `out_dir`.

    Args:
        out_dir: Folder to write (created). It then loads with `AutoModelForCausalLM` and
            `AutoTokenizer.from_pretrained(out_dir)`, like a Hub model.
        corpus: Texts to train the tokenizer on; `DEFAULT_CORPUS` when None.
        vocab_size: Target vocabulary size (bytes + special tokens + merges).
        hidden_size: Model width (keep it tiny: 32-64).
        num_layers: Decoder layers.
        num_heads: Attention heads (`hidden_size` must be divisible by it).
        max_position_embeddings: Longest sequence (RoPE; long FSPO prompts fit).
        seed: Seed of the random weights; the same seed gives the same files.
        chat_template: Jinja chat template stored in the tokenizer.
        initializer_range: Std of the random weights. The default 0.5 makes an *untrained*
            model's greedy outputs differ between prompts and adapters (what serving tests
            need); a model that will be trained from scratch wants the usual 0.02.
        mlp_ratio: MLP width as a multiple of `hidden_size`.

    Returns:
        `out_dir` as a `Path`.

    Example:
        >>> import tempfile
        >>> from transformers import AutoTokenizer
        >>> folder = build_tiny_base_model(tempfile.mkdtemp())
        >>> AutoTokenizer.from_pretrained(folder).eos_token
        '</s>'
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if hidden_size % num_heads:
        msg = f"`hidden_size`={hidden_size} must be divisible by `num_heads`={num_heads}."
        raise ValueError(msg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(
        DEFAULT_CORPUS if corpus is None else corpus, vocab_size, chat_template
    )
    tokenizer.save_pretrained(str(out))  # type: ignore[attr-defined]
    config = LlamaConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=hidden_size,
        intermediate_size=hidden_size * mlp_ratio,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
        tie_word_embeddings=False,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(str(out))
    logger.info("Built a tiny Llama (%d layers, width %d) in %s", num_layers, hidden_size, out)
    return out


def build_tiny_adapter(
    base_dir: str | Path,
    out_dir: str | Path,
    *,
    prompt_format: PromptFormat | None = None,
    seed: int = 0,
    r: int = 4,
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"),
) -> Path:
    """Write a LoRA adapter for the tiny model in `base_dir` to `out_dir`.

    The LoRA B matrices are random (not PEFT's zero init), so the adapter changes the logits;
    two seeds give two adapters that answer differently.

    Args:
        base_dir: A folder from `build_tiny_base_model`; recorded as the adapter's
            `base_model_name_or_path` (absolute path).
        out_dir: Folder to write (created).
        prompt_format: Saved as `fspo_format.json`. Default: `style="chat"` with the base
            tokenizer's chat-template hash, special tokens and base model id filled in.
        seed: Seed of the LoRA weights.
        r: LoRA rank.
        target_modules: Llama projections the adapter wraps.

    Returns:
        `out_dir` as a `Path`.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = Path(base_dir).resolve()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        lora_dropout=0.0,
        target_modules=list(target_modules),
        init_lora_weights=False,  # random A and B: the adapter must change the outputs
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(str(out))
    (out / "README.md").unlink(missing_ok=True)  # PEFT's empty model-card stub
    # PEFT records the path the base was loaded from; pin the absolute path explicitly.
    config_path = out / ADAPTER_CONFIG_FILENAME
    data = json.loads(config_path.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = str(base)
    config_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if prompt_format is None:
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        template = tokenizer.chat_template
        prompt_format = PromptFormat(
            style="chat",
            num_shots=4,
            base_model_id=str(base),
            chat_template_sha256=PromptFormat.template_sha256(template) if template else None,
            special_tokens=tuple(tokenizer.all_special_tokens),
        )
    prompt_format.save_pretrained(out)
    logger.info("Built a tiny LoRA adapter (r=%d, seed %d) in %s", r, seed, out)
    return out
