"""Stage 5, labels: user-aware pairwise preferences, asked in both orders.

Each question's responses form `pairs_per_question` seeded pairs. Each user labels the pairs of
their questions (all or a seeded sample of the global questions, plus their own specific ones), so
users share pairs and can be compared (the disagreement matrix). Every pair is labelled twice, with
the responses in both orders; a label is kept only when both orders pick the same response.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from fspo_train.synth.context import SynthContext
from fspo_train.synth.ids import digest, rng
from fspo_train.synth.prompts import load_prompt
from fspo_train.synth.runner import StageOutcome, WorkItem, run_items
from fspo_train.synth.schemas import JsonOutput, PairLabel
from fspo_train.synth.stages.personas import User
from fspo_train.synth.stages.questions import Question
from fspo_train.synth.stages.responses import Response

__all__ = [
    "FILE",
    "Pair",
    "PairVerdict",
    "assign_questions",
    "build_pairs",
    "label_items",
    "run_labels",
    "verdicts",
]

FILE = "labels.jsonl"
ORDERS = ("ab", "ba")


@dataclass(frozen=True)
class Pair:
    """Two responses to one question; `first` has the lower response index."""

    pair_id: str
    question: Question
    first: Response
    second: Response


@dataclass(frozen=True)
class PairVerdict:
    """One user's two labels of one pair, reconciled.

    Attributes:
        pair: The pair.
        user_id: Who labelled it.
        round: Refinement round the labels come from (0: seed persona).
        choice: `first` or `second` when both orders agree, else None.
        explained: Both labels said the description explains the choice.
        picked: The response the first-order label picked (what refinement must explain).
        failed: A label could not be obtained (parse failure).
    """

    pair: Pair
    user_id: str
    round: int
    choice: str | None
    explained: bool
    picked: str | None
    failed: bool

    @property
    def consistent(self) -> bool:
        """Both orders agree."""
        return self.choice is not None


def build_pairs(
    ctx: SynthContext, questions: list[Question], responses: dict[str, list[Response]]
) -> dict[str, list[Pair]]:
    """Seeded pairs of distinct responses per question id."""
    out: dict[str, list[Pair]] = {}
    per_question = ctx.domain.responses.per_question
    for q in questions:
        usable: list[Response] = []
        seen: set[str] = set()
        for r in responses.get(q.question_id, []):
            if r.k < per_question and r.text not in seen:
                usable.append(r)
                seen.add(r.text)
        combos = list(itertools.combinations(usable, 2))
        if not combos:
            continue
        k = min(ctx.domain.labels.pairs_per_question, len(combos))
        picked = sorted(rng(ctx.seed, "pairs", q.question_id).sample(range(len(combos)), k))
        out[q.question_id] = [
            Pair(f"{q.question_id}-{combos[i][0].k:02d}-{combos[i][1].k:02d}", q, *combos[i])
            for i in picked
        ]
    return out


def assign_questions(
    ctx: SynthContext, users: list[User], questions: list[Question]
) -> dict[str, list[str]]:
    """Question ids each user labels: global ones (all or a seeded sample) plus their own."""
    global_ids = [q.question_id for q in questions if q.owner is None]
    per_user = ctx.domain.labels.questions_per_user
    out: dict[str, list[str]] = {}
    for user in users:
        ids = global_ids
        if per_user is not None and per_user < len(global_ids):
            ids = sorted(rng(ctx.seed, "assign", user.user_id).sample(global_ids, per_user))
        own = [q.question_id for q in questions if q.owner == user.user_id]
        out[user.user_id] = [*ids, *own]
    return out


def label_items(
    ctx: SynthContext,
    round_: int,
    descriptions: dict[str, str],
    assigned: dict[str, list[str]],
    pairs: dict[str, list[Pair]],
) -> list[WorkItem]:
    """Both-order label requests of round `round_` for the users in `descriptions`."""
    prompt = load_prompt("label")
    parser = JsonOutput(PairLabel)
    items = []
    for user_id, description in sorted(descriptions.items()):
        for question_id in assigned[user_id]:
            for pair in pairs.get(question_id, []):
                for order in ORDERS:
                    a, b = (pair.first, pair.second) if order == "ab" else (pair.second, pair.first)
                    items.append(
                        WorkItem(
                            id=f"l{round_}-{user_id}-{pair.pair_id}-{order}",
                            model=ctx.labeller,
                            prompt=prompt,
                            variables={
                                "guidelines": ctx.domain.labels.guidelines,
                                "description": description,
                                "question": pair.question.text,
                                "response_a": a.text,
                                "response_b": b.text,
                            },
                            parser=parser,
                            meta={
                                "user_id": user_id,
                                "pair_id": pair.pair_id,
                                "order": order,
                                "round": round_,
                                "description_sha": digest(description),
                            },
                        )
                    )
    return items


async def run_labels(
    ctx: SynthContext,
    users: list[User],
    assigned: dict[str, list[str]],
    pairs: dict[str, list[Pair]],
) -> StageOutcome:
    """Write `labels.jsonl`: round-0 labels with the seed personas."""
    descriptions = {u.user_id: u.description for u in users}
    items = label_items(ctx, 0, descriptions, assigned, pairs)
    outcome = await run_items("labels", items, ctx.store(FILE), ctx.models, ctx.settings)
    ctx.record(outcome)
    return outcome


def verdicts(
    ctx: SynthContext,
    rounds: dict[str, int],
    assigned: dict[str, list[str]],
    pairs: dict[str, list[Pair]],
    stores: tuple[str, ...] = (FILE,),
) -> dict[str, list[PairVerdict]]:
    """Each user's reconciled labels from their round `rounds[user]` (rows read from `stores`)."""
    rows: dict[str, dict[str, object]] = {}
    for name in stores:
        for row in ctx.store(name):
            rows[row["id"]] = row
    out: dict[str, list[PairVerdict]] = {}
    for user_id, round_ in sorted(rounds.items()):
        user_verdicts = []
        for question_id in assigned[user_id]:
            for pair in pairs.get(question_id, []):
                base = f"l{round_}-{user_id}-{pair.pair_id}-"
                ab, ba = rows.get(base + "ab"), rows.get(base + "ba")
                if ab is None or ba is None:
                    continue  # not labelled (yet)
                user_verdicts.append(_reconcile(pair, user_id, round_, ab, ba))
        out[user_id] = user_verdicts
    return out


def _reconcile(
    pair: Pair, user_id: str, round_: int, ab: dict[str, object], ba: dict[str, object]
) -> PairVerdict:
    if ab["status"] != "ok" or ba["status"] != "ok":
        return PairVerdict(pair, user_id, round_, None, explained=False, picked=None, failed=True)
    ab_out, ba_out = ab["output"], ba["output"]
    assert isinstance(ab_out, dict)  # noqa: S101 - rows with status ok carry their output
    assert isinstance(ba_out, dict)  # noqa: S101
    ab_pick = "first" if ab_out["preferred"] == "A" else "second"
    ba_pick = "second" if ba_out["preferred"] == "A" else "first"
    explained = bool(
        ab_out["description_explains_choice"] and ba_out["description_explains_choice"]
    )
    choice = ab_pick if ab_pick == ba_pick else None
    return PairVerdict(pair, user_id, round_, choice, explained, picked=ab_pick, failed=False)
