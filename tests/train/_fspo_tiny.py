"""A tiny Llama + byte-level BPE tokenizer with a chat template, built offline for tests.

Stand-in until `fspo_train.tiny.build_tiny_base_model` lands on main; the tests call
`tiny_model_dir(root)`, which builds once per directory and reuses the folder.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

CORPUS = [
    "# Example 1\n## Question \nWhat is a star?\n## Preferred Response \nA ball of gas.\n",
    (
        "## Dispreferred Response \nA light.\n\n# Task\nGiven the examples above, "
        "generate a preferred response to the following question.\n"
        "## Question \nWhy is the sky blue?\n"
    ),
    "Generate a user description based on the examples above. Then, generate a response.\n",
    (
        "## User Description\nThe user is a child. The user is an expert. "
        "This user prefers positive and concise reviews.\n"
    ),
    "The quick brown fox jumps over the lazy dog. Explain it like I am five years old.",
]


def tiny_model_dir(root: Path) -> Path:
    """Build (once) and return a folder holding a 2-layer Llama and its tokenizer."""
    out = root / "tiny-llama"
    if (out / "config.json").is_file():
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>"
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=hf_tok.pad_token_id,
        eos_token_id=hf_tok.eos_token_id,
        bos_token_id=hf_tok.bos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out
