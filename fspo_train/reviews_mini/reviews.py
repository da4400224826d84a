"""Reviews-mini: the paper's Reviews domain in miniature, with an exact judge.

The paper's Reviews users prefer positive or negative, concise or verbose reviews of real titles
(arXiv 2502.19312, §5 and App. A.4). Here the titles are invented ("The Crimson Lantern"), the
reviews are built from sentence templates with synonyms (4 to 35 words), and the judge measures
the two attributes exactly from the text:

- **sentiment**: the mean polarity of the review's sentiment adjectives, each with a fixed
  weight in [-1, 1] ("brilliant" 1.0, "decent" 0.25, "mediocre" -0.25, "dreadful" -1.0), so two
  reviews rarely tie;
- **length**: `tanh((words - 15) / 8)`, about -0.8 for one short sentence and +0.9 for five;
- **penalty**: 2 x the share of sentences that are not well formed (no template matches, or
  the wrong title) or repeated, so that a model cannot win by babbling adjectives.

Users: four trained users (`positive`, `negative`, `concise`, `verbose`), each with one attribute
weight, and four interpolated users (the combinations, e.g. `positive+concise`) that training
never sees, as in the paper's Table 4. Descriptions follow the paper: "This user prefers
positive and concise reviews."

Example:
    >>> import random
    >>> domain = ReviewsMini(seed=0)
    >>> q = domain.questions("test")[0]
    >>> text = domain.generate(q, random.Random(1), {"sentiment": 1.0, "length": -1.0})
    >>> scores = domain.score(q, text)
    >>> scores["sentiment"] > 0, scores["length"] < 0, domain.penalty(q, text)
    (True, True, 0.0)
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from functools import cached_property

from fspo_train.reviews_mini.domain import Domain, Question, SimUser, Split, UserGroup, strong_value

__all__ = ["NEGATIVE", "POSITIVE", "ReviewsMini"]

TITLE_ADJECTIVES = (
    "Crimson", "Silent", "Hollow", "Golden", "Broken", "Distant", "Hidden", "Iron", "Painted",
    "Quiet", "Burning", "Frozen", "Velvet", "Scarlet", "Wandering", "Midnight", "Paper", "Glass",
    "Silver", "Wild",
)  # fmt: skip
TITLE_NOUNS = (
    "Harbor", "Lantern", "Garden", "River", "Orchard", "Crown", "Mirror", "Tower", "Compass",
    "Meadow", "Engine", "Voyage", "Winter", "Kingdom", "Signal", "Feather", "Bridge", "Canyon",
    "Archive", "Violin",
)  # fmt: skip
MEDIA = ("film", "novel", "series", "play", "anime")

POSITIVE: Mapping[str, float] = {
    "brilliant": 1.0, "wonderful": 0.95, "superb": 0.9, "delightful": 0.8, "great": 0.75,
    "charming": 0.65, "good": 0.55, "enjoyable": 0.5, "pleasant": 0.4, "decent": 0.25,
}  # fmt: skip
"""Positive sentiment adjectives and their polarity weight."""
NEGATIVE: Mapping[str, float] = {
    "dreadful": -1.0, "awful": -0.95, "terrible": -0.9, "boring": -0.8, "bad": -0.75,
    "clumsy": -0.65, "dull": -0.55, "weak": -0.5, "bland": -0.4, "mediocre": -0.25,
}  # fmt: skip
"""Negative sentiment adjectives and their polarity weight."""
LEXICON: Mapping[str, float] = {**POSITIVE, **NEGATIVE}

INTENSIFIERS = ("", "truly ", "really ", "quite ", "rather ")
ASPECTS = ("story", "acting", "pacing", "ending", "dialogue", "music", "characters", "world")
DAYS = ("Monday", "Friday", "Sunday", "weekend")
SEASONS = ("spring", "summer", "autumn", "winter")

# Sentence templates. Slots: {title} {medium} {intens} {adj} {aspect} {day} {season}.
OPENINGS = (
    "{title} is {intens}{adj}.",
    "I found {title} {intens}{adj}.",
    "{title} is a {adj} {medium}.",
)
ASPECT_LINES = (
    "The {aspect} is {intens}{adj}.",
    "The {aspect} feels {adj}.",
    "Its {aspect} is {intens}{adj}.",
)
CLOSINGS = (
    "Overall it is {intens}{adj}.",
    "In the end the {medium} is {adj}.",
)
FILLERS = (
    "I finished it on a {day}.",
    "It came out last {season}.",
    "A friend told me about it.",
)
_ALL_TEMPLATES = OPENINGS + ASPECT_LINES + CLOSINGS + FILLERS

_WORD = re.compile(r"[A-Za-z']+")
_SENTENCE_END = re.compile(r"(?<=\.)\s+")

DESCRIPTION = "This user prefers {} reviews."
_TRAINED = {
    "positive": ({"sentiment": 1.0}, "positive"),
    "negative": ({"sentiment": -1.0}, "negative"),
    "concise": ({"length": -1.0}, "concise"),
    "verbose": ({"length": 1.0}, "verbose"),
}


def _alternation(words: Sequence[str]) -> str:
    return "(?:" + "|".join(re.escape(w) for w in words) + ")"


class ReviewsMini(Domain):
    """Reviews of invented titles; users prefer a sentiment, a length, or both.

    Args:
        seed: Seeds the question pool and its split (the same seed, the same pool).
        num_questions: Size of the pool (distinct titles, at most 400).
        test_fraction: Share of the pool held out as test questions.
        validation_fraction: Share of the pool held out as validation questions (for
            choosing hyperparameters; 0: none, and the split is the one without them).
    """

    name = "reviews-mini"

    def __init__(
        self,
        seed: int = 0,
        num_questions: int = 240,
        test_fraction: float = 0.2,
        validation_fraction: float = 0.0,
    ) -> None:
        titles = [f"The {a} {n}" for a in TITLE_ADJECTIVES for n in TITLE_NOUNS]
        if not 2 <= num_questions <= len(titles):  # noqa: PLR2004 - train and test
            msg = f"`num_questions`={num_questions} must be between 2 and {len(titles)}."
            raise ValueError(msg)
        if not 0.0 < test_fraction < 1.0:
            msg = f"`test_fraction`={test_fraction} must be strictly between 0 and 1."
            raise ValueError(msg)
        if not 0.0 <= validation_fraction < 1.0 - test_fraction:
            msg = f"`validation_fraction`={validation_fraction} must be in [0, 1 - test_fraction)."
            raise ValueError(msg)
        rng = random.Random(seed)  # noqa: S311 - seeded sampling, not secrets
        chosen = rng.sample(titles, num_questions)
        n_test = max(1, round(num_questions * test_fraction))
        n_held = n_test + round(num_questions * validation_fraction)
        self._questions = [
            Question(
                id=f"rm-{i:03d}",
                text=f"Review the {medium} {title}.",
                split="test" if i < n_test else "validation" if i < n_held else "train",
                slots={"title": title, "medium": medium},
            )
            for i, title in enumerate(chosen)
            for medium in [rng.choice(MEDIA)]
        ]
        self._users = self._make_users()
        self._pattern_cache: dict[tuple[str, str], list[re.Pattern[str]]] = {}

    @staticmethod
    def _make_users() -> list[SimUser]:
        users = [
            SimUser(id=uid, weights=w, description=DESCRIPTION.format(word), group="trained")
            for uid, (w, word) in _TRAINED.items()
        ]
        for sentiment in ("positive", "negative"):
            for length in ("concise", "verbose"):
                weights = {**_TRAINED[sentiment][0], **_TRAINED[length][0]}
                users.append(
                    SimUser(
                        id=f"{sentiment}+{length}",
                        weights=weights,
                        description=DESCRIPTION.format(f"{sentiment} and {length}"),
                        group="interpolated",
                    )
                )
        return users

    # ------------------------------------------------------------------ Domain API

    def questions(self, split: Split | None = None) -> list[Question]:
        """The pool of review requests (`split` filters train, validation or test)."""
        return [q for q in self._questions if split is None or q.split == split]

    def users(self, group: UserGroup | None = None) -> list[SimUser]:
        """The 4 trained and 4 interpolated users."""
        return [u for u in self._users if group is None or u.group == group]

    def attributes(self) -> Sequence[str]:
        """`sentiment` and `length`."""
        return ("sentiment", "length")

    def generate(
        self,
        question: Question,
        rng: random.Random,
        attributes: Mapping[str, float] | None = None,
    ) -> str:
        """A review of the question's title.

        `sentiment` in [-1, 1]: the chance that each sentence has the sign's polarity is
        `0.5 + 0.5 * |sentiment|`. `length` in [-1, 1]: 1 sentence at -1 up to 5 at +1.
        Missing attributes are sampled: sentiment from +-U(0.5, 1), length from +-U(0.5, 1).
        """
        attributes = attributes or {}
        sentiment = attributes.get("sentiment")
        if sentiment is None:
            sentiment = strong_value(rng)
        length = attributes.get("length")
        if length is None:
            length = strong_value(rng)
        n = min(5, max(1, 1 + round((length + 1) / 2 * 4)))
        templates = [rng.choice(OPENINGS)]
        middle = n - 1 if n < 3 else n - 2  # noqa: PLR2004 - three sentences get a closing
        aspects = rng.sample(ASPECTS, k=min(middle, len(ASPECTS)))
        fillers_left = 1 if n >= 4 else 0  # noqa: PLR2004 - long reviews may chat a little
        slots: list[dict[str, str]] = [{}]
        for aspect in aspects:
            if fillers_left and rng.random() < 0.5:  # noqa: PLR2004
                fillers_left -= 1
                templates.append(rng.choice(FILLERS))
                slots.append({})
            else:
                templates.append(rng.choice(ASPECT_LINES))
                slots.append({"aspect": aspect})
        if n >= 3:  # noqa: PLR2004
            templates.append(rng.choice(CLOSINGS))
            slots.append({})
        p_match = 0.5 + 0.5 * min(1.0, abs(sentiment))
        sign = 1 if sentiment >= 0 else -1
        sentences = []
        for template, extra in zip(templates, slots, strict=True):
            polarity = sign if rng.random() < p_match else -sign
            lexicon = POSITIVE if polarity > 0 else NEGATIVE
            values = {
                "title": question.slots["title"],
                "medium": question.slots["medium"],
                "intens": rng.choice(INTENSIFIERS),
                "adj": rng.choice(list(lexicon)),
                "day": rng.choice(DAYS),
                "season": rng.choice(SEASONS),
                **extra,
            }
            sentences.append(template.format(**values))
        return " ".join(sentences)

    def score(self, question: Question, response: str) -> dict[str, float]:  # noqa: ARG002
        """`sentiment`: mean adjective polarity (0 with none); `length`: tanh((words-15)/8)."""
        words = [w.lower() for w in _WORD.findall(response)]
        polar = [LEXICON[w] for w in words if w in LEXICON]
        sentiment = sum(polar) / len(polar) if polar else 0.0
        length = math.tanh((len(words) - 15) / 8)
        return {"sentiment": sentiment, "length": length}

    def penalty(self, question: Question, response: str) -> float:
        """2 x the share of sentences that are malformed or repeated; 2 for an empty review."""
        sentences = [s for s in _SENTENCE_END.split(response.strip()) if s]
        if not sentences:
            return 2.0
        patterns = self._patterns(question.slots["title"], question.slots["medium"])
        seen: set[str] = set()
        bad = 0
        for sentence in sentences:
            if sentence in seen or not any(p.fullmatch(sentence) for p in patterns):
                bad += 1
            seen.add(sentence)
        return 2.0 * bad / len(sentences)

    # ------------------------------------------------------------------ grammar

    @cached_property
    def _slot_patterns(self) -> dict[str, str]:
        return {
            "intens": _alternation(INTENSIFIERS),
            "adj": _alternation(list(LEXICON)),
            "aspect": _alternation(ASPECTS),
            "day": _alternation(DAYS),
            "season": _alternation(SEASONS),
        }

    def _patterns(self, title: str, medium: str) -> list[re.Pattern[str]]:
        key = (title, medium)
        if key not in self._pattern_cache:
            self._pattern_cache[key] = self._compile(title, medium)
        return self._pattern_cache[key]

    def _compile(self, title: str, medium: str) -> list[re.Pattern[str]]:
        slots = {**self._slot_patterns, "title": re.escape(title), "medium": re.escape(medium)}
        patterns = []
        for template in _ALL_TEMPLATES:
            escaped = re.escape(template)
            for name, pattern in slots.items():
                escaped = escaped.replace(re.escape("{" + name + "}"), pattern)
            patterns.append(re.compile(escaped))
        return patterns
