"""Stages 3 and 4: viewpoints per question, then responses from several generator models.

- `view` mode (Roleplay): the question-writer lists `per_question` viewpoints for each question,
  and one response is generated conditioned on each viewpoint (the paper found persona steering
  gave near-identical responses for underspecified personas).
- `persona` mode (ELIX, Reviews): each response is steered towards a seeded sample of the users.

Generators are used in turn (offset per question), at the temperature they were built with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fspo_train.synth.context import SynthContext
from fspo_train.synth.ids import digest, rng
from fspo_train.synth.prompts import load_prompt
from fspo_train.synth.runner import StageOutcome, WorkItem, run_items
from fspo_train.synth.schemas import JsonOutput, TextOutput, ViewsOut
from fspo_train.synth.stages.personas import load_users
from fspo_train.synth.stages.questions import Question, load_questions

__all__ = ["Response", "load_responses", "load_views", "run_responses", "run_views"]

VIEWS_FILE = "views.jsonl"
FILE = "responses.jsonl"


@dataclass(frozen=True)
class Response:
    """One generated response to a question."""

    response_id: str
    question_id: str
    k: int
    text: str
    generator: str
    steer: dict[str, Any]


async def run_views(ctx: SynthContext) -> StageOutcome:
    """Write `views.jsonl` (view mode only; a no-op in persona mode)."""
    items: list[WorkItem] = []
    if ctx.domain.responses.mode == "view":
        items = [
            WorkItem(
                id=f"v-{q.question_id}",
                model=ctx.question_writer,
                prompt=load_prompt("views"),
                variables={"question": q.text, "n": str(ctx.domain.responses.per_question)},
                parser=JsonOutput(ViewsOut),
                meta={"question_id": q.question_id},
            )
            for q in load_questions(ctx)
        ]
    outcome = await run_items("views", items, ctx.store(VIEWS_FILE), ctx.models, ctx.settings)
    ctx.record(outcome)
    return outcome


def load_views(ctx: SynthContext) -> dict[str, list[str]]:
    """Distinct viewpoints per question id (at most `per_question` each)."""
    out: dict[str, list[str]] = {}
    for row in ctx.store(VIEWS_FILE).ok_rows():
        views = list(dict.fromkeys(row["output"]["views"]))
        out[row["meta"]["question_id"]] = views[: ctx.domain.responses.per_question]
    return out


def _generator(ctx: SynthContext, question_id: str, k: int) -> str:
    offset = int(digest(question_id), 16)
    return ctx.generators[(offset + k) % len(ctx.generators)]


def _items(ctx: SynthContext, questions: list[Question]) -> list[WorkItem]:
    cfg = ctx.domain.responses
    parser = TextOutput()
    items: list[WorkItem] = []
    if cfg.mode == "view":
        views = load_views(ctx)
        for q in questions:
            for k, view in enumerate(views.get(q.question_id, [])):
                items.append(
                    WorkItem(
                        id=f"r-{q.question_id}-{k:02d}",
                        model=_generator(ctx, q.question_id, k),
                        prompt=load_prompt("response_view"),
                        variables={"question": q.text, "view": view},
                        parser=parser,
                        meta={"question_id": q.question_id, "k": k, "steer": {"view": view}},
                    )
                )
        return items
    pool = [u for u in load_users(ctx) if u.steer]
    for q in questions:
        r = rng(ctx.seed, "steer", q.question_id)
        if cfg.per_question <= len(pool):
            steer = r.sample(pool, cfg.per_question)
        else:
            steer = [r.choice(pool) for _ in range(cfg.per_question)]
        for k, user in enumerate(steer):
            items.append(
                WorkItem(
                    id=f"r-{q.question_id}-{k:02d}",
                    model=_generator(ctx, q.question_id, k),
                    prompt=load_prompt("response_persona"),
                    variables={
                        "domain_description": ctx.domain.description,
                        "persona": user.description,
                        "question": q.text,
                    },
                    parser=parser,
                    meta={"question_id": q.question_id, "k": k, "steer": {"user": user.user_id}},
                )
            )
    return items


async def run_responses(ctx: SynthContext) -> StageOutcome:
    """Write `responses.jsonl`: one row per (question, response index)."""
    items = _items(ctx, load_questions(ctx))
    outcome = await run_items("responses", items, ctx.store(FILE), ctx.models, ctx.settings)
    ctx.record(outcome)
    return outcome


def load_responses(ctx: SynthContext) -> dict[str, list[Response]]:
    """Successful responses per question id, ordered by index."""
    out: dict[str, list[Response]] = {}
    for row in ctx.store(FILE).ok_rows():
        meta = row["meta"]
        out.setdefault(meta["question_id"], []).append(
            Response(
                response_id=row["id"],
                question_id=meta["question_id"],
                k=meta["k"],
                text=row["output"]["text"],
                generator=row["model"],
                steer=meta["steer"],
            )
        )
    for responses in out.values():
        responses.sort(key=lambda r: r.k)
    return out
