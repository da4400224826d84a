"""Store fixtures for the `PreferenceMemory` suite: in-memory, SQLite and PostgreSQL.

Every store is real. PostgreSQL comes from `FSPO_TEST_POSTGRES_URL` (default: the local server
`.ci/start-postgres.sh` starts); when it cannot be reached the PostgreSQL cases skip, unless
`FSPO_REQUIRE_POSTGRES=1` (CI), where they fail.

Each test gets user ids under a prefix unique to this run and test (`users("alice")`); they are
forgotten after the test, so runs against a shared database do not see each other.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from langchain_core.embeddings import Embeddings

from langchain_fspo.memory import PreferenceMemory

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "INDEX_DIMS",
    "RUN_PREFIX",
    "STORE_KINDS",
    "HashingEmbeddings",
    "indexed_memory",
    "indexed_postgres_store",
    "memory",
    "postgres_store",
    "postgres_url",
    "users",
]

DEFAULT_POSTGRES_URL = "postgresql://fspo:fspo@127.0.0.1:5432/fspo"
RUN_PREFIX = f"run-{uuid.uuid4().hex[:10]}"

_postgres = pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration])
STORE_KINDS = ["memory", "sqlite", _postgres]
INDEXED_KINDS = ["memory", "sqlite", _postgres]
INDEX_DIMS = 256
"""Dimensions of the tests' embedding index (PostgreSQL fixes them per database)."""

_TOKEN = re.compile(r"\w+")


class HashingEmbeddings(Embeddings):
    r"""A real, deterministic embedder: hashed bag of words, L2-normalised.

    Each lower-cased `\\w+` token adds 1 to the dimension picked by its SHA-1, so texts sharing
    words have a positive cosine and texts sharing none have 0 (up to hash collisions).
    """

    def __init__(self, dims: int = 256) -> None:
        self.dims = dims
        self.calls = 0

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dims
        for token in _TOKEN.findall(text.lower()):
            digest = hashlib.sha1(token.encode(), usedforsecurity=False).digest()
            vector[int.from_bytes(digest[:4], "big") % self.dims] += 1.0
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return self._embed(text)


def _require_postgres(reason: str) -> None:
    if os.environ.get("FSPO_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"FSPO_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of a reachable PostgreSQL server (skip, or fail under FSPO_REQUIRE_POSTGRES=1)."""
    url = os.environ.get("FSPO_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        import psycopg
    except ImportError:
        _require_postgres("psycopg is not installed (pip install 'langchain-fspo[postgres]')")
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as e:
        _require_postgres(f"no PostgreSQL server at {url} ({e}); run .ci/start-postgres.sh")
    return url


@pytest.fixture(scope="session")
def postgres_store(postgres_url: str) -> Iterator[object]:
    """One `PostgresStore` (migrated) shared by the session."""
    from langgraph.store.postgres import PostgresStore

    with PostgresStore.from_conn_string(postgres_url) as store:
        store.setup()
        yield store


@pytest.fixture(scope="session")
def indexed_postgres_store(postgres_url: str) -> Iterator[object]:
    """One `PostgresStore` with a pgvector index over `prompt` (`HashingEmbeddings`)."""
    from langgraph.store.postgres import PostgresStore

    index = {"dims": INDEX_DIMS, "embed": HashingEmbeddings(INDEX_DIMS), "fields": ["prompt"]}
    with PostgresStore.from_conn_string(postgres_url, index=index) as store:
        store.setup()
        yield store


@pytest.fixture
def users(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Make user ids unique to this run and test; the memory under test forgets them after."""
    made: list[str] = []
    test = re.sub(r"\W", "_", request.node.name)[:80]

    def make(name: str) -> str:
        user_id = f"{RUN_PREFIX}.{test}.{name}"
        made.append(user_id)
        return user_id

    request.node.made_user_ids = made  # read by the memory fixture's teardown
    return make


def _memory_for(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    **kw: object,
) -> PreferenceMemory:
    if kind == "memory":
        from langgraph.store.memory import InMemoryStore

        return PreferenceMemory(InMemoryStore(**kw))
    if kind == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "memory.db"
        return PreferenceMemory.sqlite(path, **kw)
    if kind == "postgres":
        return PreferenceMemory(request.getfixturevalue("postgres_store"))
    msg = f"unknown store kind {kind}"
    raise AssertionError(msg)


@pytest.fixture(params=STORE_KINDS)
def memory(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    users: Callable[[str], str],
) -> Iterator[PreferenceMemory]:
    """A `PreferenceMemory` on each kind of store; the test's users are forgotten afterwards."""
    mem = _memory_for(request.param, request, tmp_path_factory)
    try:
        yield mem
    finally:
        for user_id in getattr(request.node, "made_user_ids", []):
            mem.forget(user_id)
        mem.close()


@pytest.fixture(params=INDEXED_KINDS)
def indexed_memory(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PreferenceMemory]:
    """A `PreferenceMemory` whose store embeds `prompt` with `HashingEmbeddings`.

    On the shared PostgreSQL database each test gets a namespace root of its own (so plain
    user names do not collide), deleted afterwards.
    """
    if request.param == "postgres":
        from langchain_fspo.memory._engines import Forget

        test = re.sub(r"\W", "_", request.node.name)[:80]
        root = ("fspo-tests", RUN_PREFIX, test)
        mem = PreferenceMemory(request.getfixturevalue("indexed_postgres_store"), namespace=root)
        try:
            yield mem
        finally:
            mem._driver.engine.run(Forget(root))
        return
    index = {"dims": INDEX_DIMS, "embed": HashingEmbeddings(INDEX_DIMS), "fields": ["prompt"]}
    mem = _memory_for(request.param, request, tmp_path_factory, index=index)
    try:
        yield mem
    finally:
        mem.close()
