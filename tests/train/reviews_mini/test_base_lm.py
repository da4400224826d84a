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


def test_document_mix_has_the_agreeing_fraction_and_agreeing_answers_fit_the_shots() -> None:
    """Part of the documents answer the way their shots' user prefers (in-context ability)."""
    from fspo_train.reviews_mini.base_lm import PlannedDocument, plan_documents
    from fspo_train.reviews_mini.reviews import ReviewsMini

    domain = ReviewsMini(num_questions=40)
    records = build_records(domain, domain.users("trained"), seed=0)
    plan = plan_documents(domain, records, 4, n=2000, seed=0, agreeing_fraction=0.5)
    layouts = [d.layout for d in plan]
    assert 0.2 < layouts.count("rat") / len(plan) < 0.3
    with_shots = [d for d in plan if d.layout != "rat" and d.shots]
    agreeing = [d for d in with_shots if d.layout == "agreeing"]
    assert 0.45 < len(agreeing) / len(with_shots) < 0.55
    assert all(d.shots for d in agreeing)  # nothing to agree with in a 0-shot document
    for doc in plan:
        assert {r.user_id for r in doc.shots} <= {doc.user_id}

    def mean_utility(docs: list[PlannedDocument]) -> float:
        users = {u.id: u for u in domain.users()}
        return sum(domain.utility(users[d.user_id], d.question, d.response) for d in docs) / len(
            docs
        )

    # An agreeing answer is what the shots' user prefers, far more than a random one.
    randoms = [d for d in with_shots if d.layout == "random"]
    assert mean_utility(agreeing) > mean_utility(randoms) + 0.5
    # The earlier all-random mix: no agreeing document at all.
    none = plan_documents(domain, records, 4, n=500, seed=0, agreeing_fraction=0.0)
    assert "agreeing" not in {d.layout for d in none}


def test_default_base_lm_config_teaches_some_in_context_ability() -> None:
    from fspo_train.reviews_mini import BenchConfig
    from fspo_train.reviews_mini.base_lm import BaseLMConfig

    assert 0.0 < BaseLMConfig().agreeing_fraction < 1.0
    assert BenchConfig.tiny().base.agreeing_fraction == BaseLMConfig().agreeing_fraction
    # The make-demo size keeps the base its stages were tuned on until they are re-tuned.
    assert BenchConfig.cpu().base.agreeing_fraction == 0.0
