"""Shot-selection plans: each reads a bounded number of examples, whatever the user's history.

- `recent`: the newest `k` (one O(k) engine read).
- `relevant`: the `k` nearest the query through the store's own vector search.
- `diverse`: MMR over `fetch_k` candidates (nearest the query, or the newest) using their
  stored vectors (never re-embedded on LangGraph's own stores).
- a callable: called with the newest `fetch_k` examples (its bounded candidate window).
"""

from __future__ import annotations

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.examples import PreferenceExample
from langchain_fspo.memory._engines import Nearest, Row
from langchain_fspo.memory._layout import UserNamespaces
from langchain_fspo.memory._plans import (
    Embed,
    Plan,
    examples_of,
    newest_plan,
    require_index,
    vectors_plan,
)
from langchain_fspo.selection import SelectionFunction, chronological, lexical_vectors, mmr_select

__all__ = ["diverse_plan", "function_plan", "relevant_plan"]


def _nearest_rows(
    ns: UserNamespaces, query: str, field: str, limit: int, *, by_vector: bool
) -> Plan[list[Row]]:
    """The `limit` rows nearest `query`: embed it here, or let the store do it."""
    if by_vector:
        _, vector = yield Embed([], query)
        rows: list[Row] = yield Nearest(ns.examples, field, limit, vector=vector)
    else:
        rows = yield Nearest(ns.examples, field, limit, query=query)
    return rows


def relevant_plan(
    ns: UserNamespaces,
    query: str | None,
    k: int,
    field: str,
    *,
    has_index: bool,
    by_vector: bool,
) -> Plan[list[PreferenceExample]]:
    """The `k` examples whose `field` is nearest `query`, oldest first.

    Without a query there is nothing to be relevant to: the newest `k` are returned.
    """
    require_index(has_index=has_index)
    if k <= 0:
        return []
    if not query:
        return (yield from newest_plan(ns, k))
    rows = yield from _nearest_rows(ns, query, field, k, by_vector=by_vector)
    return chronological(examples_of(rows))


def diverse_plan(
    ns: UserNamespaces,
    query: str | None,
    k: int,
    fetch_k: int,
    field: str,
    *,
    has_index: bool,
    by_vector: bool,
    lambda_mult: float,
) -> Plan[list[PreferenceExample]]:
    """MMR over a pool of `fetch_k` candidates (nearest `query`, or the newest), oldest first."""
    if k <= 0:
        return []
    pool_size = max(fetch_k, k)
    rows: list[Row] = []
    if has_index and query:
        rows = yield from _nearest_rows(ns, query, field, pool_size, by_vector=by_vector)
        pool = examples_of(rows)
    else:
        pool = yield from newest_plan(ns, pool_size)
    if len(pool) <= k:
        return chronological(pool)
    if not has_index:
        lexical = lexical_vectors([*(e.prompt for e in pool), query or ""])
        return mmr_select(
            pool, lexical[:-1], lexical[-1] if query else None, k, lambda_mult=lambda_mult
        )
    query_vector = None
    stored = {r.key: r.vector for r in rows if r.vector is not None}
    if by_vector and len(stored) < len(pool):
        stored.update((yield from vectors_plan(ns, field, [str(e.id) for e in pool])))
    if by_vector and all(str(e.id) in stored for e in pool):
        vectors = [stored[str(e.id)] for e in pool]
        if query:
            _, query_vector = yield Embed([], query)
    else:  # the store cannot hand out its vectors (or lacks some): embed the pool here
        vectors, query_vector = yield Embed([e.prompt for e in pool], query or None)
    return mmr_select(pool, vectors, query_vector, k, lambda_mult=lambda_mult)


def function_plan(
    ns: UserNamespaces, function: SelectionFunction, query: str | None, k: int, window: int
) -> Plan[list[PreferenceExample]]:
    """Run a user strategy over the newest `window` examples; keep its first `k`, oldest first."""
    if k <= 0:
        return []
    examples = yield from newest_plan(ns, max(window, k))
    if not examples:
        return []
    name = getattr(function, "__name__", repr(function))
    returned = function(examples, query, k)
    try:
        chosen: list[object] = list(returned)
    except TypeError as e:
        msg = f"The selection strategy {name} must return a sequence, got {returned!r:.80}."
        raise MemoryConfigError(msg) from e
    picked = [e for e in chosen if isinstance(e, PreferenceExample)]
    if len(picked) != len(chosen):
        bad = next(e for e in chosen if not isinstance(e, PreferenceExample))
        msg = (
            f"The selection strategy {name} must return PreferenceExample objects (a subset "
            f"of the examples it was given), got a {type(bad).__name__}: {bad!r:.80}."
        )
        raise MemoryConfigError(msg)
    return chronological(picked[:k])
