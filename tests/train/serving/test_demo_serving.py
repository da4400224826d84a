"""The demo's serving step (`fspo_train.demo._serve`) on a real tiny adapter and SQLite memory.

The benchmark part of `make demo` is covered by `tests/train/reviews_mini`; this checks the
LangChain half's wiring: each user's labelled pairs land in a SQLite `PreferenceMemory`,
`ChatFSPO` (local backend) answers the unseen title for both users, the 12-title summary is
measured by the domain's judge, and `shots_from` gives both users the same pairs (the control
of the personalisation check). This adapter is not trained on Reviews-mini: that the users'
reviews follow their preferences, and only because of their pairs, is checked with the
benchmark's trained FSPO adapter in `tests/train/reviews_mini/test_pipeline.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("peft", reason="needs the [train] extra")

from fspo_train import demo
from fspo_train.reviews_mini.reviews import ReviewsMini
from langchain_fspo import PreferenceMemory


def test_serve_answers_both_users_from_sqlite_memory(
    tmp_path: Path, tiny_adapter_dirs: dict[str, Path]
) -> None:
    domain = ReviewsMini(seed=0, num_questions=80)
    users = ["positive+concise", "negative+verbose"]

    served = demo._serve(tmp_path, tiny_adapter_dirs["alpha"], domain, users, seed=0)

    assert served["question"] in domain.questions("test")
    assert set(served["reviews"]) == set(users)
    assert all(isinstance(text, str) for text in served["reviews"].values())
    assert served["titles"] == demo.SUMMARY_TITLES
    for user_id in users:
        mean = served["summary"][user_id]
        assert -1.0 <= mean["sentiment"] <= 1.0
        assert mean["words"] >= 0.0
    memory = PreferenceMemory.sqlite(tmp_path / "memory.sqlite")
    try:
        assert [memory.count(u) for u in users] == [demo.LABELLED_PER_USER] * 2
    finally:
        memory.close()


def test_serve_can_give_every_user_the_same_labelled_pairs(
    tmp_path: Path, tiny_adapter_dirs: dict[str, Path]
) -> None:
    domain = ReviewsMini(seed=0, num_questions=80)
    users = ["positive+concise", "negative+verbose"]

    served = demo._serve(
        tmp_path, tiny_adapter_dirs["alpha"], domain, users, seed=0, shots_from={users[1]: users[0]}
    )

    assert served["reviews"][users[0]] == served["reviews"][users[1]]
    memory = PreferenceMemory.sqlite(tmp_path / "memory.sqlite")
    try:
        pairs = [[(e.prompt, e.chosen, e.rejected) for e in memory.list(u)] for u in users]
    finally:
        memory.close()
    assert pairs[0] == pairs[1]
    assert len(pairs[0]) == demo.LABELLED_PER_USER


def test_side_by_side_keeps_both_columns() -> None:
    left = "short review."
    right = "a much longer review " * 6
    rows = demo._side_by_side(left, right, ("a", "b"), width=20).splitlines()

    assert rows[0].startswith("a" + " " * 19 + " | b")
    assert all(" | " in row or set(row) <= {"-", "+"} for row in rows)
    assert "".join(r.split(" | ", 1)[1] for r in rows[2:]).replace(" ", "") == right.replace(
        " ", ""
    )
