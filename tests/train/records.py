"""Small preference datasets for the training tests: every user answers the same questions."""

from __future__ import annotations

from collections.abc import Sequence

from fspo_train.data.records import PreferenceRecord

DEFAULT_USERS = ("kid", "expert", "poet")


def toy_records(n: int = 6, users: Sequence[str] = DEFAULT_USERS) -> list[PreferenceRecord]:
    """`n` questions per user, each preferring the answer that names them (with descriptions)."""
    return [
        PreferenceRecord(
            user_id=user,
            question=f"Question {i}: why does the fox jump?",
            chosen=f"The {user} answer {i}: a quick brown fox.",
            rejected=f"Nope {i}.",
            user_description=f"The user is a {user}.",
            question_id=f"q{i}",
        )
        for user in users
        for i in range(n)
    ]
