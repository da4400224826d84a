"""Unit-test fixtures; the `PreferenceMemory` store fixtures live in tests/memory_stores.py."""

from tests.memory_stores import (  # noqa: F401 - pytest finds fixtures by name
    indexed_memory,
    indexed_postgres_store,
    memory,
    postgres_store,
    postgres_url,
    users,
)
