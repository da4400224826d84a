"""The hyperparameter selection rule: one rule for every method, on validation scores only."""

from __future__ import annotations

import pytest

from fspo_train.reviews_mini.selection import Candidate, select_on_validation


def test_best_validation_score_wins_for_every_method_alike() -> None:
    grid = {
        "fspo": [Candidate("a", 70.0, 100), Candidate("b", 76.0, 400), Candidate("c", 74.0, 200)],
        "oracle": [Candidate("a", 81.0, 100), Candidate("b", 79.0, 400)],
    }
    chosen = select_on_validation(grid)
    assert chosen["fspo"].name == "b"
    assert chosen["oracle"].name == "a"


def test_ties_go_to_fewer_steps_then_to_grid_order() -> None:
    chosen = select_on_validation(
        {"ipo": [Candidate("long", 75.0, 400), Candidate("short", 75.0, 100)]}
    )
    assert chosen["ipo"].name == "short"
    chosen = select_on_validation(
        {"ipo": [Candidate("first", 75.0, 100), Candidate("second", 75.0, 100)]}
    )
    assert chosen["ipo"].name == "first"


def test_an_empty_grid_is_refused() -> None:
    with pytest.raises(ValueError, match="grid is empty"):
        select_on_validation({"fspo": []})
