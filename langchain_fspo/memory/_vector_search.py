"""`VectorSearch`: how `relevant` and `diverse` search a large history; the sign codes.

Below `threshold` vectors per user the search is an exact scan of the user's float32 matrix.
At or above it (mode "auto") the matrix builds coarse lists (`CoarseLists`, an IVF index:
about sqrt(rows) k-means centroids, each row filed under its nearest) and a search reads the
lists nearest the query until it holds `probe` rows, keeps the `rerank` of them nearest by
1-bit sign code (`SignCodes`: the signs of a unit row minus a fixed centre, packed 64
dimensions to a word; 384 dims: 48 bytes, 1/32 of the float row; Hamming distance by XOR and
popcount; ties at the cut kept) and ranks those exactly by cosine or L2 on their float rows.
The cost is bounded by `probe` and `rerank`, not by the history (O(sqrt(rows)) for the
centroids). The trade-off is recall: a neighbour filed in an unprobed list, or dropped by the
coarse sign-code ranking, is missed, and with `probe` fixed the probed share shrinks as a
history grows. Measured recall@8 against exact (bench/results/vector_search.md,
bench/results/memory_select.md), 384-dim vectors, defaults: 1.00 at 20k, 0.965-0.982 at 100k,
0.87-0.93 at 200k (a search: 0.6 to 1.0 ms over that range; the exact scan 1.2 to 21 ms); raise
`probe` (unclustered embeddings) or `rerank` (tight clusters) for more, at more cost.
`diverse` searches for its candidate pool with `pool()`: `pool_probe` rows (fewer), approximating
from 4x that many vectors, since its MMR re-weighs every candidate's exact relevance anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from langchain_fspo.errors import MemoryConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["SignCodes", "VectorSearch"]

DEFAULT_THRESHOLD = 20_000
DEFAULT_RERANK = 512
DEFAULT_PROBE = 16384
DEFAULT_POOL_PROBE = 2048
POOL_THRESHOLD_FACTOR = 4
"""`pool()` approximates from this many times its probe (a quarter of the rows read)."""


@dataclass(frozen=True, slots=True)
class VectorSearch:
    """How in-process vector search (in-memory and SQLite stores) ranks a user's vectors.

    On PostgreSQL only `mode` applies: "exact" makes every search an exact scan in the
    database (the HNSW index is not asked); "auto" keeps the engine's own choice.

    Args:
        mode: "auto": exact below `threshold` vectors per user, the coarse lists, sign-code
            filter and exact rerank at or above it; "exact": always an exact scan.
        threshold: the per-user vector count from which "auto" approximates.
        rerank: how many rows are ranked exactly (at least 8 per result).
        probe: how many rows are read from the nearest coarse lists (at least `rerank`); a
            search that would read every row is exact.
        pool_probe: `probe` for the candidate pool of `diverse` (`pool()`): MMR weighs every
            candidate's relevance again, so its pool is drawn from fewer rows.

    Example:
        >>> from langchain_fspo.memory import PreferenceMemory, VectorSearch
        >>> memory = PreferenceMemory(vector_search=VectorSearch(mode="exact"))
        >>> VectorSearch().candidates(100_000, 8)  # rows reranked exactly at 100k vectors
        512
        >>> VectorSearch().probed(512)  # rows read from the nearest lists
        16384
        >>> VectorSearch().candidates(5_000, 8) is None  # below the threshold: exact
        True
        >>> VectorSearch().pool().probe  # rows `diverse` reads for its candidate pool
        2048
        >>> VectorSearch().pool().threshold  # and from how many vectors it approximates
        8192
    """

    mode: Literal["auto", "exact"] = "auto"
    threshold: int = DEFAULT_THRESHOLD
    rerank: int = DEFAULT_RERANK
    probe: int = DEFAULT_PROBE
    pool_probe: int = DEFAULT_POOL_PROBE

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "exact"):
            msg = f"VectorSearch.mode must be 'auto' or 'exact', got {self.mode!r}."
            raise MemoryConfigError(msg)
        for name in ("threshold", "rerank", "probe", "pool_probe"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"VectorSearch.{name} must be a positive int, got {value!r}."
                raise MemoryConfigError(msg)

    def candidates(self, rows: int, limit: int) -> int | None:
        """How many rows a search of `limit` over `rows` reranks exactly; None: an exact scan."""
        if self.mode == "exact" or rows < self.threshold:
            return None
        wanted = max(self.rerank, 8 * limit)
        return wanted if self.probed(wanted) < rows else None

    def pool(self) -> VectorSearch:
        """The search `diverse` draws its candidate pool with.

        `probe` is `pool_probe`, `rerank` an eighth of it (at least 8 per candidate still), and
        the search approximates from `POOL_THRESHOLD_FACTOR` times that many vectors (or
        `threshold`, if lower). MMR then weighs the pool by its exact relevance and diversity,
        so a candidate missed only lets the next-nearest in (bench/results/memory_select.md
        measures the picks' relevance against an exact pool). `mode="exact"` stays exact.
        """
        probe = min(self.probe, self.pool_probe)
        return replace(
            self,
            probe=probe,
            rerank=max(8, min(self.rerank, probe // 8)),
            threshold=min(self.threshold, POOL_THRESHOLD_FACTOR * probe),
        )

    def probed(self, candidates: int) -> int:
        """How many rows a search reads from the nearest coarse lists for `candidates`."""
        return max(self.probe, candidates)


class SignCodes:
    """1-bit codes: the signs of unit rows minus a fixed centre, packed 64 dimensions a word."""

    def __init__(self, center: NDArray[np.float32]) -> None:
        self.center = center
        self.words = -(-center.shape[0] // 64)

    def encode(self, unit: NDArray[np.float32]) -> NDArray[np.uint64]:
        """The codes of `unit` rows (n x dims) as an n x words array."""
        bits = np.packbits(unit - self.center > 0, axis=-1)
        padded = np.zeros((bits.shape[0], self.words * 8), dtype=np.uint8)
        padded[:, : bits.shape[1]] = bits
        codes: NDArray[np.uint64] = padded.view(np.uint64)
        return codes

    def nearest(
        self, unit_query: NDArray[np.float32], codes: NDArray[np.uint64], count: int
    ) -> NDArray[np.intp]:
        """Positions of the `count` of `codes` (words x n) nearest the query's code, unordered.

        Codes tied with the last of them by Hamming distance are kept too.
        """
        query = self.encode(unit_query.reshape(1, -1))[0].tolist()
        distance = np.bitwise_count(codes[0] ^ np.uint64(query[0])).astype(np.uint16)
        for word in range(1, self.words):
            distance += np.bitwise_count(codes[word] ^ np.uint64(query[word]))
        cumulative = np.cumsum(np.bincount(distance, minlength=64 * self.words + 1))
        cut = int(np.searchsorted(cumulative, count))
        return np.flatnonzero(distance <= cut)
