"""Stage 2, questions: human seed questions plus LLM augmentation, global and persona-specific.

Global questions are the seeds plus batches written by the question-writer model, each batch
shown a seeded sample of seeds as examples. Trait domains also get `specific_per_user` questions
per persona, tied to its traits (retirement for an older user). Questions are de-duplicated by
normalised text; the first occurrence (seeds, then batches, then personas, in id order) wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fspo_train.synth.context import SynthContext
from fspo_train.synth.ids import digest, normalize_text, rng
from fspo_train.synth.prompts import load_prompt
from fspo_train.synth.runner import StageOutcome, WorkItem, run_items
from fspo_train.synth.schemas import JsonOutput, QuestionsOut
from fspo_train.synth.stages.personas import User, load_users

__all__ = ["Question", "load_questions", "run_questions"]

FILE = "questions.jsonl"


@dataclass(frozen=True)
class Question:
    """One question; `owner` is the persona a specific question was written for."""

    question_id: str
    text: str
    source: str
    owner: str | None = None


def _seeds(ctx: SynthContext) -> list[str]:
    seeds = ctx.domain.questions.seeds
    count = ctx.domain.questions.global_count
    if count >= len(seeds):
        return list(seeds)
    keep = sorted(rng(ctx.seed, "seeds").sample(range(len(seeds)), count))
    return [seeds[i] for i in keep]


def _examples(ctx: SynthContext, *key: object) -> str:
    seeds = ctx.domain.questions.seeds
    k = min(ctx.domain.questions.examples_per_batch, len(seeds))
    return "\n".join(f"- {q}" for q in rng(ctx.seed, "examples", *key).sample(seeds, k))


def _batch_sizes(ctx: SynthContext) -> list[int]:
    cfg = ctx.domain.questions
    missing = max(0, cfg.global_count - len(_seeds(ctx)))
    batches = math.ceil(missing / cfg.batch_size)
    return [min(cfg.batch_size, missing - b * cfg.batch_size) for b in range(batches)]


def _items(ctx: SynthContext, users: list[User]) -> list[WorkItem]:
    cfg = ctx.domain.questions
    parser = JsonOutput(QuestionsOut)
    items = [
        WorkItem(
            id=f"qg-{b:06d}",
            model=ctx.question_writer,
            prompt=load_prompt("questions"),
            variables={
                "domain_description": ctx.domain.description,
                "question_instructions": cfg.instructions,
                "examples": _examples(ctx, "global", b),
                "n": str(n),
                "batch": str(b + 1),
            },
            parser=parser,
            meta={"batch": b, "n": n},
        )
        for b, n in enumerate(_batch_sizes(ctx))
    ]
    if cfg.specific_per_user:
        items += [
            WorkItem(
                id=f"qs-{user.user_id}",
                model=ctx.question_writer,
                prompt=load_prompt("specific_questions"),
                variables={
                    "domain_description": ctx.domain.description,
                    "persona": user.description,
                    "examples": _examples(ctx, "specific", user.user_id),
                    "n": str(cfg.specific_per_user),
                },
                parser=parser,
                meta={"user_id": user.user_id, "n": cfg.specific_per_user},
            )
            for user in users
        ]
    return items


async def run_questions(ctx: SynthContext) -> StageOutcome:
    """Write `questions.jsonl`: one row per augmentation batch and per persona."""
    items = _items(ctx, load_users(ctx))
    outcome = await run_items("questions", items, ctx.store(FILE), ctx.models, ctx.settings)
    ctx.record(outcome)
    return outcome


def load_questions(ctx: SynthContext) -> list[Question]:
    """All questions of the run (global first, then persona-specific), de-duplicated."""
    store = ctx.store(FILE)
    seen: set[str] = set()
    out: list[Question] = []

    def add(text: str, source: str, owner: str | None) -> None:
        norm = normalize_text(text)
        if norm in seen:
            return
        seen.add(norm)
        out.append(Question("q-" + digest(norm), text.strip(), source, owner))

    for seed in _seeds(ctx):
        add(seed, "seed", None)
    for item in _items(ctx, load_users(ctx)):
        row = store.get(item.id)
        if row is None or row["status"] != "ok":
            continue
        owner = item.meta.get("user_id")
        for text in row["output"]["questions"][: item.meta["n"]]:
            add(text, "specific" if owner else "augmented", owner)
    return out
