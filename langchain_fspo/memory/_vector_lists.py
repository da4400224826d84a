"""`CoarseLists`: an inverted-file (IVF) index over a `VectorMatrix`'s unit rows.

Built when a matrix's approximate search first engages: spherical k-means (`train`, a few
Lloyd iterations over a sample of at most 64 rows per list) picks about sqrt(rows) unit
centroids, and every row joins the list of its nearest centroid. Each list holds its rows'
numbers and, contiguously beside them, their 1-bit sign codes (`SignCodes`), so a search reads
the codes of the lists it probes without gathering rows from all over the matrix.

The lists follow the matrix's in-place writes: a new or replaced row is filed under its nearest
centroid with its new code, a removed row leaves its list in O(1) (its list's last member takes
its slot), and the row moved into a removal's gap keeps its list and code under its new row
number. The centroids and the codes' centre are not retrained by writes; the matrix rebuilds
the lists once it holds `REBUILD_GROWTH` times the rows they were trained on.

A search (`probe`) ranks the centroids against the query and reads the nearest lists until it
holds at least the rows asked for: O(sqrt(rows) + probe), not O(rows). The trade-off: a true
neighbour filed in a list whose centroid ranks below the probed ones is missed. Embeddings
without cluster structure need more probed rows for the same recall; recall@8 against the
exact scan is measured in tests/unit_tests/memory/test_vector_search.py and
bench/memory_select.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from langchain_fspo.memory._vector_search import SignCodes

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["REBUILD_GROWTH", "CoarseLists", "list_count", "train"]

REBUILD_GROWTH = 4
"""The lists are rebuilt once the matrix holds this many times the rows they were trained on."""

_ITERATIONS = 8
_SAMPLE_PER_LIST = 64
_CHUNK = 8192


def list_count(rows: int) -> int:
    """How many lists an index over `rows` rows gets (about their square root)."""
    return max(1, round(math.sqrt(rows)))


def nearest_centroids(
    unit: NDArray[np.float32], centroids: NDArray[np.float32]
) -> NDArray[np.intp]:
    """The nearest centroid (largest dot product) of each unit row, in bounded chunks."""
    out = np.empty(unit.shape[0], dtype=np.intp)
    for start in range(0, unit.shape[0], _CHUNK):
        out[start : start + _CHUNK] = np.argmax(unit[start : start + _CHUNK] @ centroids.T, axis=1)
    return out


def train(unit: NDArray[np.float32], lists: int, seed: int = 0) -> NDArray[np.float32]:
    """Spherical k-means centroids (`lists` x dims, unit) of the unit rows `unit`.

    Deterministic for a seed: starts from distinct sample rows; an emptied list is re-seeded
    from a random sample row.
    """
    rng = np.random.default_rng(seed)
    n = unit.shape[0]
    sample = unit[rng.choice(n, min(n, lists * _SAMPLE_PER_LIST), replace=False)]
    centroids = sample[rng.choice(sample.shape[0], lists, replace=False)].copy()
    for _ in range(_ITERATIONS):
        labels = nearest_centroids(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, sample)
        norms = np.linalg.norm(sums, axis=1)
        empty = norms == 0
        sums[empty] = sample[rng.integers(0, sample.shape[0], int(empty.sum()))]
        centroids = sums / np.where(empty, 1.0, norms)[:, None]
    trained: NDArray[np.float32] = centroids.astype(np.float32)
    return trained


class CoarseLists:
    """Each coarse list's rows and their sign codes, in step with a matrix (module docstring).

    `members[c][:sizes[c]]` are the rows of list `c` and `codes[c][:, :sizes[c]]` their codes
    (column-major: one contiguous run per code word, for the per-word XOR and popcount);
    `home[row]` is a row's list (-1: none) and `slot[row]` its position in it.
    """

    def __init__(
        self, centroids: NDArray[np.float32], signs: SignCodes, capacity: int, trained_rows: int
    ) -> None:
        self.centroids = centroids
        self.signs = signs
        self.trained_rows = trained_rows
        lists = centroids.shape[0]
        self.home: NDArray[np.intp] = np.full(capacity, -1, dtype=np.intp)
        self.slot: NDArray[np.intp] = np.zeros(capacity, dtype=np.intp)
        self.sizes: NDArray[np.intp] = np.zeros(lists, dtype=np.intp)
        self.members: list[NDArray[np.intp]] = [np.empty(0, dtype=np.intp)] * lists
        self.codes: list[NDArray[np.uint64]] = [np.empty((signs.words, 0), np.uint64)] * lists
        self._held = 0
        """Bytes of `members` and `codes`, kept by whoever replaces an array (`nbytes` is O(1))."""

    @classmethod
    def build(cls, unit: NDArray[np.float32], capacity: int, seed: int = 0) -> CoarseLists:
        """An index trained on, and holding, the rows of `unit` (rows 0 .. n-1)."""
        n, dims = unit.shape
        center = unit.mean(axis=0) if n else np.zeros(dims, np.float32)
        signs = SignCodes(center.astype(np.float32))
        lists = cls(train(unit, list_count(n), seed), signs, capacity, n)
        homes = nearest_centroids(unit, lists.centroids)
        codes = np.concatenate([signs.encode(unit[i : i + _CHUNK]) for i in range(0, n, _CHUNK)])
        order = np.argsort(homes, kind="stable")
        counts = np.bincount(homes, minlength=lists.centroids.shape[0])
        bounds = np.concatenate(([0], np.cumsum(counts)))
        for c, size in enumerate(counts.tolist()):
            rows = order[bounds[c] : bounds[c + 1]]
            room = max(16, 2 * size)
            lists.members[c] = np.empty(room, dtype=np.intp)
            lists.members[c][:size] = rows
            lists.codes[c] = np.empty((signs.words, room), dtype=np.uint64)
            lists.codes[c][:, :size] = codes[rows].T
            lists.slot[rows] = np.arange(size)
            lists._held += lists.members[c].nbytes + lists.codes[c].nbytes
        lists.sizes[:] = counts
        lists.home[:n] = homes
        return lists

    @property
    def nbytes(self) -> int:
        return int(self.centroids.nbytes + self.home.nbytes + self.slot.nbytes + self._held)

    def _join(self, row: int, home: int, code: NDArray[np.uint64]) -> None:
        size = int(self.sizes[home])
        if size == len(self.members[home]):
            members = np.empty(max(16, 2 * size), dtype=np.intp)
            members[:size] = self.members[home][:size]
            codes = np.empty((self.signs.words, len(members)), dtype=np.uint64)
            codes[:, :size] = self.codes[home][:, :size]
            self._held += members.nbytes + codes.nbytes
            self._held -= self.members[home].nbytes + self.codes[home].nbytes
            self.members[home], self.codes[home] = members, codes
        self.members[home][size] = row
        self.codes[home][:, size] = code
        self.home[row], self.slot[row] = home, size
        self.sizes[home] = size + 1

    def _leave(self, row: int) -> None:
        home = int(self.home[row])
        if home < 0:
            return
        last, slot = int(self.sizes[home]) - 1, int(self.slot[row])
        members, codes = self.members[home], self.codes[home]
        moved = int(members[last])
        members[slot], codes[:, slot] = moved, codes[:, last]
        self.slot[moved] = slot
        self.sizes[home] = last
        self.home[row] = -1

    def set(self, start: int, unit: NDArray[np.float32]) -> None:
        """File rows `start`, `start + 1`, ... (new or replaced) with their new codes."""
        codes = self.signs.encode(unit)
        for offset, home in enumerate(nearest_centroids(unit, self.centroids).tolist()):
            row = start + offset
            if int(self.home[row]) == home:
                self.codes[home][:, self.slot[row]] = codes[offset]
            else:
                self._leave(row)
                self._join(row, home, codes[offset])

    def remove(self, row: int, last: int) -> None:
        """Mirror a matrix removal: `row` leaves its list, then row `last` moves into `row`."""
        self._leave(row)
        if last == row:
            return
        home, slot = int(self.home[last]), int(self.slot[last])
        self.members[home][slot] = row
        self.home[row], self.slot[row] = home, slot
        self.home[last] = -1

    def grow(self, capacity: int) -> None:
        home = np.full(capacity, -1, dtype=np.intp)
        slot = np.zeros(capacity, dtype=np.intp)
        home[: len(self.home)] = self.home
        slot[: len(self.slot)] = self.slot
        self.home, self.slot = home, slot

    def search(self, unit_query: NDArray[np.float32], probe: int, keep: int) -> NDArray[np.intp]:
        """Rows near the query, unordered.

        The rows of the nearest lists until at least `probe`, then the `keep` of them nearest
        by sign code (more on a tie at the cut).
        """
        order = np.argsort(-(self.centroids @ unit_query), kind="stable")
        held = np.cumsum(self.sizes[order])
        lists = order[: int(np.searchsorted(held, probe)) + 1].tolist()
        sizes = self.sizes.tolist()
        rows = np.concatenate([self.members[c][: sizes[c]] for c in lists])
        if len(rows) <= keep:
            return rows
        codes = np.concatenate([self.codes[c][:, : sizes[c]] for c in lists], axis=1)
        return rows[self.signs.nearest(unit_query, codes, keep)]
