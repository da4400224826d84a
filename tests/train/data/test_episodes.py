"""Few-shot episodes and held-out splits: same-user, no repeats, seeded, variable K."""

from __future__ import annotations

import doctest

import pytest

import fspo_train.data.episodes
from fspo_train.data.episodes import build_episodes, episodes_for_queries, split_records
from fspo_train.data.records import PreferenceRecord


def _records(counts: dict[str, int]) -> list[PreferenceRecord]:
    return [
        PreferenceRecord(
            user_id=user,
            question=f"{user} question {i}",
            chosen=f"{user} yes {i}",
            rejected=f"{user} no {i}",
            question_id=f"q{i}",
        )
        for user, n in counts.items()
        for i in range(n)
    ]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(fspo_train.data.episodes)
    assert result.attempted > 0
    assert result.failed == 0


def test_episodes_are_same_user_without_repeats() -> None:
    records = _records({"a": 11, "b": 7, "c": 5})
    result = build_episodes(records, num_shots=3, passes=3, seed=1)
    assert result.episodes
    for episode in result.episodes:
        members = [*episode.shots, episode.query]
        assert len(episode.shots) == 3
        assert {r.user_id for r in members} == {episode.user_id}
        assert len({r.question for r in members}) == len(members)  # no repeats in an episode
    # Per pass, a user with n records gives n // (K + 1) episodes: 2 + 1 + 1, times 3 passes.
    assert len(result.episodes) == 3 * (2 + 1 + 1)
    assert {e.user_id for e in result.episodes} == {"a", "b", "c"}


def test_episodes_are_reproducible_and_seed_dependent() -> None:
    records = _records({"a": 9, "b": 9})

    def key(seed: int, rows: list[PreferenceRecord]) -> list[tuple[str, ...]]:
        eps = build_episodes(rows, num_shots=2, passes=2, seed=seed).episodes
        return [tuple(r.question for r in (*e.shots, e.query)) for e in eps]

    assert key(0, records) == key(0, records)
    assert key(0, records) == key(0, list(reversed(records)))  # input order does not matter
    assert key(0, records) != key(1, records)


def test_users_with_too_few_examples_are_skipped_with_a_reason() -> None:
    records = _records({"rich": 6, "poor": 2})
    result = build_episodes(records, num_shots=3, seed=0)
    assert {e.user_id for e in result.episodes} == {"rich"}
    (skipped,) = result.skipped
    assert skipped.user_id == "poor"
    assert skipped.num_records == 2
    assert "needs at least 4 distinct records" in skipped.reason
    assert "'poor'" in result.summary()


def test_duplicates_are_dropped_and_counted() -> None:
    records = _records({"a": 4})
    result = build_episodes([*records, records[0], records[1]], num_shots=3, seed=0)
    assert result.duplicates_dropped == 2
    (episode,) = result.episodes
    assert len({r.question for r in (*episode.shots, episode.query)}) == 4


def test_variable_k() -> None:
    records = _records({"a": 40, "small": 3})
    result = build_episodes(records, num_shots=6, min_shots=1, passes=4, seed=3)
    sizes = {len(e.shots) for e in result.episodes if e.user_id == "a"}
    assert min(sizes) >= 1
    assert max(sizes) <= 6
    assert len(sizes) > 2  # K really varies
    assert any(e.user_id == "small" for e in result.episodes)  # fewer than K+1 still usable
    assert not result.skipped


def test_bad_shot_settings() -> None:
    with pytest.raises(ValueError, match="min_shots"):
        build_episodes(_records({"a": 3}), num_shots=2, min_shots=3)
    with pytest.raises(ValueError, match="passes"):
        build_episodes(_records({"a": 3}), num_shots=2, passes=0)


def test_user_and_question_splits_do_not_leak() -> None:
    records = _records({f"u{i}": 10 for i in range(10)})
    split = split_records(records, test_users=0.2, test_question_fraction=0.3, seed=5)
    train_users = {r.user_id for r in split.train}
    held_users = {r.user_id for r in split.test_users}
    assert len(held_users) == 2
    assert not train_users & held_users
    train_q = {r.question_id for r in split.train}
    held_q = {r.question_id for r in split.test_questions}
    assert len(held_q) == 3
    assert not train_q & held_q
    assert {r.user_id for r in split.test_questions} <= train_users
    assert len(split.train) + len(split.test_users) + len(split.test_questions) == len(records)
    again = split_records(records, test_users=0.2, test_question_fraction=0.3, seed=5)
    assert again.test_users == split.test_users
    assert split_records(records, test_users=["u3"]).test_users == [
        r for r in records if r.user_id == "u3"
    ]
    with pytest.raises(ValueError, match="no records"):
        split_records(records, test_users=["ghost"])


def test_eval_episodes_never_show_the_query_question() -> None:
    records = _records({"a": 6})
    queries, context = records[:2], records
    result = episodes_for_queries(queries, context, num_shots=4, seed=0)
    for episode in result.episodes:
        assert episode.query.question_id not in {s.question_id for s in episode.shots}
        assert len(episode.shots) == 4
