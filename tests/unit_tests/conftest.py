"""Unit-test fixtures and network isolation.

Unit tests run with sockets disabled (`pytest-socket`; unix sockets stay allowed, for asyncio's
self-pipe and SQLite's neighbours): a unit test that opens a TCP socket fails with
`SocketBlockedError`. Tests marked `integration` (they talk to a real local server, such as
PostgreSQL) keep their sockets. The `PreferenceMemory` store fixtures live in
tests/memory_stores.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.memory_stores import (  # noqa: F401 - pytest finds fixtures by name
    indexed_memory,
    indexed_postgres_store,
    memory,
    postgres_store,
    postgres_url,
    users,
)

UNIT_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Disable sockets for the unit tests of this folder that are not marked `integration`."""
    for item in items:
        if item.path.is_relative_to(UNIT_TESTS) and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.disable_socket)
