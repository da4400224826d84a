"""`VectorSearch`: how `relevant` and `diverse` search a large history; the sign-code filter.

Below `threshold` vectors per user the search is an exact scan of the user's float32 matrix.
At or above it (mode "auto"), each row also has a 1-bit code: the signs of its unit vector
minus a fixed centre (the mean unit row when the codes were first built), packed 64 dimensions
to a word (384 dims: 48 bytes, 1/32 of the float row). A search ranks every code by Hamming
distance to the query's code (XOR and popcount), keeps the `rerank` nearest (ties at the cut
kept), and ranks those exactly by cosine or L2 on their float rows. The pre-filter is still a
pass over every row, but over 32x fewer bytes and with integer work, so it grows linearly at
about a tenth of the exact scan's cost; the rerank is bounded by `rerank`. Recall is measured in
bench/memory_select.py (bench/results/memory_select.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from langchain_fspo.errors import MemoryConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["SignCodes", "VectorSearch"]

DEFAULT_THRESHOLD = 20_000
DEFAULT_RERANK = 1024


@dataclass(frozen=True, slots=True)
class VectorSearch:
    """How in-process vector search (in-memory and SQLite stores) ranks a user's vectors.

    Args:
        mode: "auto": exact below `threshold` vectors per user, the sign-code pre-filter and
            an exact rerank at or above it; "exact": always an exact scan.
        threshold: the per-user vector count from which "auto" approximates.
        rerank: how many pre-filter candidates are ranked exactly (at least 8 per result).

    Example:
        >>> from langchain_fspo.memory import PreferenceMemory, VectorSearch
        >>> memory = PreferenceMemory(vector_search=VectorSearch(mode="exact"))
        >>> VectorSearch().candidates(100_000, 8)  # rows reranked exactly at 100k vectors
        1024
        >>> VectorSearch().candidates(5_000, 8) is None  # below the threshold: exact
        True
    """

    mode: Literal["auto", "exact"] = "auto"
    threshold: int = DEFAULT_THRESHOLD
    rerank: int = DEFAULT_RERANK

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "exact"):
            msg = f"VectorSearch.mode must be 'auto' or 'exact', got {self.mode!r}."
            raise MemoryConfigError(msg)
        for name in ("threshold", "rerank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"VectorSearch.{name} must be a positive int, got {value!r}."
                raise MemoryConfigError(msg)

    def candidates(self, rows: int, limit: int) -> int | None:
        """How many pre-filter candidates a search of `limit` over `rows` reranks; None: exact."""
        if self.mode == "exact" or rows < self.threshold:
            return None
        wanted = max(self.rerank, 8 * limit)
        return wanted if wanted < rows else None


EXACT = VectorSearch(mode="exact")


class SignCodes:
    """Packed sign codes of a matrix's unit rows, column-major (`words` x capacity uint64)."""

    def __init__(self, center: NDArray[np.float32], capacity: int) -> None:
        self.center = center
        self.words = -(-center.shape[0] // 64)
        self.codes: NDArray[np.uint64] = np.zeros((self.words, capacity), dtype=np.uint64)

    def encode(self, unit: NDArray[np.float32]) -> NDArray[np.uint64]:
        """The codes of `unit` rows (n x dims) as an n x words array."""
        bits = np.packbits(unit - self.center > 0, axis=-1)
        padded = np.zeros((bits.shape[0], self.words * 8), dtype=np.uint8)
        padded[:, : bits.shape[1]] = bits
        codes: NDArray[np.uint64] = padded.view(np.uint64)
        return codes

    def set(self, start: int, unit: NDArray[np.float32]) -> None:
        """Write the codes of rows `start`, `start + 1`, ... from their unit vectors."""
        self.codes[:, start : start + unit.shape[0]] = self.encode(unit).T

    def move(self, to: int, source: int) -> None:
        self.codes[:, to] = self.codes[:, source]

    def grow(self, capacity: int, rows: int) -> None:
        codes = np.zeros((self.words, capacity), dtype=np.uint64)
        codes[:, :rows] = self.codes[:, :rows]
        self.codes = codes

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.center.nbytes)

    def nearest(self, unit_query: NDArray[np.float32], rows: int, count: int) -> NDArray[np.intp]:
        """The `count` rows (of the first `rows`) nearest the query's code, unordered.

        Rows tied with the last of them by Hamming distance are kept too.
        """
        query = self.encode(unit_query.reshape(1, -1))[0]
        distance = np.bitwise_count(self.codes[0, :rows] ^ query[0]).astype(np.uint16)
        for word in range(1, self.words):
            distance += np.bitwise_count(self.codes[word, :rows] ^ query[word])
        cumulative = np.cumsum(np.bincount(distance, minlength=64 * self.words + 1))
        cut = int(np.searchsorted(cumulative, count))
        return np.flatnonzero(distance <= cut)
