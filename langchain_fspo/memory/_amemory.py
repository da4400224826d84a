"""The async half of `PreferenceMemory`: one `a`-twin per sync method, same plans.

None of them blocks the event loop on the store (see `_driver`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Self

from langchain_fspo.memory import _plans as plans
from langchain_fspo.memory._core import MemoryCore
from langchain_fspo.memory._records import Choice, ChoiceRecord
from langchain_fspo.preference import PreferenceExample
from langchain_fspo.selection import DEFAULT_MMR_LAMBDA, Strategy

__all__ = ["AsyncMemoryAPI"]

_Examples = list[PreferenceExample]
_Choices = list[ChoiceRecord]


class AsyncMemoryAPI(MemoryCore):
    """Async twins of `PreferenceMemory`'s methods (documented on the sync ones)."""

    async def aclose(self) -> None:
        """`close`, after closing the running loop's async connections (PostgreSQL).

        `close` runs in a worker thread: closing a pool, or letting deferred indexing finish its
        backlog (`defer_indexing=True`), would hold the loop.
        """
        await self._driver.aclose()
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aadd(
        self,
        user_id: str,
        *,
        prompt: str,
        chosen: str,
        rejected: str | None = None,
        example_id: str | None = None,
        **metadata: Any,
    ) -> PreferenceExample:
        """Async `add`."""
        plan = self._add(user_id, prompt, chosen, rejected, example_id, metadata)
        (example,) = await self._driver.arun(plan, writes=True)
        return example

    async def aadd_many(
        self, user_id: str, examples: Iterable[PreferenceExample | Mapping[str, Any]]
    ) -> _Examples:
        """Async `add_many`."""
        return await self._driver.arun(self._add_many(user_id, examples), writes=True)

    async def arecord_choice(
        self, user_id: str, prompt: str, a: str, b: str, choice: Choice, **metadata: Any
    ) -> ChoiceRecord:
        """Async `record_choice`."""
        plan, record = self._record_choice(user_id, prompt, a, b, choice, metadata)
        await self._driver.arun(plan, writes=True)
        return record

    async def alist(self, user_id: str) -> _Examples:
        """Async `list`."""
        return await self._driver.arun(plans.list_plan(self.namespaces(user_id)))

    async def alist_choices(self, user_id: str) -> _Choices:
        """Async `list_choices`."""
        return await self._driver.arun(plans.list_choices_plan(self.namespaces(user_id)))

    async def acount(self, user_id: str) -> int:
        """Async `count`."""
        return await self._driver.arun(plans.count_plan(self.namespaces(user_id)))

    async def aget(self, user_id: str, example_id: str) -> PreferenceExample | None:
        """Async `get`."""
        return await self._driver.arun(self._get(user_id, example_id))

    async def adelete(self, user_id: str, example_id: str) -> bool:
        """Async `delete`."""
        return await self._driver.arun(self._delete(user_id, example_id), writes=True)

    async def aforget(self, user_id: str) -> int:
        """Async `forget`."""
        ns = self.namespaces(user_id)
        removed = await self._driver.arun(plans.forget_plan(ns), writes=True)
        await self._driver.ascrub(ns.user)
        return removed

    async def aexport(self, user_id: str) -> dict[str, Any]:
        """Async `export`."""
        return await self._driver.arun(plans.export_plan(self.namespaces(user_id), user_id))

    async def aselect(
        self,
        user_id: str,
        query: str | None = None,
        k: int = 8,
        strategy: Strategy = "recent",
        *,
        fetch_k: int | None = None,
        lambda_mult: float = DEFAULT_MMR_LAMBDA,
    ) -> _Examples:
        """Async `select`."""
        plan = self._select(user_id, query, k, strategy, fetch_k, lambda_mult)
        return await self._driver.arun(plan)

    async def aget_description(self, user_id: str) -> str | None:
        """Async `get_description`."""
        return await self._driver.arun(plans.get_description_plan(self.namespaces(user_id)))

    async def aset_description(self, user_id: str, text: str) -> None:
        """Async `set_description`."""
        await self._driver.arun(self._set_description(user_id, text), writes=True)
