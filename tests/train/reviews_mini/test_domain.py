"""The synthetic-domain harness without a model: Reviews-mini, its judge, the record builder.

A second, deliberately different domain (`Recipes`: spiciness and number of steps, with a
pantry of ingredients instead of titles) goes through the same interface, so the harness is
shown not to be Reviews-shaped.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from typing import ClassVar

import pytest

from fspo_train.reviews_mini.data import ExactJudge, build_records, sample_pairs
from fspo_train.reviews_mini.domain import Domain, Question, SimUser, Split, UserGroup
from fspo_train.reviews_mini.reviews import NEGATIVE, POSITIVE, ReviewsMini


class Recipes(Domain):
    """Cooking instructions: users prefer spicy or mild dishes, short or detailed steps."""

    name = "recipes"
    DISHES = ("soup", "stew", "curry", "salad", "noodles", "omelette", "tacos", "risotto")
    SPICES: ClassVar[dict[str, float]] = {
        "chili": 1.0,
        "pepper": 0.6,
        "ginger": 0.3,
        "basil": -0.3,
        "cream": -0.7,
    }
    STEPS = ("Chop the {x}.", "Warm the pan.", "Stir in the {x}.", "Simmer gently.", "Serve hot.")

    def __init__(self) -> None:
        self._qs = [
            Question(f"d{i}", f"How do I make {d}?", "test" if i % 4 == 0 else "train", {"dish": d})
            for i, d in enumerate(self.DISHES)
        ]

    def questions(self, split: Split | None = None) -> list[Question]:
        return [q for q in self._qs if split is None or q.split == split]

    def users(self, group: UserGroup | None = None) -> list[SimUser]:
        users = [
            SimUser("spicy", {"heat": 1.0}, "Likes it hot.", "trained"),
            SimUser("mild", {"heat": -1.0}, "Likes it mild.", "trained"),
            SimUser("brief", {"steps": -1.0}, "Wants few steps.", "trained"),
            SimUser("spicy+brief", {"heat": 1.0, "steps": -1.0}, "Hot and brief.", "interpolated"),
        ]
        return [u for u in users if group is None or u.group == group]

    def attributes(self) -> Sequence[str]:
        return ("heat", "steps")

    def generate(
        self, question: Question, rng: random.Random, attributes: Mapping[str, float] | None = None
    ) -> str:
        attributes = attributes or {}
        heat = attributes.get("heat", rng.uniform(-1, 1))
        spices = sorted(self.SPICES, key=lambda s: abs(self.SPICES[s] - heat))[:2]
        n = 2 + round((attributes.get("steps", rng.uniform(-1, 1)) + 1) * 1.5)
        lines = [rng.choice(self.STEPS).format(x=rng.choice(spices)) for _ in range(n)]
        return f"For {question.slots['dish']}: " + " ".join(lines)

    def score(self, question: Question, response: str) -> dict[str, float]:
        words = response.replace(".", " ").split()
        found = [self.SPICES[w] for w in words if w in self.SPICES]
        return {
            "heat": sum(found) / len(found) if found else 0.0,
            "steps": math.tanh((response.count(".") - 3) / 2),
        }


@pytest.fixture(scope="module")
def reviews() -> ReviewsMini:
    return ReviewsMini(seed=0)


def test_split_is_disjoint_and_seeded(reviews: ReviewsMini) -> None:
    train = {q.id for q in reviews.questions("train")}
    test = {q.id for q in reviews.questions("test")}
    assert train.isdisjoint(test)
    assert len(test) == round(0.2 * 240)
    assert {q.text for q in ReviewsMini(seed=0).questions("test")} == {
        q.text for q in reviews.questions("test")
    }
    assert {q.text for q in ReviewsMini(seed=1).questions("test")} != {
        q.text for q in reviews.questions("test")
    }


def test_users_are_four_trained_and_their_four_combinations(reviews: ReviewsMini) -> None:
    trained = {u.id for u in reviews.users("trained")}
    interpolated = reviews.users("interpolated")
    assert trained == {"positive", "negative", "concise", "verbose"}
    assert {u.id for u in interpolated} == {
        "positive+concise",
        "positive+verbose",
        "negative+concise",
        "negative+verbose",
    }
    assert reviews.user("negative+verbose").description == (
        "This user prefers negative and verbose reviews."
    )
    assert reviews.user("positive+concise").weights == {"sentiment": 1.0, "length": -1.0}
    with pytest.raises(KeyError, match="known users"):
        reviews.user("nobody")


@pytest.mark.parametrize("sentiment", [-1.0, -0.6, 0.6, 1.0])
@pytest.mark.parametrize("length", [-1.0, 1.0])
def test_generator_attributes_are_controllable(
    reviews: ReviewsMini, sentiment: float, length: float
) -> None:
    rng = random.Random(0)
    texts = [
        (q, reviews.generate(q, rng, {"sentiment": sentiment, "length": length}))
        for q in reviews.questions("train")[:40]
    ]
    mean_sentiment = statistics.mean(reviews.score(q, t)["sentiment"] for q, t in texts)
    words = [len(t.split()) for _, t in texts]
    assert math.copysign(1, mean_sentiment) == math.copysign(1, sentiment)
    if length < 0:
        assert max(words) <= 14
    else:
        assert min(words) >= 18
    assert all(reviews.penalty(q, t) == 0.0 for q, t in texts)
    assert len({t for _, t in texts}) == len(texts)  # surface variety


def test_scores_are_exact_from_text(reviews: ReviewsMini) -> None:
    q = reviews.questions("test")[0]
    title, medium = q.slots["title"], q.slots["medium"]
    text = f"{title} is brilliant. The pacing feels dull. In the end the {medium} is decent."
    scores = reviews.score(q, text)
    assert scores["sentiment"] == pytest.approx((1.0 - 0.55 + 0.25) / 3)
    assert scores["length"] == pytest.approx(math.tanh((len(text.split()) - 15) / 8))
    assert reviews.penalty(q, text) == 0.0
    assert set(POSITIVE).isdisjoint(NEGATIVE)


def test_penalty_catches_malformed_repeated_and_wrong_title(reviews: ReviewsMini) -> None:
    q = reviews.questions("test")[0]
    good = f"{q.slots['title']} is great."
    assert reviews.penalty(q, good) == 0.0
    assert reviews.penalty(q, "") == 2.0
    assert reviews.penalty(q, "great great great brilliant.") == 2.0
    assert reviews.penalty(q, f"{good} {good}") == 1.0
    other = next(x for x in reviews.questions() if x.slots["title"] != q.slots["title"])
    assert reviews.penalty(q, f"{other.slots['title']} is great.") == 2.0
    # Babbling adjectives does not beat a well-formed review, even for the positive user.
    user = reviews.user("positive")
    assert reviews.utility(user, q, good) > reviews.utility(user, q, "brilliant brilliant.")


def test_judge_prefers_by_user_in_both_orders(reviews: ReviewsMini) -> None:
    judge = ExactJudge(reviews)
    q = reviews.questions("test")[1]
    rng = random.Random(3)
    pos_short = reviews.generate(q, rng, {"sentiment": 1.0, "length": -1.0})
    neg_long = reviews.generate(q, rng, {"sentiment": -1.0, "length": 1.0})
    for user_id, expected in [
        ("positive", 1.0),
        ("concise", 1.0),
        ("negative", 0.0),
        ("verbose", 0.0),
        ("positive+concise", 1.0),
        ("negative+verbose", 0.0),
    ]:
        desc = reviews.user(user_id).description
        assert judge.compare(q.text, desc, pos_short, neg_long) == expected, user_id
        assert judge.compare(q.text, desc, neg_long, pos_short) == 1.0 - expected, user_id
    assert judge.compare(q.text, reviews.user("positive").description, pos_short, pos_short) == 0.5
    with pytest.raises(KeyError, match="no user described"):
        judge.compare(q.text, "Someone else.", pos_short, neg_long)


def test_ties_are_rare(reviews: ReviewsMini) -> None:
    pairs = sample_pairs(reviews, reviews.questions("train"), 2, seed=0)
    judge = ExactJudge(reviews)
    ties = [
        judge.compare_for(user, q, a, b) == 0.5 for user in reviews.users() for q, a, b in pairs
    ]
    assert sum(ties) / len(ties) < 0.08


def test_half_of_the_pairs_contrast_on_every_attribute(reviews: ReviewsMini) -> None:
    rng = random.Random(0)
    contrasting = 0
    for _ in range(400):
        first, second = reviews.pair_attributes(rng)
        for value in (*first.values(), *second.values()):
            assert 0.5 <= abs(value) <= 1.0
        signs = [first[name] * second[name] < 0 for name in reviews.attributes()]
        contrasting += all(signs)
    # Contrasting pairs (1/2) plus independent ones that happen to be opposite (1/2 * 1/4).
    assert 0.55 < contrasting / 400 < 0.70
    # Measured from the text: most pairs put a short review (<= 2 sentences) against a long
    # one (>= 4), some compare two reviews of the same kind.
    pairs = sample_pairs(reviews, reviews.questions("train"), 2, seed=0)
    lengths = [sorted(review.count(".") for review in (a, b)) for _, a, b in pairs]
    mixed = [short <= 2 and long >= 4 for short, long in lengths]
    assert 0.65 < sum(mixed) / len(mixed) < 0.85


def test_records_are_labelled_by_the_judge_and_shared_across_users(reviews: ReviewsMini) -> None:
    records = build_records(reviews, reviews.users("trained"), split="train", seed=0)
    assert {r.user_id for r in records} == {"positive", "negative", "concise", "verbose"}
    by_id = {q.id: q for q in reviews.questions()}
    for record in records:
        q = by_id[record.question_id or ""]
        assert q.split == "train"
        user = reviews.user(record.user_id)
        assert reviews.utility(user, q, record.chosen) > reviews.utility(user, q, record.rejected)
        assert record.user_description == user.description
    # Opposite users disagree on every shared pair they both kept.
    pos = {
        (r.question_id, frozenset((r.chosen, r.rejected))): r.chosen
        for r in records
        if r.user_id == "positive"
    }
    neg = {
        (r.question_id, frozenset((r.chosen, r.rejected))): r.chosen
        for r in records
        if r.user_id == "negative"
    }
    shared = pos.keys() & neg.keys()
    assert len(shared) > 300
    assert all(pos[k] != neg[k] for k in shared)
    # Seeded: the same seed gives the same records, another seed other ones.
    again = build_records(reviews, reviews.users("trained"), split="train", seed=0)
    assert again == records
    other = build_records(reviews, reviews.users("trained"), split="train", seed=1)
    assert other != records


def test_second_domain_goes_through_the_same_harness() -> None:
    domain = Recipes()
    records = build_records(domain, domain.users("trained"), split="train", pairs_per_question=3)
    assert records
    assert {r.user_id for r in records} <= {"spicy", "mild", "brief"}
    judge = ExactJudge(domain)
    q = domain.questions("test")[0]
    rng = random.Random(0)
    hot = domain.generate(q, rng, {"heat": 1.0, "steps": -1.0})
    mild = domain.generate(q, rng, {"heat": -1.0, "steps": 1.0})
    assert judge.compare(q.text, "Hot and brief.", hot, mild) == 1.0
    assert judge.compare(q.text, "Likes it mild.", hot, mild) == 0.0
    corpus = domain.corpus(random.Random(0), n=5)
    assert "Likes it hot." in corpus
    assert any(text.startswith("For ") for text in corpus)
