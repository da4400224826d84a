"""Shot-selection plans: each reads a bounded number of examples, whatever the user's history.

- `recent`: the newest `k` (one O(k) engine read).
- `relevant`: the `k` nearest the query through the store's own vector search (in-process
  stores: exact, or coarse lists, a sign-code filter and exact rerank for large histories,
  per the memory's `VectorSearch`).
- `diverse`: MMR over `fetch_k` candidates (nearest the query, or the newest) using their
  stored vectors (never re-embedded on LangGraph's own stores).
- a callable: called with the newest `fetch_k` examples (its bounded candidate window).
"""

from __future__ import annotations

from typing import Any

from langchain_fspo.errors import MemoryConfigError
from langchain_fspo.memory._engines import Nearest, Newest, Row
from langchain_fspo.memory._layout import UserNamespaces
from langchain_fspo.memory._plans import (
    Embed,
    Plan,
    examples_of,
    newest_plan,
    require_index,
    vectors_plan,
)
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.selection import SelectionFunction, chronological, lexical_vectors, mmr_indices

__all__ = ["diverse_plan", "function_plan", "relevant_plan"]


def _nearest_rows(
    ns: UserNamespaces,
    query: str,
    field: str,
    limit: int,
    *,
    by_vector: bool,
    with_vectors: bool = False,
    search: Any = None,
    pool: bool = False,
) -> Plan[tuple[list[Row], Any]]:
    """The `limit` rows nearest `query` and the query's vector (None when the store embeds it)."""
    if by_vector:
        _, vector = yield Embed([], query)
        rows: list[Row] = yield Nearest(
            ns.examples,
            field,
            limit,
            vector=vector,
            with_vectors=with_vectors,
            search=search,
            pool=pool,
        )
        return rows, vector
    rows = yield Nearest(ns.examples, field, limit, query=query)
    return rows, None


def relevant_plan(
    ns: UserNamespaces,
    query: str | None,
    k: int,
    field: str,
    *,
    has_index: bool,
    by_vector: bool,
    search: Any = None,
) -> Plan[list[PreferenceExample]]:
    """The `k` examples whose `field` is nearest `query`, oldest first.

    Without a query there is nothing to be relevant to: the newest `k` are returned.
    """
    require_index(has_index=has_index)
    if k <= 0:
        return []
    if not query:
        return (yield from newest_plan(ns, k))
    rows, _ = yield from _nearest_rows(ns, query, field, k, by_vector=by_vector, search=search)
    return chronological(examples_of(rows))


def _stored_vectors(ns: UserNamespaces, field: str, rows: list[Row]) -> Plan[list[Any] | None]:
    """The rows' stored vectors: as the search handed them out, else read; None if any lacks one."""
    if all(r.vector is not None for r in rows):
        return [r.vector for r in rows]
    stored = {r.key: r.vector for r in rows if r.vector is not None}
    stored.update((yield from vectors_plan(ns, field, [r.key for r in rows])))
    return [stored[r.key] for r in rows] if all(r.key in stored for r in rows) else None


def _prompts(rows: list[Row]) -> list[str]:
    return [str(r.value.get("prompt", "")) for r in rows]


def _oldest_first(rows: list[Row]) -> list[Row]:
    """Rows in `chronological` order (their stamp, then key), without building examples."""
    return sorted(rows, key=lambda r: (str(r.value.get("created_at") or ""), r.key))


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
    search: Any = None,
) -> Plan[list[PreferenceExample]]:
    """MMR over a pool of `fetch_k` candidates (nearest `query`, or the newest), oldest first.

    MMR runs on the stored rows; only the `k` picked become examples.
    """
    if k <= 0:
        return []
    pool_size = max(fetch_k, k)
    query_vector: Any = None
    if has_index and query:
        rows, query_vector = yield from _nearest_rows(
            ns,
            query,
            field,
            pool_size,
            by_vector=by_vector,
            with_vectors=True,
            search=search,
            pool=True,
        )
    else:
        rows = yield Newest(ns.examples, pool_size)
    rows = _oldest_first(rows)
    if len(rows) <= k:
        return examples_of(rows)
    vectors: Any
    if not has_index:
        lexical = lexical_vectors([*_prompts(rows), query or ""])
        vectors = lexical[:-1]
        query_vector = lexical[-1] if query else None
    else:
        vectors = (yield from _stored_vectors(ns, field, rows)) if by_vector else None
        if vectors is None:  # the store cannot hand out its vectors (or lacks some): embed here
            vectors, query_vector = yield Embed(_prompts(rows), query or None)
        elif query and query_vector is None:
            _, query_vector = yield Embed([], query)
    picked = mmr_indices(vectors, query_vector, k, lambda_mult=lambda_mult)
    return examples_of([rows[i] for i in picked])


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
