"""The base-LM stage: a tiny Llama trained from scratch on a domain's text.

There is no pretrained model to start from here, so the harness makes one: a byte-level BPE
tokenizer and a random Llama (`fspo_train.testing.build_tiny_base_model`), then causal-LM
training on documents that look like what the model will read and write: FSPO prompts rendered with
`PromptFormat` (0 to K shots of the training users' records, through the tokenizer's chat
template) followed by a *random* response to the query. A quarter of them use the RAT layout:
a training user's description comes first and the response follows it, so the base model can
follow a stated preference, as an instruct model does. Nothing teaches it to infer the user
from the shots and answer the way they prefer: that is what the preference stages add. It
plays the role of the paper's Llama 3.2 3B Instruct.

Example:
    >>> import tempfile
    >>> from fspo_train.reviews_mini.reviews import ReviewsMini
    >>> from fspo_train.reviews_mini.data import build_records
    >>> domain = ReviewsMini(num_questions=20)
    >>> recs = build_records(domain, domain.users("trained"), seed=0)
    >>> cfg = BaseLMConfig(steps=2, batch_size=2, hidden_size=32, num_layers=1)
    >>> path = train_base_lm(domain, recs, tempfile.mkdtemp(), cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fspo_train.data.records import PreferenceRecord
from fspo_train.reviews_mini.domain import Domain
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["BaseLMConfig", "base_lm_documents", "train_base_lm"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseLMConfig:
    """Size and schedule of the from-scratch base model."""

    vocab_size: int = 1024
    """BPE vocabulary (large enough that the domain's words are single tokens)."""
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4
    """MLP width as a multiple of `hidden_size`."""
    initializer_range: float = 0.02
    """Std of the initial weights (the usual 0.02; the serving tests' random models use 0.5,
    which leaves a model trained from scratch unable to copy a title after 600 steps)."""
    steps: int = 1500
    """Optimizer steps of causal-LM training."""
    batch_size: int = 16
    learning_rate: float = 3e-3
    """AdamW peak learning rate (linear warmup over 10% of the steps, then linear decay)."""
    num_documents: int = 0
    """Distinct documents rendered (0: `steps * batch_size`, each seen once)."""
    seed: int = 0


def base_lm_documents(
    domain: Domain,
    records: Sequence[PreferenceRecord],
    prompt_format: PromptFormat,
    tokenizer: Any,
    n: int,
    seed: int,
    rationale_fraction: float = 0.25,
) -> list[str]:
    """`n` training documents: a rendered prompt with 0..K shots, then a random response.

    A `rationale_fraction` of them use the RAT layout: the answer starts with a training
    user's description and goes on with a response written to it, as an instruct model
    follows a stated preference. The shots of those documents are drawn independently of the
    description, so nothing teaches the base model which description fits which shots.
    """
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not secrets
    by_user: dict[str, list[PreferenceRecord]] = {}
    for record in records:
        by_user.setdefault(record.user_id, []).append(record)
    users = sorted(by_user)
    described = [domain.user(u) for u in users if by_user[u][0].user_description]
    rat_format = prompt_format.model_copy(update={"rationale": "user_description"})
    questions = domain.questions("train")
    docs = []
    for _ in range(n):
        rows = by_user[rng.choice(users)]
        k = rng.randint(0, min(prompt_format.num_shots, len(rows)))
        shots = [r.to_example() for r in rng.sample(rows, k)]
        question = rng.choice(questions)
        rat = bool(described) and rng.random() < rationale_fraction
        fmt = rat_format if rat else prompt_format
        rendered = fmt.render(shots, question.text)
        if fmt.style == "chat":
            prompt = tokenizer.apply_chat_template(
                rendered.messages, tokenize=False, add_generation_prompt=True
            )
        else:
            prompt = rendered.text
        if rat:
            user = rng.choice(described)
            response = domain.generate(question, rng, dict(user.weights))
            answer = fmt.completion(response, user_description=user.description)
        else:
            answer = fmt.completion(domain.generate(question, rng))
        docs.append(prompt + answer + tokenizer.eos_token)
    return docs


def train_base_lm(
    domain: Domain,
    records: Sequence[PreferenceRecord],
    out_dir: str | Path,
    config: BaseLMConfig,
    prompt_format: PromptFormat,
) -> Path:
    """Build the tokenizer and a random tiny Llama, train it as a causal LM, save to `out_dir`.

    Args:
        domain: Supplies the tokenizer corpus, questions and random responses.
        records: Training users' records, used as the shots of the documents.
        out_dir: Where the model and tokenizer are written (a Hub-like folder).
        config: Model size and schedule.
        prompt_format: How documents are rendered (the same format as FSPO training).

    Returns:
        `out_dir` as a `Path`.
    """
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    from fspo_train.testing.tiny import build_tiny_base_model

    out = Path(out_dir)
    rng = random.Random(config.seed)  # noqa: S311 - seeded sampling, not secrets
    corpus = domain.corpus(rng)
    # Rendered prompts teach the tokenizer the format's markers as whole tokens.
    fmt_rng = random.Random(config.seed + 1)  # noqa: S311 - seeded sampling, not secrets
    rat_format = prompt_format.model_copy(update={"rationale": "user_description"})
    for record in fmt_rng.sample(list(records), min(64, len(records))):
        shot = record.to_example()
        for fmt in (prompt_format, rat_format):
            corpus.append(fmt.render([shot, shot], record.question).text)
            corpus.append(fmt.completion(record.chosen, user_description=record.user_description))
    build_tiny_base_model(
        out,
        corpus=corpus,
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        seed=config.seed,
        initializer_range=config.initializer_range,
        mlp_ratio=config.mlp_ratio,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    n_docs = config.num_documents or config.steps * config.batch_size
    docs = base_lm_documents(domain, records, prompt_format, tokenizer, n_docs, config.seed)
    encoded = Dataset.from_dict({"text": docs}).map(
        lambda b: tokenizer(b["text"], add_special_tokens=False),
        batched=True,
        remove_columns=["text"],
    )
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(str(out))
    args = TrainingArguments(
        output_dir=str(out / "_trainer"),
        per_device_train_batch_size=config.batch_size,
        max_steps=config.steps,
        learning_rate=config.learning_rate,
        warmup_steps=max(1, config.steps // 10),
        lr_scheduler_type="linear",
        weight_decay=0.0,
        logging_steps=max(1, config.steps // 10),
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=True,
        train_sampling_strategy="group_by_length",
    )
    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)
    trainer = Trainer(model=model, args=args, train_dataset=encoded, data_collator=collator)
    result = trainer.train()
    logger.info("Base LM: %d steps, final loss %.3f", config.steps, result.training_loss)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
