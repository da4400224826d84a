"""How much memory one step of a stream allocates, early in a long stream and late in it."""

from __future__ import annotations

import statistics
import tracemalloc
from collections.abc import Callable, Iterator

__all__ = ["per_feed_allocation"]


def per_feed_allocation(feed: Callable[[str], object], pieces: Iterator[str]) -> list[float]:
    """Median bytes allocated at the peak of one `feed`, early (feeds 500-700) and late (8000-8200).

    A parser that copies or re-scans the text so far allocates more per feed as the text
    grows; one that works on the new piece only allocates the same at both points.
    """
    windows = [(500, 700), (8000, 8200)]
    peaks: list[list[int]] = [[], []]
    tracemalloc.start()
    try:
        for i in range(windows[-1][1]):
            piece = next(pieces)
            window = next((w for w, (a, b) in enumerate(windows) if a <= i < b), None)
            if window is None:
                feed(piece)
                continue
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            feed(piece)
            peaks[window].append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    return [statistics.median(p) for p in peaks]
