"""Few-shot episodes: per user, K shots plus one held-out query, all from that user.

The official loader (the authors' released code for arXiv 2502.19312) walks each user's
shuffled rows in windows of K+2 and never uses the last row of each window; here a window is
exactly K+1 rows. Each pass reshuffles each user's rows with a generator seeded by
`(seed, pass, user)`, so episodes are reproducible and do not depend on the order of users in
the input. Inside an episode no record appears twice (duplicate records of a user are dropped
first, and reported).

Example:
    >>> from fspo_train.data.records import PreferenceRecord
    >>> recs = [
    ...     PreferenceRecord(user_id="u", question=f"q{i}", chosen="yes", rejected="no")
    ...     for i in range(5)
    ... ]
    >>> result = build_episodes(recs, num_shots=2, seed=0)
    >>> [len(e.shots) for e in result.episodes]
    [2]
    >>> result.unused_records
    2
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fspo_train.data.records import PreferenceRecord

__all__ = [
    "Episode",
    "EpisodeSet",
    "SkippedUser",
    "Split",
    "build_episodes",
    "episodes_for_queries",
    "group_by_user",
    "split_records",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Episode:
    """K shots and one query of one user."""

    user_id: str
    shots: tuple[PreferenceRecord, ...]
    """The context, in the order it is rendered (oldest first)."""
    query: PreferenceRecord
    """The held-out preference the loss is taken on."""

    @property
    def user_description(self) -> str | None:
        """The user's description (RAT target), from the query record."""
        return self.query.user_description


@dataclass(frozen=True)
class SkippedUser:
    """A user who contributed no episode (or fewer than their data allowed), and why."""

    user_id: str
    num_records: int
    reason: str

    def __str__(self) -> str:
        return f"user {self.user_id!r} ({self.num_records} records): {self.reason}"


@dataclass
class EpisodeSet:
    """The episodes built, and what was left out."""

    episodes: list[Episode] = field(default_factory=list)
    skipped: list[SkippedUser] = field(default_factory=list)
    duplicates_dropped: int = 0
    unused_records: int = 0
    """Records that were never a shot or a query in any pass (window remainders)."""

    def summary(self) -> str:
        """One paragraph for logs and the CLI."""
        users = len({e.user_id for e in self.episodes})
        text = f"Built {len(self.episodes)} episodes from {users} users"
        notes = []
        if self.skipped:
            first = "; ".join(str(s) for s in self.skipped[:3])
            notes.append(f"skipped {len(self.skipped)} users ({first})")
        if self.duplicates_dropped:
            notes.append(f"dropped {self.duplicates_dropped} duplicate records")
        if self.unused_records:
            notes.append(f"{self.unused_records} records unused in any pass")
        return text + (": " + "; ".join(notes) if notes else "") + "."


def group_by_user(records: Iterable[PreferenceRecord]) -> dict[str, list[PreferenceRecord]]:
    """Records per user, in input order."""
    users: dict[str, list[PreferenceRecord]] = defaultdict(list)
    for record in records:
        users[record.user_id].append(record)
    return dict(users)


def _dedupe(rows: list[PreferenceRecord]) -> list[PreferenceRecord]:
    seen: set[tuple[str, str, str]] = set()
    unique = []
    # A canonical order first, so that episodes do not depend on the order of the input.
    for row in sorted(rows, key=lambda r: (r.question, r.chosen, r.rejected)):
        key = (row.question, row.chosen, row.rejected)
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def _check_shots(num_shots: int, min_shots: int | None) -> int:
    if num_shots < 0:
        msg = f"`num_shots` must be >= 0, got {num_shots}."
        raise ValueError(msg)
    low = num_shots if min_shots is None else min_shots
    if not 0 <= low <= num_shots:
        msg = f"`min_shots` must be between 0 and `num_shots`={num_shots}, got {min_shots}."
        raise ValueError(msg)
    return low


def build_episodes(
    records: Sequence[PreferenceRecord],
    *,
    num_shots: int,
    min_shots: int | None = None,
    passes: int = 1,
    seed: int = 0,
) -> EpisodeSet:
    """Group `records` by user and cut each user's shuffled rows into K-shot episodes.

    Args:
        records: Preference records of any number of users.
        num_shots: K, the number of shots (the most, with variable K).
        min_shots: Variable K: each episode draws K uniformly in `[min_shots, num_shots]`, and a
            user with fewer than `num_shots + 1` records still gets episodes. `None`: fixed K.
        passes: How many reshuffled passes over each user's rows (the official code uses
            `2 * (K + 1)` to reuse every row as a query about twice).
        seed: Seeds the shuffles; the same inputs and seed give the same episodes.

    Returns:
        The episodes, shuffled across users, and the users skipped for too few records.
    """
    low = _check_shots(num_shots, min_shots)
    if passes < 1:
        msg = f"`passes` must be >= 1, got {passes}."
        raise ValueError(msg)
    result = EpisodeSet()
    for user_id, rows in sorted(group_by_user(records).items()):
        unique = _dedupe(rows)
        result.duplicates_dropped += len(rows) - len(unique)
        if len(unique) < low + 1:
            need = f"K={low} shots + 1 query" if min_shots is None else f"min_shots={low} + 1 query"
            result.skipped.append(
                SkippedUser(
                    user_id,
                    len(unique),
                    f"needs at least {low + 1} distinct records ({need}); "
                    "add examples, lower `num_shots`, or set `min_shots`",
                )
            )
            continue
        used: set[int] = set()
        for pass_index in range(passes):
            rng = random.Random(f"{seed}:{pass_index}:{user_id}")  # noqa: S311 - not crypto
            order = list(range(len(unique)))
            rng.shuffle(order)
            start = 0
            while True:
                remaining = len(order) - start
                k = num_shots if min_shots is None else rng.randint(low, num_shots)
                k = min(k, remaining - 1)
                if k < low:
                    break
                window = order[start : start + k + 1]
                used.update(window)
                result.episodes.append(
                    Episode(
                        user_id=user_id,
                        shots=tuple(unique[i] for i in window[:k]),
                        query=unique[window[k]],
                    )
                )
                start += k + 1
        result.unused_records += len(unique) - len(used)
    random.Random(seed).shuffle(result.episodes)  # noqa: S311
    for skipped in result.skipped:
        logger.warning("No episodes for %s", skipped)
    logger.info("%s", result.summary())
    return result


def episodes_for_queries(
    queries: Sequence[PreferenceRecord],
    context: Sequence[PreferenceRecord],
    *,
    num_shots: int,
    seed: int = 0,
) -> EpisodeSet:
    """Evaluation episodes: each query gets K shots drawn from the same user's `context` records.

    A shot never has the query's question (by `question_id`, else by text). Users whose context
    has fewer than `num_shots` usable records get fewer shots (recorded in `skipped` when zero).
    """
    _check_shots(num_shots, None)
    by_user = {u: _dedupe(rows) for u, rows in group_by_user(context).items()}
    result = EpisodeSet()
    for index, query in enumerate(queries):
        key = query.question_id or query.question
        pool = [
            r
            for r in by_user.get(query.user_id, [])
            if (r.question_id or r.question) != key and r != query
        ]
        rng = random.Random(f"{seed}:{index}:{query.user_id}")  # noqa: S311
        shots = rng.sample(pool, min(num_shots, len(pool)))
        if len(shots) < num_shots:
            result.skipped.append(
                SkippedUser(
                    query.user_id,
                    len(pool),
                    f"only {len(shots)} context shots for a query (wanted {num_shots})",
                )
            )
        result.episodes.append(Episode(user_id=query.user_id, shots=tuple(shots), query=query))
    return result


@dataclass
class Split:
    """Records split for training and held-out evaluation."""

    train: list[PreferenceRecord]
    test_users: list[PreferenceRecord]
    """All records of the held-out users (never seen in training)."""
    test_questions: list[PreferenceRecord]
    """Records of training users whose question is held out (no user's copy is trained on)."""

    def summary(self) -> str:
        """Counts of records and users per part."""

        def users(rows: list[PreferenceRecord]) -> int:
            return len({r.user_id for r in rows})

        return (
            f"train: {len(self.train)} records / {users(self.train)} users; "
            f"held-out users: {len(self.test_users)} / {users(self.test_users)}; "
            f"held-out questions: {len(self.test_questions)} / {users(self.test_questions)}"
        )


def split_records(
    records: Sequence[PreferenceRecord],
    *,
    test_users: float | Sequence[str] = 0,
    test_question_fraction: float = 0.0,
    seed: int = 0,
) -> Split:
    """Hold out whole users, then a fraction of questions, for evaluation.

    Args:
        records: All records.
        test_users: Held-out users: a count (int >= 1), a fraction of users (float in (0, 1)),
            or explicit user ids.
        test_question_fraction: Fraction of the remaining distinct questions (by `question_id`,
            else text) whose records of every training user are held out.
        seed: Seeds both draws.

    Example:
        >>> from fspo_train.data.records import PreferenceRecord
        >>> recs = [
        ...     PreferenceRecord(user_id=u, question=f"q{i}", chosen="a", rejected="b")
        ...     for u in ("u1", "u2")
        ...     for i in range(4)
        ... ]
        >>> split = split_records(recs, test_users=["u2"], test_question_fraction=0.25)
        >>> len(split.train), len(split.test_users), len(split.test_questions)
        (3, 4, 1)
    """
    if not 0.0 <= test_question_fraction < 1.0:
        msg = f"`test_question_fraction` must be in [0, 1), got {test_question_fraction}."
        raise ValueError(msg)
    all_users = sorted({r.user_id for r in records})
    rng = random.Random(seed)  # noqa: S311
    held_users: set[str]
    if isinstance(test_users, str):
        msg = "`test_users` must be a count, a fraction, or a list of user ids, not one string."
        raise TypeError(msg)
    if isinstance(test_users, int | float) and not isinstance(test_users, bool):
        count = int(test_users) if test_users >= 1 else round(test_users * len(all_users))
        if test_users < 0 or count > len(all_users):
            msg = f"`test_users`={test_users} is not possible with {len(all_users)} users."
            raise ValueError(msg)
        held_users = set(rng.sample(all_users, count))
    elif isinstance(test_users, bool):
        msg = "`test_users` must be a count, a fraction, or a list of user ids, not a bool."
        raise TypeError(msg)
    else:
        held_users = set(test_users)
        unknown = held_users - set(all_users)
        if unknown:
            msg = f"`test_users` names users with no records: {sorted(unknown)[:5]}."
            raise ValueError(msg)
    remaining = [r for r in records if r.user_id not in held_users]
    questions = sorted({r.question_id or r.question for r in remaining})
    held_questions = set(rng.sample(questions, round(test_question_fraction * len(questions))))
    return Split(
        train=[r for r in remaining if (r.question_id or r.question) not in held_questions],
        test_users=[r for r in records if r.user_id in held_users],
        test_questions=[r for r in remaining if (r.question_id or r.question) in held_questions],
    )
