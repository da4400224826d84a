"""Bad input raises a typed error with nothing written, and examples can be written exactly once.

The same cases run on the in-memory, SQLite and PostgreSQL stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from langchain_fspo.errors import ExampleConflictError, InvalidExampleError, MemoryWriteError
from langchain_fspo.memory import MAX_EXAMPLE_ID_CHARS, MAX_METADATA_BYTES, PreferenceMemory
from langchain_fspo.preference import PreferenceExample

Users = Callable[[str], str]

SURROGATE = "broken \ud800 text"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff \t"


def stored_anything(memory: PreferenceMemory, user: str) -> bool:
    return bool(memory.store.search(memory.namespaces(user).user, limit=10))


BAD_FIELDS = [
    pytest.param({"prompt": SURROGATE, "chosen": "c"}, "surrogate", id="surrogate-prompt"),
    pytest.param({"prompt": "p", "chosen": SURROGATE}, "surrogate", id="surrogate-chosen"),
    pytest.param(
        {"prompt": "p", "chosen": "c", "rejected": SURROGATE}, "surrogate", id="surrogate-rejected"
    ),
    pytest.param(
        {"prompt": "p", "chosen": "c", "note": SURROGATE}, "surrogate", id="surrogate-meta"
    ),
    pytest.param({"prompt": ZERO_WIDTH, "chosen": "c"}, "invisible", id="zero-width-prompt"),
    pytest.param({"prompt": "p", "chosen": "\u200b"}, "invisible", id="zero-width-chosen"),
    pytest.param(
        {"prompt": "p", "chosen": "c", "blob": "x" * MAX_METADATA_BYTES},
        "MAX_METADATA_BYTES",
        id="metadata-too-large",
    ),
    pytest.param({"prompt": "p", "chosen": "c", "example_id": " "}, "example id", id="blank-id"),
    pytest.param(
        {"prompt": "p", "chosen": "c", "example_id": "i" * (MAX_EXAMPLE_ID_CHARS + 1)},
        "example id",
        id="long-id",
    ),
    pytest.param(
        {"prompt": "p", "chosen": "c", "example_id": "id\udc80"}, "surrogate", id="surrogate-id"
    ),
]


@pytest.mark.parametrize(("fields", "match"), BAD_FIELDS)
def test_bad_input_raises_the_typed_error_and_writes_nothing(
    memory: PreferenceMemory, users: Users, fields: dict[str, Any], match: str
) -> None:
    user = users("bad")
    with pytest.raises(InvalidExampleError, match=match):
        memory.add(user, **fields)
    items = [{k: v for k, v in fields.items() if k != "example_id"}]
    if "example_id" in fields:
        items[0]["id"] = fields["example_id"]
    extra = {k: items[0].pop(k) for k in list(items[0]) if k not in ("prompt", "chosen", "id")}
    extra.pop("rejected", None)
    items[0]["metadata"] = extra
    if "rejected" in fields:
        items[0]["rejected"] = fields["rejected"]
    with pytest.raises(InvalidExampleError, match=match):
        memory.add_many(user, [{"prompt": "fine", "chosen": "fine"}, *items])
    assert not stored_anything(memory, user)
    assert memory.count(user) == 0


def test_metadata_at_the_cap_is_accepted(memory: PreferenceMemory, users: Users) -> None:
    user = users("cap")
    overhead = len('{"blob": ""}')
    ex = memory.add(user, prompt="p", chosen="c", blob="x" * (MAX_METADATA_BYTES - overhead))
    assert memory.get(user, str(ex.id)) == ex


def test_record_choice_with_a_surrogate_writes_nothing(
    memory: PreferenceMemory, users: Users
) -> None:
    user = users("choice")
    with pytest.raises(InvalidExampleError, match="surrogate"):
        memory.record_choice(user, "Q?", "fine", SURROGATE, "a")
    with pytest.raises(InvalidExampleError, match="invisible"):
        memory.set_description(user, "\u200b")
    assert not stored_anything(memory, user)


async def test_async_bad_input_writes_nothing(memory: PreferenceMemory, users: Users) -> None:
    user = users("abad")
    with pytest.raises(InvalidExampleError, match="surrogate"):
        await memory.aadd(user, prompt=SURROGATE, chosen="c")
    with pytest.raises(InvalidExampleError, match="invisible"):
        await memory.aadd_many(user, [{"prompt": "p", "chosen": ZERO_WIDTH}])
    assert not stored_anything(memory, user)


def test_add_many_users_failing_midway_writes_nothing(
    memory: PreferenceMemory, users: Users
) -> None:
    names = [users(f"bulk{i}") for i in range(8)]
    data: dict[str, list[dict[str, Any]]] = {
        u: [{"prompt": f"{u} q", "chosen": f"{u} c"}] for u in names
    }
    data[names[5]] = [{"prompt": "q", "chosen": "c"}, {"prompt": SURROGATE, "chosen": "c"}]
    with pytest.raises(InvalidExampleError, match="surrogate"):
        memory.add_many_users(data, users_per_batch=1)
    data[names[5]] = [{"prompt": "q", "chosen": "c", "metadata": {"blob": "x" * 20_000}}]
    with pytest.raises(InvalidExampleError, match="MAX_METADATA_BYTES"):
        memory.add_many_users(data, users_per_batch=1)
    data[names[5]] = [{"prompt": "q", "chosen": "c"}]
    with pytest.raises(InvalidExampleError, match="user_id"):
        memory.add_many_users({**data, "": [{"prompt": "q", "chosen": "c"}]}, users_per_batch=1)
    assert not any(stored_anything(memory, u) for u in names)


class FailingStore(InMemoryStore):
    """A real `InMemoryStore` whose n-th write batch fails, standing in for a lost connection."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.writes = 0
        self.fail_at = fail_at

    def batch(self, ops: Any) -> Any:
        ops = list(ops)
        if any(type(op).__name__ == "PutOp" for op in ops):
            self.writes += 1
            if self.writes == self.fail_at:
                msg = "connection lost"
                raise ConnectionError(msg)
        return super().batch(ops)


def test_add_many_users_store_failure_names_what_was_written() -> None:
    memory = PreferenceMemory(FailingStore(fail_at=3))
    data = {f"u{i}": [{"prompt": f"q{i}", "chosen": f"c{i}", "id": f"e{i}"}] for i in range(6)}
    with pytest.raises(MemoryWriteError) as caught:
        memory.add_many_users(data, users_per_batch=2)
    assert caught.value.written == ["u0", "u1", "u2", "u3"]
    assert [memory.count(f"u{i}") for i in range(6)] == [1, 1, 1, 1, 0, 0]
    # Items with ids are written once: re-running the whole import completes it.
    memory.add_many_users(data, users_per_batch=2)
    assert [memory.count(f"u{i}") for i in range(6)] == [1] * 6


# ----------------------------------------------------------------------------- write once


def test_an_example_id_writes_once(memory: PreferenceMemory, users: Users) -> None:
    user = users("once")
    first = memory.add(user, prompt="Tea?", chosen="Yes.", rejected="No.", example_id="tea")
    again = memory.add(user, prompt="Tea?", chosen="Yes.", rejected="No.", example_id="tea")
    assert first.id == again.id == "tea"
    assert again == memory.get(user, "tea")
    assert memory.count(user) == 1
    assert memory.list(user) == [again]
    with pytest.raises(ExampleConflictError, match="'tea' is already stored"):
        memory.add(user, prompt="Tea?", chosen="Never.", example_id="tea")
    assert memory.list(user) == [again]
    assert memory.delete(user, "tea") is True
    assert memory.add(user, prompt="Tea?", chosen="Never.", example_id="tea").chosen == "Never."


def test_add_many_with_ids_is_idempotent(memory: PreferenceMemory, users: Users) -> None:
    user = users("import")
    batch: list[Any] = [
        {"id": "a", "prompt": "q1", "chosen": "c1"},
        PreferenceExample(id="b", prompt="q2", chosen="c2"),
        {"prompt": "q3", "chosen": "c3"},  # no id: a new example every time
    ]
    memory.add_many(user, batch)
    memory.add_many(user, batch)
    assert [e.chosen for e in memory.list(user)] == ["c1", "c2", "c3", "c3"]
    with pytest.raises(InvalidExampleError, match="appears twice"):
        memory.add_many(user, [batch[0], batch[0]])
    with pytest.raises(ExampleConflictError):
        memory.add_many(
            user, [{"id": "new", "prompt": "q", "chosen": "c"}, {**batch[0], "chosen": "x"}]
        )
    assert memory.get(user, "new") is None, "the conflict stopped the whole batch"


async def test_async_example_id_writes_once(memory: PreferenceMemory, users: Users) -> None:
    user = users("aonce")
    for _ in range(3):
        await memory.aadd(user, prompt="Q", chosen="A", example_id="q")
    assert await memory.acount(user) == 1
