"""The from-scratch base-LM stage, on the second (non-review) domain: the harness is generic."""

from __future__ import annotations

from pathlib import Path

import pytest

from fspo_train.reviews_mini.data import build_records
from langchain_fspo.prompt_format import PromptFormat
from tests.train.reviews_mini.test_domain import Recipes

pytestmark = pytest.mark.train


def test_documents_are_rendered_prompts_with_random_answers(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from fspo_train.reviews_mini.base_lm import base_lm_documents

    domain = Recipes()
    records = build_records(domain, domain.users("trained"), pairs_per_question=3)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    fmt = PromptFormat(style="chat", num_shots=2)
    docs = base_lm_documents(domain, records, fmt, tokenizer, n=30, seed=0)
    assert len(docs) == 30
    assert all(d.startswith("<s><|user|>\n") and d.endswith("</s>") for d in docs)
    answers = ("<|assistant|>\nFor ", "<|assistant|>\n## User Description\n")
    assert all("# Task\n" in d and any(a in d for a in answers) for d in docs)
    assert any("# Example 2\n" in d for d in docs)
    assert any("# Example 1\n" not in d for d in docs)  # 0-shot documents too
    # Some documents use the RAT layout, with a training user's description first.
    descriptions = {r.user_description for r in records}
    rat = [d for d in docs if "## User Description\n" in d]
    assert 0 < len(rat) < len(docs)
    for doc in rat:
        written = doc.split("## User Description\n", 1)[1].split("\n", 1)[0]
        assert written in descriptions
    assert docs == base_lm_documents(domain, records, fmt, tokenizer, n=30, seed=0)


def test_base_lm_trains_from_scratch_on_another_domain(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fspo_train.reviews_mini.base_lm import BaseLMConfig, train_base_lm

    domain = Recipes()
    records = build_records(domain, domain.users("trained"), pairs_per_question=3)
    fmt = PromptFormat(style="chat", num_shots=2)
    config = BaseLMConfig(vocab_size=600, hidden_size=32, num_layers=1, steps=3, batch_size=4)
    folder = train_base_lm(domain, records, tmp_path / "base", config, fmt)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    # The domain's words and the format's markers are in the tokenizer it built.
    assert len(tokenizer("Simmer gently.", add_special_tokens=False)["input_ids"]) < 14 // 2
    ids = tokenizer.apply_chat_template(
        fmt.render([], "How do I make soup?").messages,
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
