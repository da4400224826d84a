"""Deterministic ids and random generators derived from the run seed and a work item's key.

Every random choice of the pipeline (which seeds a batch shows, which responses form a pair,
which users are held out, ...) draws from `rng(seed, *key)`, a generator seeded from a hash of the
run seed and the choice's own key. Choices therefore do not depend on the order in which
concurrent work finishes, and a resumed run makes exactly the choices an uninterrupted run makes.
"""

from __future__ import annotations

import hashlib
import random
import re

__all__ = ["digest", "normalize_text", "rng", "slug"]

_SLUG_RE = re.compile(r"[^a-z0-9]+")


def digest(*parts: object, length: int = 12) -> str:
    """Short hex sha256 of the parts joined by a unit separator.

    Example:
        >>> digest("q", "What is tea?")
        'ffaff151f170'
    """
    joined = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:length]


def rng(seed: int, *key: object) -> random.Random:
    """A `random.Random` seeded from the run seed and a key (independent of call order)."""
    return random.Random(int(digest(seed, *key, length=16), 16))  # noqa: S311 - not cryptographic


def normalize_text(text: str) -> str:
    """Lower-cased, whitespace-collapsed text, used to de-duplicate questions."""
    return " ".join(text.lower().split())


def slug(text: str, max_len: int = 40) -> str:
    """A lower-case identifier made of `[a-z0-9-]` (empty input gives `"x"`)."""
    out = _SLUG_RE.sub("-", text.lower()).strip("-")[:max_len].strip("-")
    return out or "x"
