"""The synthetic-domain interface: questions, a response generator, users and an exact judge.

A `Domain` is everything the harness needs to reproduce a preference experiment offline:

- a pool of `Question`s with a fixed train/test split (held-out questions for evaluation);
- a response generator whose attributes can be set (or sampled) and whose wording varies;
- `SimUser`s defined by attribute weights, with a natural-language description, split into
  users trained on and users only evaluated ("interpolated");
- an exact, user-aware `utility(user, question, response)` that is continuous, so that two
  different responses rarely tie; the judge compares two responses by it.

The harness (`fspo_train.reviews_mini.data`, `fspo_train.reviews_mini.runner`) only talks to
this interface, so a new domain is a subclass with five methods.
`fspo_train.reviews_mini.reviews.ReviewsMini` is the reference domain.

Example:
    >>> from fspo_train.reviews_mini.reviews import ReviewsMini
    >>> domain = ReviewsMini(seed=0)
    >>> user = domain.user("positive")
    >>> q = domain.questions("test")[0]
    >>> good = domain.generate(q, random.Random(0), {"sentiment": 1.0, "length": 0.0})
    >>> bad = domain.generate(q, random.Random(0), {"sentiment": -1.0, "length": 0.0})
    >>> domain.utility(user, q, good) > domain.utility(user, q, bad)
    True
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Domain", "Question", "SimUser", "strong_value"]

Split = Literal["train", "validation", "test"]
UserGroup = Literal["trained", "interpolated"]


@dataclass(frozen=True)
class Question:
    """One prompt of the domain's pool."""

    id: str
    """Stable id (groups the same question across users)."""
    text: str
    """The prompt the model answers."""
    split: Split
    """`train` questions build training records; `test` questions are held out;
    `validation` questions (none unless asked for) choose hyperparameters, never train."""
    slots: Mapping[str, str] = field(default_factory=dict)
    """Domain-specific fields the generator and judge use (e.g. the title being reviewed)."""


@dataclass(frozen=True)
class SimUser:
    """A simulated user: weights over the domain's attributes, and how to describe them."""

    id: str
    """User id (also the preference-memory namespace)."""
    weights: Mapping[str, float]
    """Attribute name -> weight in the utility (sign = direction, 0 = indifferent)."""
    description: str
    """Natural-language description (the oracle / RAT target)."""
    group: UserGroup
    """`trained` users build training records; `interpolated` ones are only evaluated."""


def strong_value(rng: random.Random, sign: float | None = None) -> float:
    """An attribute value of clear strength: `sign` (random when None) times U(0.5, 1)."""
    if sign is None:
        sign = rng.choice((-1.0, 1.0))
    return sign * rng.uniform(0.5, 1.0)


class Domain(ABC):
    """A synthetic preference domain with an exact judge. Subclass it to add a domain.

    Subclasses implement `questions`, `users`, `attributes`, `generate` and `score`; the
    utility of a response for a user is `sum(w_a * score_a)` over the user's weights, plus the
    domain's `penalty` for malformed text (the same for every user).
    """

    name: str = "domain"

    @abstractmethod
    def questions(self, split: Split | None = None) -> list[Question]:
        """The question pool, or the part of it in `split`."""

    @abstractmethod
    def users(self, group: UserGroup | None = None) -> list[SimUser]:
        """All simulated users, or those of `group`."""

    @abstractmethod
    def attributes(self) -> Sequence[str]:
        """Names of the controllable attributes (keys of `SimUser.weights`)."""

    @abstractmethod
    def generate(
        self,
        question: Question,
        rng: random.Random,
        attributes: Mapping[str, float] | None = None,
    ) -> str:
        """A response to `question`; `attributes` (each in [-1, 1]) steer it, None samples them.

        The wording must vary with `rng` (synonyms, sentence choice), not only the attributes.
        """

    @abstractmethod
    def score(self, question: Question, response: str) -> dict[str, float]:
        """Measure each attribute of `response` exactly (about [-1, 1] each), from its text."""

    def penalty(self, question: Question, response: str) -> float:  # noqa: ARG002
        """A non-negative cost for malformed text (the same for every user). Default: none."""
        return 0.0

    def pair_attributes(self, rng: random.Random) -> tuple[dict[str, float], dict[str, float]]:
        """Attributes of the two responses of one preference pair.

        Default: each attribute of the first response is drawn from +-U(0.5, 1). Half of the
        pairs are *contrasting* (the second response is opposite on every attribute, like the
        paper's responses written from different views: every such pair says something about
        every user); in the other half the second response's attributes are drawn
        independently, so pairs also compare two short or two positive responses. Which
        response a user prefers is always left to the judge.
        """
        first = {name: strong_value(rng) for name in self.attributes()}
        contrasting = rng.random() < 0.5  # noqa: PLR2004 - half and half
        second = {
            name: strong_value(rng, -math.copysign(1.0, value) if contrasting else None)
            for name, value in first.items()
        }
        return first, second

    def corpus(self, rng: random.Random, n: int = 400) -> list[str]:
        """Texts to train the tokenizer on: questions and random responses."""
        pool = self.questions()
        texts: list[str] = []
        for _ in range(n):
            q = rng.choice(pool)
            texts.extend([q.text, self.generate(q, rng)])
        texts.extend(u.description for u in self.users())
        return texts

    # ------------------------------------------------------------------ derived helpers

    def user(self, user_id: str) -> SimUser:
        """The user called `user_id`."""
        for u in self.users():
            if u.id == user_id:
                return u
        known = ", ".join(u.id for u in self.users())
        msg = f"Unknown user {user_id!r} in domain {self.name!r}; known users: {known}."
        raise KeyError(msg)

    def question(self, question_id: str) -> Question:
        """The question with id `question_id`."""
        for q in self.questions():
            if q.id == question_id:
                return q
        msg = f"Unknown question id {question_id!r} in domain {self.name!r}."
        raise KeyError(msg)

    def utility(self, user: SimUser, question: Question, response: str) -> float:
        """How much `user` likes `response`: weighted attribute scores minus the penalty."""
        scores = self.score(question, response)
        value = sum(w * scores.get(name, 0.0) for name, w in user.weights.items())
        return value - self.penalty(question, response)
