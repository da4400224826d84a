"""Stage 7, the cross-user disagreement matrix (paper Fig. 5).

`D[u, v]` is the fraction of the pairs both users labelled consistently on which they picked
different responses (the mean absolute difference of their 0/1 labels). The paper regenerates
data when users disagree too much, so that they keep overlap that meta-learning can exploit; the
run is flagged (`needs_regeneration`) when the mean off-diagonal disagreement exceeds the domain's
threshold.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fspo_train.synth.context import SynthContext
from fspo_train.synth.stages.labels import PairVerdict
from fspo_train.synth.store import write_json_atomic

__all__ = ["FILE", "disagreement_matrix", "run_disagreement"]

FILE = "disagreement.json"
logger = logging.getLogger(__name__)


def disagreement_matrix(
    final: dict[str, list[PairVerdict]],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Users, the disagreement matrix (NaN where no pair is shared) and the shared-pair counts.

    Example:
        >>> users, d, n = disagreement_matrix({})
        >>> users, d.shape
        ([], (0, 0))
    """
    users = sorted(final)
    pair_ids = sorted({v.pair.pair_id for vs in final.values() for v in vs if v.consistent})
    col = {p: i for i, p in enumerate(pair_ids)}
    picks_first = np.zeros((len(users), len(pair_ids)), dtype=np.float64)
    picks_second = np.zeros_like(picks_first)
    for row, user in enumerate(users):
        for v in final[user]:
            if v.consistent:
                target = picks_first if v.choice == "first" else picks_second
                target[row, col[v.pair.pair_id]] = 1.0
    seen = picks_first + picks_second
    shared = seen @ seen.T
    differ = picks_first @ picks_second.T + picks_second @ picks_first.T
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.where(shared > 0, differ / np.maximum(shared, 1), np.nan)
    return users, matrix, shared.astype(np.int64)


def run_disagreement(
    ctx: SynthContext, final: dict[str, list[PairVerdict]], *, max_users_stored: int = 200
) -> dict[str, Any]:
    """Write `disagreement.json` and return it (matrix of the first `max_users_stored` users)."""
    users, matrix, shared = disagreement_matrix(final)
    off = ~np.eye(len(users), dtype=bool)
    values = matrix[off & ~np.isnan(matrix)]
    mean = float(values.mean()) if values.size else None
    threshold = ctx.domain.disagreement_threshold
    flagged = mean is not None and mean > threshold
    if flagged:
        logger.warning(
            "Mean cross-user disagreement %.3f exceeds the threshold %.3f: the paper regenerates "
            "such data (users need overlap for meta-learning).",
            mean,
            threshold,
        )
    result: dict[str, Any] = {
        "users": users,
        "mean_disagreement": mean,
        "threshold": threshold,
        "needs_regeneration": flagged,
        "user_pairs_compared": int(values.size),
        "per_user_mean": {
            u: (
                None
                if np.all(np.isnan(matrix[i][off[i]]))
                else float(np.nanmean(matrix[i][off[i]]))
            )
            for i, u in enumerate(users)
        },
    }
    k = min(len(users), max_users_stored)
    result["matrix_users"] = users[:k]
    result["matrix"] = [
        [None if np.isnan(x) else round(float(x), 6) for x in r[:k]] for r in matrix[:k]
    ]
    result["shared_pairs"] = shared[:k, :k].tolist()
    write_json_atomic(ctx.run_dir / FILE, result)
    return result
