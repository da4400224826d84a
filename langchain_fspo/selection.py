"""Shot selection: which of a user's stored preferences go into the few-shot prompt.

`PreferenceMemory.select` fetches candidates from the store; the pure functions here rank them.
Every strategy returns examples **oldest to newest** (`chronological`), so the same set of shots
always renders the same prompt prefix (a server's prefix cache can reuse it).

Strategies by name (`Strategy`):

- `"recent"`: the user's newest `k` examples.
- `"relevant"`: the `k` examples whose prompt is nearest the query, by the store's embedding index.
- `"diverse"`: maximal marginal relevance (MMR) over a candidate pool: relevant to the query yet
  unlike each other. Uses the store's embeddings, or bag-of-words cosine when it has none.
- a callable `(examples, query, k) -> examples` (`SelectionFunction`) given all the user's
  examples, oldest first.

Example:
    >>> from langchain_fspo.preference import PreferenceExample
    >>> pool = [
    ...     PreferenceExample(prompt=p, chosen="yes", id=f"{i:024x}")
    ...     for i, p in enumerate(["cats and dogs", "dogs and cats", "tax law"])
    ... ]
    >>> [ex.prompt for ex in mmr_select(pool, lexical_vectors([e.prompt for e in pool]), None, 2)]
    ['dogs and cats', 'tax law']
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

from langchain_fspo.preference import PreferenceExample

__all__ = [
    "DEFAULT_MMR_LAMBDA",
    "STRATEGY_NAMES",
    "SelectionFunction",
    "Strategy",
    "StrategyName",
    "chronological",
    "cosine",
    "lexical_vectors",
    "mmr_indices",
    "mmr_select",
    "normalize",
]

StrategyName = Literal["recent", "relevant", "diverse"]
STRATEGY_NAMES: tuple[StrategyName, ...] = ("recent", "relevant", "diverse")

SelectionFunction = Callable[
    [Sequence[PreferenceExample], str | None, int], Sequence[PreferenceExample]
]
"""A user-supplied strategy: `(all examples oldest first, query or None, k) -> chosen examples`."""

Strategy = StrategyName | SelectionFunction

DEFAULT_MMR_LAMBDA = 0.5
"""Weight of relevance against novelty in `mmr_select` (1.0 = relevance only)."""

_TOKEN = re.compile(r"\w+", re.UNICODE)


def chronological(examples: Sequence[PreferenceExample]) -> list[PreferenceExample]:
    """Sort examples oldest first: by creation time, then id (ids made by the memory sort by time).

    Example:
        >>> from datetime import UTC, datetime
        >>> a = PreferenceExample(
        ...     prompt="q", chosen="a", created_at=datetime(2025, 1, 2, tzinfo=UTC)
        ... )
        >>> b = PreferenceExample(
        ...     prompt="q", chosen="b", created_at=datetime(2025, 1, 1, tzinfo=UTC)
        ... )
        >>> [e.chosen for e in chronological([a, b])]
        ['b', 'a']
    """

    def key(ex: PreferenceExample) -> tuple[float, str]:
        stamp = ex.created_at.timestamp() if ex.created_at is not None else float("-inf")
        return (stamp, ex.id or "")

    return sorted(examples, key=key)


def normalize(vector: Sequence[float]) -> list[float]:
    """Scale `vector` to unit length (a zero vector stays zero)."""
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        return [0.0 for _ in vector]
    return [x / norm for x in vector]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0.0 when either is zero).

    Example:
        >>> round(cosine([1.0, 0.0], [1.0, 1.0]), 3)
        0.707
    """
    if len(a) != len(b):
        msg = f"Cannot compare vectors of {len(a)} and {len(b)} dimensions."
        raise ValueError(msg)
    dot = float(sum(map(operator.mul, a, b)))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return dot / (na * nb)


def lexical_vectors(texts: Sequence[str]) -> list[list[float]]:
    r"""Bag-of-words count vectors over the texts' shared vocabulary (lower-cased `\w+` tokens).

    The lexical stand-in for embeddings when the store has no index; compare with `cosine`.

    Example:
        >>> lexical_vectors(["a b b", "b c"])
        [[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]]
    """
    counts = [Counter(_TOKEN.findall(text.lower())) for text in texts]
    vocabulary: dict[str, int] = {}
    for counter in counts:
        for token in counter:
            vocabulary.setdefault(token, len(vocabulary))
    vectors = []
    for counter in counts:
        row = [0.0] * len(vocabulary)
        for token, n in counter.items():
            row[vocabulary[token]] = float(n)
        vectors.append(row)
    return vectors


def mmr_select(
    candidates: Sequence[PreferenceExample],
    vectors: Sequence[Sequence[float]],
    query_vector: Sequence[float] | None,
    k: int,
    *,
    lambda_mult: float = DEFAULT_MMR_LAMBDA,
) -> list[PreferenceExample]:
    """Pick `k` candidates by maximal marginal relevance; return them oldest first.

    Greedily takes the candidate maximising
    `lambda_mult * sim(candidate, query) - (1 - lambda_mult) * max sim(candidate, picked)`.
    Without a query the relevance term is zero: the first pick is the newest candidate, then
    each pick is the one least like those already picked (farthest-point sampling). Ties go to
    the newer candidate, so the result is deterministic.

    Args:
        candidates: the pool, in any order.
        vectors: one vector per candidate (embeddings or `lexical_vectors`).
        query_vector: the query's vector, or None.
        k: how many to pick.
        lambda_mult: relevance weight in [0, 1].
    """
    if len(vectors) != len(candidates):
        msg = f"Got {len(vectors)} vectors for {len(candidates)} candidates; they must match."
        raise ValueError(msg)
    if not 0.0 <= lambda_mult <= 1.0:
        msg = f"`lambda_mult` must lie in [0, 1], got {lambda_mult}."
        raise ValueError(msg)
    pool = chronological(candidates)
    position = {id(ex): i for i, ex in enumerate(candidates)}
    ordered = [vectors[position[id(ex)]] for ex in pool]
    return [pool[i] for i in mmr_indices(ordered, query_vector, k, lambda_mult=lambda_mult)]


def mmr_indices(
    vectors: Sequence[Sequence[float]],
    query_vector: Sequence[float] | None,
    k: int,
    *,
    lambda_mult: float = DEFAULT_MMR_LAMBDA,
) -> list[int]:
    """The positions `mmr_select` picks among `vectors`, given oldest first; ascending.

    Example:
        >>> mmr_indices([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]], None, 2)
        [0, 2]
    """
    import numpy as np  # numpy only here: a pure-Python MMR over 32 x 384 takes ~15 ms

    n = len(vectors)
    matrix = np.array(vectors, dtype=np.float64).reshape(n, -1)
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    unit = matrix / np.where(norms > 0, norms, 1.0)[:, None]  # a zero row stays zero
    weighted = np.zeros(n)
    if query_vector is not None:
        query = np.asarray(query_vector, dtype=np.float64).reshape(-1)
        length = float(np.linalg.norm(query))
        if length > 0.0:
            weighted = lambda_mult * (unit @ (query / length))
    similarity = unit @ unit.T  # pairwise, once
    penalty = 1.0 - lambda_mult
    closest = np.zeros(n)  # max similarity to anything picked so far (0 before the first pick)
    score = np.empty(n)
    picked: list[int] = []
    for _ in range(min(k, n)):
        np.subtract(weighted, np.multiply(closest, penalty, out=score), out=score)
        best = n - 1 - int(np.argmax(score[::-1]))  # newest first wins ties
        picked.append(best)
        weighted[best] = -np.inf  # never picked twice
        row = similarity[best]
        closest = row.copy() if len(picked) == 1 else np.maximum(closest, row, out=closest)
    return sorted(picked)
