"""`VectorMatrix`: one namespace's stored vectors as a numpy matrix, for exact nearest scans.

Rows are unit vectors with their norms kept beside them, so a cosine ranking is one
matrix-vector product and an L2 ranking needs no second copy. Rows are added, replaced and
removed in place (amortised O(1); a removal moves the last row into the gap), so an engine can
follow a store's writes without rebuilding the matrix. The exact scan is linear in the rows:
about 25-50 ms for 100k x 384 float32 on one shared core of the benchmark machine (memory
bound). Given a `VectorSearch` that approximates at this size, `nearest` reads only the coarse
lists nearest the query (`CoarseLists`: built on first use, kept in step by every write,
rebuilt as the rows outgrow them), filters their rows by sign code and ranks the rest exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_fspo.memory._vector_lists import REBUILD_GROWTH, CoarseLists
from langchain_fspo.memory._vector_search import VectorSearch

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["VectorMatrix"]

_MIN_CAPACITY = 16


class VectorMatrix:
    """Keys and float32 vectors of one namespace's field (see the module docstring)."""

    def __init__(self, dims: int, capacity: int = _MIN_CAPACITY) -> None:
        self.dims = dims
        self.keys: list[str] = []
        self._row: dict[str, int] = {}
        self._unit: NDArray[np.float32] = np.zeros((max(capacity, 1), dims), dtype=np.float32)
        self._norms: NDArray[np.float32] = np.zeros(max(capacity, 1), dtype=np.float32)
        self._lists: CoarseLists | None = None

    @classmethod
    def build(cls, keys: Sequence[str], vectors: Any, dims: int | None = None) -> VectorMatrix:
        """A matrix of `keys` and their `vectors` (rows of equal length; a later key wins)."""
        rows = np.asarray(vectors, dtype=np.float32)
        width = rows.shape[-1] if rows.size else int(dims or 1)
        matrix = cls(width, capacity=len(keys))
        if len(keys):
            matrix._fill(list(keys), rows.reshape(len(keys), width))
        return matrix

    def _fill(self, keys: list[str], rows: NDArray[np.float32]) -> None:
        norms = np.linalg.norm(rows, axis=1)
        safe = np.where(norms > 0, norms, 1.0).astype(np.float32)
        unit = rows / safe[:, None]
        for i, key in enumerate(keys):
            self._put(key, unit[i], float(norms[i]))

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._row

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (capacity included)."""
        lists = self._lists.nbytes if self._lists is not None else 0
        return int(self._unit.nbytes + self._norms.nbytes + lists)

    def _put(self, key: str, unit: NDArray[np.float32], norm: float) -> None:
        row = self._row.get(key)
        if row is None:
            row = len(self.keys)
            if row == len(self._norms):
                self._grow(2 * row)
            self.keys.append(key)
            self._row[key] = row
        self._unit[row] = unit
        self._norms[row] = norm
        if self._lists is not None:
            self._lists.set(row, unit.reshape(1, -1))

    def _grow(self, capacity: int) -> None:
        unit = np.zeros((capacity, self.dims), dtype=np.float32)
        norms = np.zeros(capacity, dtype=np.float32)
        unit[: len(self.keys)] = self._unit[: len(self.keys)]
        norms[: len(self.keys)] = self._norms[: len(self.keys)]
        self._unit, self._norms = unit, norms
        if self._lists is not None:
            self._lists.grow(capacity)

    def upsert(self, key: str, vector: Any) -> bool:
        """Set the vector of `key` (added when new); False (and nothing kept) on a wrong width."""
        row = np.asarray(vector, dtype=np.float32).reshape(-1)
        if row.shape[0] != self.dims:
            self.remove(key)
            return False
        norm = float(np.linalg.norm(row))
        self._put(key, row / norm if norm > 0 else row, norm)
        return True

    def remove(self, key: str) -> None:
        """Drop `key` if present (the last row moves into its place)."""
        row = self._row.pop(key, None)
        if row is None:
            return
        last = len(self.keys) - 1
        if self._lists is not None:
            self._lists.remove(row, last)
        if row != last:
            moved = self.keys[last]
            self.keys[row] = moved
            self._row[moved] = row
            self._unit[row] = self._unit[last]
            self._norms[row] = self._norms[last]
        self.keys.pop()

    def vector(self, row: int) -> NDArray[np.float32]:
        """The stored vector of `row` (unit row times its norm)."""
        vector: NDArray[np.float32] = self._unit[row] * self._norms[row]
        return vector

    def vectors(self, rows: Sequence[int]) -> NDArray[np.float32]:
        """The stored vectors of `rows`, one per line (one gather for a search's hits)."""
        picked = np.asarray(rows, dtype=np.intp)
        vectors: NDArray[np.float32] = self._unit[picked] * self._norms[picked, None]
        return vectors

    def stored(self, keys: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        """The stored vectors of those `keys` that have a row (one gather)."""
        held = [key for key in keys if key in self._row]
        rows = [self._row[key] for key in held]
        return dict(zip(held, self.vectors(rows), strict=True)) if rows else {}

    def lists(self) -> CoarseLists:
        """The rows' coarse lists, built now if they were not or the rows outgrew them.

        Then kept in step by writes (`CoarseLists`); rebuilt, with new centroids, once the
        matrix holds `REBUILD_GROWTH` times the rows they were trained on.
        """
        n = len(self.keys)
        if self._lists is None or n > REBUILD_GROWTH * self._lists.trained_rows:
            self._lists = CoarseLists.build(self._unit[:n], len(self._norms))
        return self._lists

    def nearest(
        self,
        target: Sequence[float] | NDArray[Any],
        limit: int,
        *,
        metric: str = "cosine",
        search: VectorSearch | None = None,
    ) -> list[int]:
        """The rows nearest `target`, best first (at most `limit`).

        `metric` "l2" ranks by Euclidean distance; anything else by cosine similarity. Exact
        unless `search` approximates at this many rows: then the exact ranking covers the
        rows the coarse lists and sign codes leave (see `VectorSearch`).
        """
        n = len(self.keys)
        if n == 0 or limit <= 0:
            return []
        query = np.asarray(target, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dims:
            msg = f"The query vector has {query.shape[0]} dimensions; the index has {self.dims}."
            raise ValueError(msg)
        length = float(np.linalg.norm(query)) or 1.0
        count = search.candidates(n, limit) if search is not None else None
        if search is not None and count is not None:
            rows = self.lists().search(query / length, search.probed(count), count)
            unit, norms = self._unit[rows], self._norms[rows]
        else:
            rows = None
            unit, norms = self._unit[:n], self._norms[:n]
        if metric == "l2":
            # |x - q|^2 = |x|^2 - 2 |x| (u . q) + |q|^2; the last term ranks nothing.
            scores = 2.0 * norms * (unit @ query) - norms * norms
        else:
            scores = unit @ (query / length)
        size = len(scores)
        count = min(limit, size)
        top = np.argpartition(-scores, count - 1)[:count] if count < size else np.arange(size)
        best = top[np.argsort(-scores[top], kind="stable")]
        return [int(i) for i in (best if rows is None else rows[best])]
