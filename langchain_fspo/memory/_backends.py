"""Opening the persistent stores `PreferenceMemory.sqlite` and `.postgres` wrap."""

from __future__ import annotations

import importlib
import sqlite3
from contextlib import ExitStack
from os import PathLike
from typing import TYPE_CHECKING, Any

from langchain_fspo.errors import MemoryConfigError

if TYPE_CHECKING:
    from langgraph.store.base import BaseStore, IndexConfig

__all__ = ["open_postgres_store", "open_sqlite_store"]


def _sqlite_driver(*, need_extensions: bool) -> Any:
    """The DB-API module to open SQLite with: the stdlib's, or pysqlite3 for extensions."""
    if not need_extensions or hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        return importlib.import_module("pysqlite3.dbapi2")
    except ImportError as e:
        msg = (
            "An embedding index on SQLite needs the sqlite-vec extension, and this Python's "
            "sqlite3 cannot load extensions. Install `langchain-fspo[sqlite-index]` "
            "(pysqlite3-binary), use a Python built with --enable-loadable-sqlite-extensions, "
            "or drop `index=`."
        )
        raise MemoryConfigError(msg) from e


def open_sqlite_store(
    path: str | PathLike[str], index: IndexConfig | None
) -> tuple[BaseStore, ExitStack]:
    """A migrated `SqliteStore` on a new thread-shareable WAL connection, and its closer."""
    from langgraph.store.sqlite import SqliteStore

    driver = _sqlite_driver(need_extensions=index is not None)
    conn = driver.connect(str(path), check_same_thread=False, isolation_level=None)
    resources = ExitStack()
    resources.callback(conn.close)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # store_vectors rows are deleted with their item by ON DELETE CASCADE, which SQLite
        # only enforces when foreign keys are on (off by default, per connection).
        conn.execute("PRAGMA foreign_keys = ON")
        # Overwrite deleted content (forget/delete) instead of leaving it in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        store = SqliteStore(conn, index=index)
        store.setup()
    except BaseException:
        resources.close()
        raise
    return store, resources


def open_postgres_store(
    conn_string: str, index: IndexConfig | None, max_connections: int
) -> tuple[BaseStore, ExitStack]:
    """A migrated `PostgresStore` on a connection pool, and its closer."""
    try:
        from langgraph.store.postgres import PostgresStore
    except ImportError as e:
        msg = (
            "PreferenceMemory.postgres needs langgraph-checkpoint-postgres and psycopg: "
            "pip install 'langchain-fspo[postgres]'"
        )
        raise ImportError(msg) from e
    resources = ExitStack()
    try:
        store = resources.enter_context(
            PostgresStore.from_conn_string(
                conn_string,
                pool_config={"min_size": 1, "max_size": max_connections},
                index=index,  # type: ignore[arg-type]
            )
        )
        store.setup()
    except BaseException:
        resources.close()
        raise
    return store, resources
