"""`PreferenceMemory` semantics, the same suite over in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from langgraph.store.base import SearchItem

from langchain_fspo.errors import InvalidExampleError, MemoryConfigError
from langchain_fspo.memory import EXPORT_FORMAT, PreferenceMemory
from langchain_fspo.preference import MAX_TEXT_CHARS, PreferenceExample

Users = Callable[[str], str]


def raw_items(memory: PreferenceMemory, user_id: str) -> list[SearchItem]:
    """Every store item under the user's subtree, read directly from the store."""
    return memory.store.search(memory.namespaces(user_id).user, limit=100_000)


def add_n(memory: PreferenceMemory, user_id: str, n: int, tag: str = "") -> list[PreferenceExample]:
    return [
        memory.add(
            user_id, prompt=f"{tag}question {i}", chosen=f"{tag}good {i}", rejected=f"bad {i}"
        )
        for i in range(n)
    ]


# ----------------------------------------------------------------------------- add / get / list


def test_add_returns_stamped_example_and_get_reads_it_back(
    memory: PreferenceMemory, users: Users
) -> None:
    user = users("ada")
    before = datetime.now(UTC)
    ex = memory.add(
        user, prompt="Explain DNS.", chosen="Short.", rejected="Long.", source="ui", n=3
    )
    assert ex.id
    assert ex.created_at is not None
    assert ex.created_at.tzinfo is not None
    assert ex.created_at.utcoffset().total_seconds() == 0
    assert before.timestamp() - 1 <= ex.created_at.timestamp() <= datetime.now(UTC).timestamp() + 1
    assert ex.metadata == {"source": "ui", "n": 3}
    got = memory.get(user, ex.id)
    assert got == ex
    assert memory.get(user, "0" * 24) is None
    assert memory.get(users("nobody"), ex.id) is None


def test_list_is_oldest_first_and_count_matches(memory: PreferenceMemory, users: Users) -> None:
    user = users("bob")
    added = add_n(memory, user, 12)
    listed = memory.list(user)
    assert [e.id for e in listed] == [e.id for e in added]
    assert [e.chosen for e in listed] == [f"good {i}" for i in range(12)]
    assert memory.count(user) == 12
    ids = [str(e.id) for e in added]
    assert ids == sorted(ids), "ids sort by creation time"


def test_unknown_user_reads_are_empty_not_errors(memory: PreferenceMemory, users: Users) -> None:
    ghost = users("ghost")
    assert memory.list(ghost) == []
    assert memory.list_choices(ghost) == []
    assert memory.count(ghost) == 0
    for strategy in ("recent", "diverse"):
        assert memory.select(ghost, "anything", k=8, strategy=strategy) == []
    assert memory.get_description(ghost) is None
    assert memory.delete(ghost, "0" * 24) is False
    assert memory.forget(ghost) == 0
    exported = memory.export(ghost)
    assert exported["examples"] == []
    assert exported["choices"] == []


def test_users_are_isolated(memory: PreferenceMemory, users: Users) -> None:
    a, b = users("a"), users("a.b")  # "a" is a prefix of "a.b" as text
    add_n(memory, a, 3, tag="A ")
    add_n(memory, b, 2, tag="B ")
    assert [e.chosen for e in memory.list(a)] == ["A good 0", "A good 1", "A good 2"]
    assert [e.chosen for e in memory.list(b)] == ["B good 0", "B good 1"]
    memory.forget(a)
    assert memory.list(a) == []
    assert len(memory.list(b)) == 2


# ----------------------------------------------------------------------------- user id encoding


@pytest.mark.parametrize(
    "name",
    [
        "ada@example.com",
        "..",
        "a.b",
        ".",
        "名前.ユーザー",
        "emoji 🙂 and spaces",
        "slash/and\\backslash",
        "*",
        "x" * 400,
        "nul\x00byte",
    ],
)
def test_any_string_user_id_round_trips(memory: PreferenceMemory, users: Users, name: str) -> None:
    user = users("") + name  # the run prefix keeps the database shared safely
    ex = memory.add(user, prompt="p", chosen="c")
    assert memory.list(user) == [ex]
    assert memory.export(user)["user_id"] == user
    # The raw namespace label carries no "." and decodes back to the id.
    label = memory.namespaces(user).user[-1]
    assert "." not in label
    assert label
    memory.forget(user)


def test_very_long_user_id_at_the_limit(memory: PreferenceMemory, users: Users) -> None:
    base = users("long")
    user = base + "é" * (512 - len(base))
    assert len(user) == 512
    memory.add(user, prompt="p", chosen="c")
    assert len(memory.list(user)) == 1
    memory.forget(user)
    with pytest.raises(InvalidExampleError, match="512"):
        memory.add(user + "x", prompt="p", chosen="c")


@pytest.mark.parametrize("bad", ["", 42, None, b"bytes", ("t",)])
def test_invalid_user_ids_raise(memory: PreferenceMemory, bad: object) -> None:
    with pytest.raises(InvalidExampleError, match="user_id"):
        memory.add(bad, prompt="p", chosen="c")
    with pytest.raises(InvalidExampleError, match="user_id"):
        memory.select(bad)


# ----------------------------------------------------------------------------- invalid input


INVALID = [
    ({"prompt": "", "chosen": "c"}, "prompt"),
    ({"prompt": "   \n", "chosen": "c"}, "prompt"),
    ({"prompt": "p", "chosen": ""}, "chosen"),
    ({"prompt": "p", "chosen": "c", "rejected": " "}, "rejected"),
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "identical"),
    ({"prompt": "p" * (MAX_TEXT_CHARS + 1), "chosen": "c"}, "MAX_TEXT_CHARS"),
    ({"prompt": "p", "chosen": "c" * (MAX_TEXT_CHARS + 1)}, "MAX_TEXT_CHARS"),
    ({"prompt": 7, "chosen": "c"}, "prompt"),
    ({"prompt": "p", "chosen": None}, "chosen"),
    ({"prompt": "p", "chosen": "c", "meta": object()}, "JSON"),
]


@pytest.mark.parametrize(("fields", "match"), INVALID)
def test_invalid_example_raises_and_writes_nothing(
    memory: PreferenceMemory, users: Users, fields: dict[str, object], match: str
) -> None:
    fresh, existing = users("fresh"), users("existing")
    kept = memory.add(existing, prompt="keep", chosen="me")
    with pytest.raises(InvalidExampleError, match=match):
        memory.add(fresh, **fields)
    with pytest.raises(InvalidExampleError, match=match):
        memory.add(existing, **fields)
    assert raw_items(memory, fresh) == []
    assert memory.store.list_namespaces(prefix=memory.namespaces(fresh).user) == []
    assert memory.list(existing) == [kept]
    assert memory.count(existing) == 1


def test_add_many_is_all_or_nothing(memory: PreferenceMemory, users: Users) -> None:
    user = users("bulk")
    good = {"prompt": "p1", "chosen": "c1"}
    bad = {"prompt": "p2", "chosen": "same", "rejected": "same"}
    with pytest.raises(InvalidExampleError, match="identical"):
        memory.add_many(user, [good, bad])
    assert raw_items(memory, user) == []
    added = memory.add_many(
        user, [good, PreferenceExample(prompt="p3", chosen="c3", metadata={"k": 1})]
    )
    assert [e.chosen for e in memory.list(user)] == ["c1", "c3"]
    assert [e.id for e in added] == [e.id for e in memory.list(user)]
    assert memory.list(user)[1].metadata == {"k": 1}
    with pytest.raises(InvalidExampleError, match="Unknown example fields"):
        memory.add_many(user, [{"prompt": "p", "chosen": "c", "answer": "?"}])


def test_invalid_example_id_types(memory: PreferenceMemory, users: Users) -> None:
    user = users("ids")
    for bad in (None, 3, ""):
        with pytest.raises(InvalidExampleError, match="example id"):
            memory.get(user, bad)
        with pytest.raises(InvalidExampleError, match="example id"):
            memory.delete(user, bad)


# ----------------------------------------------------------------------------- delete / forget


def test_delete_removes_one_example(memory: PreferenceMemory, users: Users) -> None:
    user = users("del")
    added = add_n(memory, user, 5)
    assert memory.delete(user, added[4].id) is True
    assert memory.delete(user, added[4].id) is False
    assert memory.get(user, added[4].id) is None
    assert [e.id for e in memory.list(user)] == [e.id for e in added[:4]]
    assert memory.count(user) == 4
    assert [e.id for e in memory.select(user, k=2)] == [added[2].id, added[3].id]


def test_delete_everything_then_add_again(memory: PreferenceMemory, users: Users) -> None:
    user = users("again")
    added = add_n(memory, user, 3)
    for ex in added:
        assert memory.delete(user, ex.id)
    assert memory.select(user, k=8) == []
    assert memory.count(user) == 0
    new = memory.add(user, prompt="p", chosen="fresh")
    assert memory.select(user, k=8) == [new]


def test_forget_leaves_nothing_of_the_user(memory: PreferenceMemory, users: Users) -> None:
    user, other = users("gone"), users("stays")
    add_n(memory, user, 4)
    memory.record_choice(user, "P?", "x", "y", "tie")
    memory.record_choice(user, "Q?", "x", "y", "a")
    memory.set_description(user, "Likes brevity.")
    kept = memory.add(other, prompt="p", chosen="c")
    ns = memory.namespaces(user)
    assert len(memory.store.list_namespaces(prefix=ns.user)) == 3  # examples, choices, meta

    removed = memory.forget(user)

    assert removed == 4 + 2 + 1 + 1  # examples + choices + the "a" shot + description
    assert raw_items(memory, user) == []
    assert memory.store.list_namespaces(prefix=ns.user) == []
    assert memory.get_description(user) is None
    assert memory.count(user) == 0
    assert memory.export(user)["examples"] == []
    assert memory.list(other) == [kept]


# ----------------------------------------------------------------------------- export


def test_export_is_json_and_complete(memory: PreferenceMemory, users: Users) -> None:
    user = users("export")
    ex = memory.add(user, prompt="p", chosen="c", rejected="r", lang="en")
    tie = memory.record_choice(user, "q", "one", "two", "tie", screen="compare")
    memory.set_description(user, "Prefers concise answers.")
    exported = memory.export(user)
    round_tripped = json.loads(json.dumps(exported))
    assert round_tripped == exported
    assert exported["format"] == EXPORT_FORMAT
    assert exported["user_id"] == user
    assert [e["id"] for e in exported["examples"]] == [ex.id]
    assert exported["examples"][0]["metadata"] == {"lang": "en"}
    assert PreferenceExample.model_validate(exported["examples"][0]) == ex
    assert [c["id"] for c in exported["choices"]] == [tie.id]
    assert exported["choices"][0]["choice"] == "tie"
    assert exported["description"]["text"] == "Prefers concise answers."
    assert exported["description"]["current"] is True
    datetime.fromisoformat(exported["exported_at"])


# ----------------------------------------------------------------------------- record_choice


def test_record_choice_a_and_b_store_the_pair(memory: PreferenceMemory, users: Users) -> None:
    user = users("chooser")
    rec_a = memory.record_choice(user, "Q1", "alpha", "beta", "a", model="m1")
    rec_b = memory.record_choice(user, "Q2", "gamma", "delta", "b")
    shots = memory.list(user)
    assert [(e.prompt, e.chosen, e.rejected) for e in shots] == [
        ("Q1", "alpha", "beta"),
        ("Q2", "delta", "gamma"),
    ]
    assert [e.id for e in shots] == [rec_a.id, rec_b.id]
    assert shots[0].metadata == {"model": "m1"}
    assert memory.get(user, rec_a.id) == rec_a.example


def test_ties_and_neither_are_recorded_but_never_shots(
    memory: PreferenceMemory, users: Users
) -> None:
    user = users("undecided")
    tie = memory.record_choice(user, "Q1", "x", "y", "tie")
    neither = memory.record_choice(user, "Q2", "x", "y", "neither")
    picked = memory.record_choice(user, "Q3", "x", "y", "a")
    assert tie.example is None
    assert neither.example is None
    assert [e.id for e in memory.list(user)] == [picked.id]
    for strategy in ("recent", "diverse"):
        assert [e.id for e in memory.select(user, "Q1", k=8, strategy=strategy)] == [picked.id]
    assert [c.choice for c in memory.list_choices(user)] == ["tie", "neither", "a"]
    assert [c["choice"] for c in memory.export(user)["choices"]] == ["tie", "neither", "a"]
    assert memory.count(user) == 1
    # Deleting a tie by id removes the record.
    assert memory.delete(user, tie.id) is True
    assert [c.choice for c in memory.list_choices(user)] == ["neither", "a"]
    # Deleting the shot of an "a" choice removes the shot and its record.
    assert memory.delete(user, picked.id) is True
    assert memory.list(user) == []
    assert [c.choice for c in memory.list_choices(user)] == ["neither"]


@pytest.mark.parametrize(
    ("a", "b", "choice", "match"),
    [
        ("x", "y", "c", "choice"),
        ("x", "y", "A", "choice"),
        ("x", "x", "a", "identical"),
        ("", "y", "tie", "`a`"),
        ("x", "y" * (MAX_TEXT_CHARS + 1), "b", "MAX_TEXT_CHARS"),
    ],
)
def test_record_choice_invalid_writes_nothing(
    memory: PreferenceMemory, users: Users, a: str, b: str, choice: str, match: str
) -> None:
    user = users("badchoice")
    with pytest.raises(InvalidExampleError, match=match):
        memory.record_choice(user, "Q", a, b, choice)
    assert raw_items(memory, user) == []


# ----------------------------------------------------------------------------- description cache


def test_description_cache_is_invalidated_by_changes(
    memory: PreferenceMemory, users: Users
) -> None:
    user, other = users("rat"), users("rat2")
    first = memory.add(user, prompt="p", chosen="c")
    memory.set_description(user, "Likes short answers.")
    memory.set_description(other, "Someone else.")
    assert memory.get_description(user) == "Likes short answers."
    memory.add(user, prompt="p2", chosen="c2")
    assert memory.get_description(user) is None, "stale after add"
    memory.set_description(user, "v2")
    assert memory.get_description(user) == "v2"
    memory.delete(user, first.id)
    assert memory.get_description(user) is None, "stale after delete"
    memory.set_description(user, "v3")
    memory.record_choice(user, "Q", "x", "y", "tie")
    assert memory.get_description(user) == "v3", "a tie does not change the shots"
    memory.record_choice(user, "Q", "x", "y", "b")
    assert memory.get_description(user) is None, "stale after a recorded preference"
    assert memory.get_description(other) == "Someone else."
    with pytest.raises(InvalidExampleError, match="description"):
        memory.set_description(user, "  ")


# ----------------------------------------------------------------------------- select: recent


def test_recent_is_newest_k_oldest_first_and_stable(memory: PreferenceMemory, users: Users) -> None:
    user = users("recent")
    added = add_n(memory, user, 20)
    picked = memory.select(user, "unrelated question", k=8)
    assert [e.id for e in picked] == [e.id for e in added[-8:]]
    assert memory.select(user, "another question", k=8) == picked, "same shots, same order"
    assert memory.select(user, k=100) == memory.list(user)
    assert memory.select(user, k=0) == []
    newest = memory.add(user, prompt="newest", chosen="now")
    assert [e.id for e in memory.select(user, k=8)] == [e.id for e in added[-7:]] + [newest.id]


def test_recent_equals_the_tail_of_list_for_every_k(memory: PreferenceMemory, users: Users) -> None:
    user = users("many")
    added = memory.add_many(user, [{"prompt": f"q{i}", "chosen": f"c{i}"} for i in range(150)])
    for ex in added[-100:-60]:  # deletes inside the window the newest reads walk
        memory.delete(user, str(ex.id))
    listed = memory.list(user)
    assert [e.id for e in listed] == [e.id for e in added[:-100] + added[-60:]]
    assert memory.count(user) == len(listed) == 110
    for k in range(len(listed) + 2):
        assert memory.select(user, k=k) == (listed[-k:] if k else [])


@pytest.mark.parametrize("k", [-1, 1.5, True, "8"])
def test_bad_k_or_strategy(memory: PreferenceMemory, users: Users, k: object) -> None:
    with pytest.raises(MemoryConfigError, match="`k`"):
        memory.select(users("k"), k=k)
    with pytest.raises(MemoryConfigError, match="Unknown selection strategy 'newest'"):
        memory.select(users("k"), strategy="newest")


# ----------------------------------------------------------------------------- async


async def test_async_variants(memory: PreferenceMemory, users: Users) -> None:
    user = users("async")
    first = await memory.aadd(user, prompt="p0", chosen="c0", rejected="r0")
    many = await memory.aadd_many(user, [{"prompt": "p1", "chosen": "c1"}])
    rec = await memory.arecord_choice(user, "p2", "x", "y", "b")
    assert [e.id for e in await memory.alist(user)] == [first.id, many[0].id, rec.id]
    assert await memory.aget(user, first.id) == first
    assert await memory.acount(user) == 3
    assert [e.id for e in await memory.aselect(user, "q", k=2)] == [many[0].id, rec.id]
    await memory.aset_description(user, "desc")
    assert await memory.aget_description(user) == "desc"
    assert await memory.adelete(user, first.id) is True
    assert await memory.aget_description(user) is None
    assert [c.choice for c in await memory.alist_choices(user)] == ["b"]
    exported = await memory.aexport(user)
    assert len(exported["examples"]) == 2
    assert await memory.aforget(user) > 0
    assert raw_items(memory, user) == []
    with pytest.raises(InvalidExampleError):
        await memory.aadd(user, prompt="", chosen="c")
    assert raw_items(memory, user) == []


# ----------------------------------------------------------------------------- concurrency


def test_threads_do_not_mix_users(memory: PreferenceMemory, users: Users) -> None:
    names = [users(f"t{i}") for i in range(8)]
    per_user = 12

    def work(user: str) -> list[str]:
        seen: list[str] = []
        for j in range(per_user):
            memory.add(user, prompt=f"{user} q{j}", chosen=f"{user} c{j}")
            seen.extend(e.chosen for e in memory.select(user, k=4))
        return seen

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(names, pool.map(work, names), strict=True))
    for user in names:
        assert all(c.startswith(f"{user} ") for c in results[user]), "no foreign shots"
        assert [e.chosen for e in memory.list(user)] == [f"{user} c{j}" for j in range(per_user)]
        assert memory.count(user) == per_user


def test_threads_adding_for_the_same_user_lose_nothing(
    memory: PreferenceMemory, users: Users
) -> None:
    user = users("shared")

    def work(i: int) -> str:
        return str(memory.add(user, prompt=f"q{i}", chosen=f"c{i}").id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(work, range(40)))
    assert sorted(str(e.id) for e in memory.list(user)) == sorted(ids)
    assert memory.count(user) == 40
    listed = memory.list(user)
    for k in range(42):
        assert memory.select(user, k=k) == (listed[-k:] if k else [])


async def test_gather_does_not_mix_users(memory: PreferenceMemory, users: Users) -> None:
    names = [users(f"g{i}") for i in range(6)]

    async def work(user: str) -> list[str]:
        seen: list[str] = []
        for j in range(8):
            await memory.aadd(user, prompt=f"{user} q{j}", chosen=f"{user} c{j}")
            seen.extend(e.chosen for e in await memory.aselect(user, k=3))
        return seen

    results = await asyncio.gather(*(work(u) for u in names))
    for user, seen in zip(names, results, strict=True):
        assert all(c.startswith(f"{user} ") for c in seen)
        assert [e.chosen for e in await memory.alist(user)] == [f"{user} c{j}" for j in range(8)]


# ----------------------------------------------------------------------------- bulk load


def test_add_many_users_bulk_loads_and_validates_first(
    memory: PreferenceMemory, users: Users
) -> None:
    names = [users(f"bulk{i}") for i in range(7)]
    data = {u: [{"prompt": f"{u} q{j}", "chosen": f"{u} c{j}"} for j in range(3)] for u in names}
    data[names[-1]] = []
    bad = {**data, users("bad"): [{"prompt": "p", "chosen": "x", "rejected": "x"}]}
    with pytest.raises(InvalidExampleError, match="identical"):
        memory.add_many_users(bad)
    assert all(raw_items(memory, u) == [] for u in names)

    added = memory.add_many_users(data, users_per_batch=3)
    assert set(added) == set(names)
    assert added[names[-1]] == []
    for user in names[:-1]:
        assert [e.chosen for e in memory.list(user)] == [f"{user} c{j}" for j in range(3)]
        assert memory.select(user, k=2) == added[user][-2:]
        assert memory.count(user) == 3
    # Later single adds are the newest.
    newest = memory.add(names[0], prompt="later", chosen="later")
    assert memory.select(names[0], k=1) == [newest]
