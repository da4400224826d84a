"""Stage 6, iterative persona refinement (the paper's Roleplay recipe).

In each round, every user with unexplained choices (a label saying the description does not
explain the pick, or labels that flip under order swap) gets one refinement request: the refiner
sees the description and up to `refine_pairs_per_call` of those choices (the response the labeller
picked in the first order), and writes what to append so that a later labeller would make the same
choices. The description is extended, and all of that user's pairs are relabelled in both orders
with it. Rounds stop at `refine_rounds` or when every choice is explained.
"""

from __future__ import annotations

from dataclasses import dataclass

from fspo_train.synth.context import SynthContext
from fspo_train.synth.ids import rng
from fspo_train.synth.prompts import load_prompt
from fspo_train.synth.runner import WorkItem, run_items
from fspo_train.synth.schemas import JsonOutput, PersonaAddition
from fspo_train.synth.stages.labels import FILE as LABELS_FILE
from fspo_train.synth.stages.labels import Pair, PairVerdict, label_items, verdicts
from fspo_train.synth.stages.personas import User

__all__ = ["RELABEL_FILE", "RefineState", "final_verdicts", "refine_state", "run_refine"]

FILE = "refinements.jsonl"
RELABEL_FILE = "relabels.jsonl"


@dataclass
class RefineState:
    """Users' current descriptions and the label round each user's final labels come from."""

    descriptions: dict[str, str]
    rounds: dict[str, int]


def _apply(ctx: SynthContext, state: RefineState, round_: int, user_ids: list[str]) -> list[str]:
    """Extend the descriptions of users whose round-`round_` refinement succeeded."""
    store = ctx.store(FILE)
    refined = []
    for user_id in user_ids:
        row = store.get(f"f{round_}-{user_id}")
        if row is not None and row["status"] == "ok":
            addition = row["output"]["addition"]
            state.descriptions[user_id] = f"{state.descriptions[user_id]} {addition}"
            state.rounds[user_id] = round_
            refined.append(user_id)
    return refined


def refine_state(ctx: SynthContext, users: list[User]) -> RefineState:
    """The state after the refinement rounds recorded in the run folder."""
    state = RefineState(
        descriptions={u.user_id: u.description for u in users},
        rounds={u.user_id: 0 for u in users},
    )
    for round_ in range(1, ctx.domain.refine_rounds + 1):
        _apply(ctx, state, round_, sorted(state.descriptions))
    return state


def _choices(unexplained: list[PairVerdict]) -> str:
    blocks = []
    for v in unexplained:
        chosen, other = (
            (v.pair.first, v.pair.second) if v.picked == "first" else (v.pair.second, v.pair.first)
        )
        blocks.append(
            f"<choice>\n<question>\n{v.pair.question.text}\n</question>\n"
            f"<chosen_response>\n{chosen.text}\n</chosen_response>\n"
            f"<other_response>\n{other.text}\n</other_response>\n</choice>"
        )
    return "\n".join(blocks)


def _refine_items(
    ctx: SynthContext, state: RefineState, round_: int, current: dict[str, list[PairVerdict]]
) -> list[WorkItem]:
    items = []
    for user_id, user_verdicts in sorted(current.items()):
        unexplained = [
            v for v in user_verdicts if not v.failed and not (v.explained and v.consistent)
        ]
        if not unexplained:
            continue
        k = min(ctx.domain.refine_pairs_per_call, len(unexplained))
        shown = sorted(
            rng(ctx.seed, "refine", user_id, round_).sample(unexplained, k),
            key=lambda v: v.pair.pair_id,
        )
        items.append(
            WorkItem(
                id=f"f{round_}-{user_id}",
                model=ctx.refiner,
                prompt=load_prompt("refine"),
                variables={"description": state.descriptions[user_id], "choices": _choices(shown)},
                parser=JsonOutput(PersonaAddition),
                meta={
                    "user_id": user_id,
                    "round": round_,
                    "pair_ids": [v.pair.pair_id for v in shown],
                    "unexplained": len(unexplained),
                },
            )
        )
    return items


async def run_refine(
    ctx: SynthContext,
    users: list[User],
    assigned: dict[str, list[str]],
    pairs: dict[str, list[Pair]],
) -> RefineState:
    """Run the refinement rounds; write `refinements.jsonl` and `relabels.jsonl`."""
    state = RefineState(
        descriptions={u.user_id: u.description for u in users},
        rounds={u.user_id: 0 for u in users},
    )
    for round_ in range(1, ctx.domain.refine_rounds + 1):
        current = verdicts(ctx, state.rounds, assigned, pairs, stores=(LABELS_FILE, RELABEL_FILE))
        items = _refine_items(ctx, state, round_, current)
        if not items:
            break
        outcome = await run_items(
            f"refine-r{round_}", items, ctx.store(FILE), ctx.models, ctx.settings
        )
        outcome.stage = "refine"
        ctx.record(outcome)
        refined = _apply(ctx, state, round_, [str(i.meta["user_id"]) for i in items])
        relabel = label_items(
            ctx, round_, {u: state.descriptions[u] for u in refined}, assigned, pairs
        )
        outcome = await run_items(
            f"relabel-r{round_}", relabel, ctx.store(RELABEL_FILE), ctx.models, ctx.settings
        )
        outcome.stage = "relabel"
        ctx.record(outcome)
    return state


def final_verdicts(
    ctx: SynthContext,
    state: RefineState,
    assigned: dict[str, list[str]],
    pairs: dict[str, list[Pair]],
) -> dict[str, list[PairVerdict]]:
    """Each user's labels from their last round (what the records are built from)."""
    return verdicts(ctx, state.rounds, assigned, pairs, stores=(LABELS_FILE, RELABEL_FILE))
