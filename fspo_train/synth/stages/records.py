"""Stage 8, splits and the final records (`fspo_train.data.records.PreferenceRecord` JSONL).

Users are split at the user level (the domain's `held_out` users, e.g. Reviews' interpolated
users, plus a seeded `test_user_fraction` of the others) and questions at the question level (a
seeded `test_question_fraction`). A record's `provenance.split` is `train` (train user, train
question), `test_questions` (train user, held-out question), `test_users` (held-out user, train
question) or `test_both`. Files: `records.jsonl` (all), `train.jsonl`, `test.jsonl` (the rest),
`splits.json`. Every line is validated against `PreferenceRecord` and written sorted, so the same
run folder always gives the same bytes.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from fspo_train.data.records import PreferenceRecord
from fspo_train.synth.context import SynthContext
from fspo_train.synth.ids import rng
from fspo_train.synth.prompts import load_prompt
from fspo_train.synth.stages.labels import PairVerdict
from fspo_train.synth.stages.personas import User
from fspo_train.synth.stages.questions import Question
from fspo_train.synth.stages.refine import RefineState
from fspo_train.synth.store import write_json_atomic, write_jsonl_atomic

__all__ = ["build_splits", "run_records"]


def _sample_count(fraction: float, n: int) -> int:
    return math.floor(fraction * n + 0.5)


def build_splits(
    ctx: SynthContext, users: list[User], questions: list[Question]
) -> dict[str, list[str]]:
    """Held-out and training user ids and question ids."""
    cfg = ctx.domain.splits
    fixed_out = [u.user_id for u in users if u.held_out]
    others = [u.user_id for u in users if not u.held_out]
    k = min(_sample_count(cfg.test_user_fraction, len(others)), max(len(others) - 1, 0))
    test_users = sorted([*fixed_out, *rng(ctx.seed, "split-users").sample(others, k)])
    qids = [q.question_id for q in questions]
    kq = min(_sample_count(cfg.test_question_fraction, len(qids)), max(len(qids) - 1, 0))
    test_questions = sorted(rng(ctx.seed, "split-questions").sample(qids, kq))
    return {
        "test_users": test_users,
        "train_users": sorted(set(others) - set(test_users)),
        "test_questions": test_questions,
        "train_questions": sorted(set(qids) - set(test_questions)),
    }


def _split_name(user_out: bool, question_out: bool) -> str:
    if user_out and question_out:
        return "test_both"
    if user_out:
        return "test_users"
    return "test_questions" if question_out else "train"


def run_records(
    ctx: SynthContext,
    users: list[User],
    questions: list[Question],
    state: RefineState,
    final: dict[str, list[PairVerdict]],
) -> dict[str, Any]:
    """Write the records and splits; return counts (kept, dropped and why, per split)."""
    splits = build_splits(ctx, users, questions)
    test_users, test_questions = set(splits["test_users"]), set(splits["test_questions"])
    response_prompt = "response_view" if ctx.domain.responses.mode == "view" else "response_persona"
    prompts = {"label": load_prompt("label").ref, "response": load_prompt(response_prompt).ref}
    records: list[tuple[tuple[str, str, str], dict[str, Any]]] = []
    counts = {"pairs_labelled": 0, "label_failed": 0, "order_inconsistent": 0, "invalid": 0}
    for user_id, user_verdicts in sorted(final.items()):
        for v in user_verdicts:
            counts["pairs_labelled"] += 1
            if v.failed:
                counts["label_failed"] += 1
                continue
            if not v.consistent:
                counts["order_inconsistent"] += 1
                continue
            chosen, rejected = (
                (v.pair.first, v.pair.second)
                if v.choice == "first"
                else (v.pair.second, v.pair.first)
            )
            split = _split_name(
                user_id in test_users, v.pair.question.question_id in test_questions
            )
            provenance = {
                "source": "fspo_train.synth",
                "domain": ctx.domain.name,
                "seed": ctx.seed,
                "pair_id": v.pair.pair_id,
                "split": split,
                "question_source": v.pair.question.source,
                "chosen_response_id": chosen.response_id,
                "rejected_response_id": rejected.response_id,
                "generators": [chosen.generator, rejected.generator],
                "steer": [chosen.steer, rejected.steer],
                "labeller": ctx.labeller,
                "label_round": v.round,
                "description_explains_choice": v.explained,
                "prompts": prompts,
            }
            try:
                record = PreferenceRecord(
                    user_id=user_id,
                    question=v.pair.question.text,
                    chosen=chosen.text,
                    rejected=rejected.text,
                    user_description=state.descriptions[user_id],
                    question_id=v.pair.question.question_id,
                    provenance=provenance,
                )
            except ValidationError:
                counts["invalid"] += 1
                continue
            key = (user_id, v.pair.question.question_id, v.pair.pair_id)
            records.append((key, record.model_dump(mode="json")))
    records.sort(key=lambda kv: kv[0])
    rows = [r for _, r in records]
    train = [r for r in rows if r["provenance"]["split"] == "train"]
    test = [r for r in rows if r["provenance"]["split"] != "train"]
    write_jsonl_atomic(ctx.run_dir / "records.jsonl", rows)
    write_jsonl_atomic(ctx.run_dir / "train.jsonl", train)
    write_jsonl_atomic(ctx.run_dir / "test.jsonl", test)
    per_split: dict[str, int] = {}
    for r in rows:
        per_split[r["provenance"]["split"]] = per_split.get(r["provenance"]["split"], 0) + 1
    summary = {**counts, "records": len(rows), "per_split": dict(sorted(per_split.items()))}
    write_json_atomic(ctx.run_dir / "splits.json", {**splits, "counts": summary})
    return summary
