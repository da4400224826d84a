"""Evaluation items: a user's held-out preference pair, with K shots from that same user."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from fspo_train.data.episodes import episodes_for_queries
from fspo_train.data.records import PreferenceRecord
from langchain_fspo.preference import PreferenceExample

__all__ = ["EvalItem", "Query", "build_eval_items"]

logger = logging.getLogger(__name__)


class Query(Protocol):
    """What a method answers: a question for one user, with that user's shots."""

    @property
    def question(self) -> str:
        """The question asked."""
        ...

    @property
    def shots(self) -> Sequence[PreferenceExample]:
        """The user's examples, oldest first."""
        ...

    @property
    def user_description(self) -> str | None:
        """The user's true description (the `oracle` prompts and RAT scoring need it)."""
        ...


@dataclass(frozen=True)
class EvalItem:
    """One evaluation query: a user's held-out pair, with K shots from that same user."""

    user_id: str
    question: str
    chosen: str
    rejected: str
    shots: tuple[PreferenceExample, ...]
    user_description: str | None
    split: str
    """The set of users the item belongs to (e.g. `trained`, `held_out`)."""


def build_eval_items(
    records: Sequence[PreferenceRecord],
    *,
    split: str,
    num_shots: int,
    shot_records: Sequence[PreferenceRecord] | None = None,
    seed: int = 0,
    max_items: int | None = None,
) -> list[EvalItem]:
    """One item per record: the record is the query, K shots come from the same user.

    Shots are drawn (seeded, `fspo_train.data.episodes.episodes_for_queries`) from the user's
    other records in `records` and in `shot_records` (e.g. the users' training pairs); never a
    record with the query's question.

    Example:
        >>> recs = [
        ...     PreferenceRecord(user_id="u", question=f"q{i}", chosen="yes", rejected="no")
        ...     for i in range(3)
        ... ]
        >>> items = build_eval_items(recs, split="held_out", num_shots=2)
        >>> [len(item.shots) for item in items]
        [2, 2, 2]
    """
    episodes = episodes_for_queries(
        records, [*records, *(shot_records or [])], num_shots=num_shots, seed=seed
    )
    if episodes.skipped:
        logger.warning(
            "%s: %d queries got fewer than %d shots (e.g. %s)",
            split,
            len(episodes.skipped),
            num_shots,
            episodes.skipped[0],
        )
    items = [
        EvalItem(
            user_id=episode.user_id,
            question=episode.query.question,
            chosen=episode.query.chosen,
            rejected=episode.query.rejected,
            shots=tuple(s.to_example() for s in episode.shots),
            user_description=episode.query.user_description,
            split=split,
        )
        for episode in episodes.episodes
    ]
    if max_items is not None and len(items) > max_items:
        items = random.Random(seed).sample(items, max_items)  # noqa: S311 - not secrets
    return items
