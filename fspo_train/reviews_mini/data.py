"""From a `Domain` to labelled per-user preference records, with the domain's exact judge.

The pipeline mirrors the paper's (arXiv 2502.19312, §5) with the LLM parts replaced by
exact ones: for each question, response pairs are generated once and shared by every user (so
users on the same axis disagree on the same pairs); half of the pairs contrast on every
attribute (`Domain.pair_attributes`), as the paper's responses come from different views; each
user labels every pair with the judge in both orders, and a pair is kept only when both orders
agree and it is not a tie.

Example:
    >>> from fspo_train.reviews_mini.reviews import ReviewsMini
    >>> domain = ReviewsMini(seed=0, num_questions=20)
    >>> records = build_records(domain, domain.users("trained"), split="train", seed=0)
    >>> {r.user_id for r in records} == {"positive", "negative", "concise", "verbose"}
    True
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from fspo_train.data.records import PreferenceRecord
from fspo_train.reviews_mini.domain import Domain, Question, SimUser, Split

__all__ = ["ExactJudge", "build_records", "sample_pairs"]


class ExactJudge:
    """A user-aware pairwise judge that compares responses by the domain's exact utility.

    It follows the `fspo_train.eval.judges.Judge` protocol, `compare(question, user_description,
    a, b)` -> 1.0 when `a` is preferred, 0.0 when `b` is, 0.5 for a tie; the user and the
    question are looked up by their description and text. Each comparison is made in both
    orders (as the paper's protocol does) and an order-dependent verdict would count as a
    tie; an exact judge never has one.

    Example:
        >>> from fspo_train.reviews_mini.reviews import ReviewsMini
        >>> domain = ReviewsMini()
        >>> judge = ExactJudge(domain)
        >>> q = domain.questions("test")[0]
        >>> user = domain.user("negative")
        >>> judge.compare(q.text, user.description, "The plot is dull.", "The plot is good.")
        1.0
    """

    def __init__(self, domain: Domain) -> None:
        """Judge for the users and questions of `domain`."""
        self.domain = domain
        self.name = f"exact-judge({domain.name})"
        self._users = {u.description: u for u in domain.users()}
        self._questions = {q.text: q for q in domain.questions()}

    def _lookup(self, question: str, user_description: str | None) -> tuple[SimUser, Question]:
        user = self._users.get(user_description or "")
        if user is None:
            msg = (
                f"The exact judge of {self.domain.name!r} knows no user described as "
                f"{user_description!r}; pass one of the domain's user descriptions."
            )
            raise KeyError(msg)
        q = self._questions.get(question)
        if q is None:
            msg = f"The exact judge of {self.domain.name!r} knows no question {question!r}."
            raise KeyError(msg)
        return user, q

    def compare(self, question: str, user_description: str | None, a: str, b: str) -> float:
        """Score `a` against `b` for the user described (both orders, ties half)."""
        user, q = self._lookup(question, user_description)
        forward = self.compare_for(user, q, a, b)
        backward = self.compare_for(user, q, b, a)
        return (forward + 1.0 - backward) / 2

    def compare_for(self, user: SimUser, question: Question, first: str, second: str) -> float:
        """One order: 1.0 if `user` prefers `first`, 0.0 if `second`, 0.5 on a tie."""
        a = self.domain.utility(user, question, first)
        b = self.domain.utility(user, question, second)
        if a > b:
            return 1.0
        if b > a:
            return 0.0
        return 0.5


def sample_pairs(
    domain: Domain, questions: Sequence[Question], pairs_per_question: int, seed: int
) -> list[tuple[Question, str, str]]:
    """Response pairs for each question, their attributes from `Domain.pair_attributes`."""
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not secrets
    pairs = []
    for question in questions:
        for _ in range(pairs_per_question):
            first_attributes, second_attributes = domain.pair_attributes(rng)
            first = domain.generate(question, rng, first_attributes)
            second = domain.generate(question, rng, second_attributes)
            for _retry in range(10):
                if second != first:
                    break
                second = domain.generate(question, rng, second_attributes)
            if second != first:
                pairs.append((question, first, second))
    return pairs


def build_records(
    domain: Domain,
    users: Sequence[SimUser],
    *,
    split: Split = "train",
    pairs_per_question: int = 2,
    seed: int = 0,
    judge: ExactJudge | None = None,
) -> list[PreferenceRecord]:
    """Label shared random pairs for every user; keep the order-stable, non-tied ones.

    Args:
        domain: The domain (questions, generator, utility).
        users: Who labels.
        split: Which questions (`train` for training records, `test` for held-out ones).
        pairs_per_question: Response pairs generated per question.
        seed: Seeds the responses; the same seed gives the same records.
        judge: Defaults to `ExactJudge(domain)`.

    Returns:
        Records grouped by user, in question order within a user.
    """
    judge = judge or ExactJudge(domain)
    pairs = sample_pairs(domain, domain.questions(split), pairs_per_question, seed)
    records = []
    for user in users:
        for question, first, second in pairs:
            forward = judge.compare_for(user, question, first, second)
            backward = judge.compare_for(user, question, second, first)
            if forward == 0.5 or forward + backward != 1.0:  # noqa: PLR2004 - tie or order bias
                continue
            chosen, rejected = (first, second) if forward == 1.0 else (second, first)
            records.append(
                PreferenceRecord(
                    user_id=user.id,
                    question=question.text,
                    chosen=chosen,
                    rejected=rejected,
                    user_description=user.description,
                    question_id=question.id,
                    provenance={
                        "domain": domain.name,
                        "split": split,
                        "labeller": "exact-judge",
                        "utility_chosen": domain.utility(user, question, chosen),
                        "utility_rejected": domain.utility(user, question, rejected),
                    },
                )
            )
    return records
