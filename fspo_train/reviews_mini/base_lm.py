"""The base-LM stage: a tiny Llama trained from scratch on a domain's text.

There is no pretrained model to start from here, so the harness makes one: a byte-level BPE
tokenizer and a random Llama (`fspo_train.testing.build_tiny_base_model`), then causal-LM
training on documents that look like what the model will read and write: FSPO prompts rendered with
`PromptFormat` (0 to K shots of the training users' records, through the tokenizer's chat
template) followed by a response to the query. A quarter of them use the RAT layout: a training
user's description comes first and the response follows it, so the base model can follow a
stated preference, as an instruct model does. Of the others that have shots, half
(`BaseLMConfig.agreeing_fraction`) answer the way the shots' user prefers and the rest at
random: a pretrained LM has some in-context ability, so few-shot prompting is a real
baseline; the preference stages must add more than that. It plays the role of the paper's
Llama 3.2 3B Instruct.

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
from typing import Any, Literal

from fspo_train.data.records import PreferenceRecord
from fspo_train.reviews_mini.domain import Domain, Question
from langchain_fspo.prompt_format import PromptFormat

__all__ = [
    "BaseLMConfig",
    "Layout",
    "PlannedDocument",
    "base_lm_documents",
    "plan_documents",
    "render_document",
    "train_base_lm",
]

Layout = Literal["random", "agreeing", "rat"]

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
    agreeing_fraction: float = 0.5
    """Share of the documents with shots (RAT ones aside) whose answer agrees with the
    shots' user (`plan_documents`): the base LM's in-context ability, so that few-shot
    prompting is a real baseline (0: the shots never tell it anything)."""
    seed: int = 0


@dataclass(frozen=True)
class PlannedDocument:
    """One base-LM training document before rendering: whose shots, which answer, which layout."""

    user_id: str
    """The training user whose records are the shots."""
    shots: tuple[PreferenceRecord, ...]
    question: Question
    layout: Layout
    """`random`: a random response; `agreeing`: a response written to the shots' user's
    preferences (in-context ability); `rat`: a training user's description, then a response
    written to it."""
    response: str
    description: str | None = None
    """The user description a `rat` document's answer starts with."""


def plan_documents(
    domain: Domain,
    records: Sequence[PreferenceRecord],
    num_shots: int,
    n: int,
    seed: int,
    *,
    rationale_fraction: float = 0.25,
    agreeing_fraction: float = 0.0,
) -> list[PlannedDocument]:
    """`n` documents: 0..`num_shots` shots of one training user, a question and an answer.

    A `rationale_fraction` of them use the RAT layout (`PlannedDocument.layout`); of the
    others that have shots, an `agreeing_fraction` answer the way the shots' user prefers
    (the continuation agrees with the shots, as in-context examples of a pretrained LM often
    do), the rest answer at random.
    """
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not secrets
    by_user: dict[str, list[PreferenceRecord]] = {}
    for record in records:
        by_user.setdefault(record.user_id, []).append(record)
    users = sorted(by_user)
    described = [domain.user(u) for u in users if by_user[u][0].user_description]
    questions = domain.questions("train")
    docs = []
    for _ in range(n):
        user_id = rng.choice(users)
        rows = by_user[user_id]
        k = rng.randint(0, min(num_shots, len(rows)))
        shots = tuple(rng.sample(rows, k))
        question = rng.choice(questions)
        if described and rng.random() < rationale_fraction:
            user = rng.choice(described)
            response = domain.generate(question, rng, dict(user.weights))
            docs.append(
                PlannedDocument(user_id, shots, question, "rat", response, user.description)
            )
        elif k and agreeing_fraction and rng.random() < agreeing_fraction:
            # (no draw at 0: the documents of the earlier, all-random mix are reproduced)
            weights = dict(domain.user(user_id).weights)
            response = domain.generate(question, rng, weights)
            docs.append(PlannedDocument(user_id, shots, question, "agreeing", response))
        else:
            response = domain.generate(question, rng)
            docs.append(PlannedDocument(user_id, shots, question, "random", response))
    return docs


def render_document(doc: PlannedDocument, prompt_format: PromptFormat, tokenizer: Any) -> str:
    """The text the base LM trains on: the rendered prompt, the answer, end of sequence."""
    fmt = prompt_format
    if doc.layout == "rat":
        fmt = prompt_format.model_copy(update={"rationale": "user_description"})
    rendered = fmt.render([r.to_example() for r in doc.shots], doc.question.text)
    if fmt.style == "chat":
        prompt = tokenizer.apply_chat_template(
            rendered.messages, tokenize=False, add_generation_prompt=True
        )
    else:
        prompt = rendered.text
    answer = fmt.completion(doc.response, user_description=doc.description)
    return f"{prompt}{answer}{tokenizer.eos_token}"


def base_lm_documents(
    domain: Domain,
    records: Sequence[PreferenceRecord],
    prompt_format: PromptFormat,
    tokenizer: Any,
    n: int,
    seed: int,
    rationale_fraction: float = 0.25,
    agreeing_fraction: float = 0.0,
) -> list[str]:
    """`n` rendered training documents (`plan_documents`, then `render_document`).

    The shots of RAT documents are drawn independently of the description, so nothing
    teaches the base model which description fits which shots; `agreeing` documents do
    teach it that shots carry information about the answer wanted.
    """
    plan = plan_documents(
        domain,
        records,
        prompt_format.num_shots,
        n,
        seed,
        rationale_fraction=rationale_fraction,
        agreeing_fraction=agreeing_fraction,
    )
    return [render_document(doc, prompt_format, tokenizer) for doc in plan]


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
    docs = base_lm_documents(
        domain,
        records,
        prompt_format,
        tokenizer,
        n_docs,
        config.seed,
        agreeing_fraction=config.agreeing_fraction,
    )
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
