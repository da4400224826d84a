"""Append-only JSONL files keyed by work-item id: the unit of resumption.

Each stage appends one JSON object per finished work item. Every line is written and flushed to
the operating system before `append` returns, so a killed process loses at most the line being
written; with `fsync=True` a background thread also fsyncs the file after every append,
coalescing appends that arrive while an fsync is running (group commit), so that a power loss
loses at most the last few milliseconds without the event loop ever waiting on the disk. On open,
a half-written last line (no trailing newline, or not valid JSON) is cut off; ids already present
are skipped by the runner.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self, TextIO

from fspo_train.synth.errors import RunStateError

__all__ = ["JsonlStore", "dumps", "write_json_atomic", "write_jsonl_atomic"]

logger = logging.getLogger(__name__)


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, no ASCII escaping, compact separators (byte-stable)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def write_jsonl_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write `rows` as canonical JSONL to `path` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.writelines(dumps(row) + "\n" for row in rows)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    tmp.replace(path)


class JsonlStore:
    """One stage's append-only JSONL file, with the ids it already holds.

    Example:
        >>> import tempfile, pathlib
        >>> store = JsonlStore(pathlib.Path(tempfile.mkdtemp()) / "labels.jsonl")
        >>> store.append({"id": "l-1", "status": "ok"})
        >>> "l-1" in store, len(store)
        (True, 1)
    """

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        """Open (creating the folder) and recover `path`; see the module docstring."""
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows: dict[str, dict[str, Any]] = {}
        self._file: TextIO | None = None
        self._syncer: _Syncer | None = None
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        *complete, tail = data.split(b"\n")
        if tail:
            logger.warning("%s: dropping a half-written last line (%d bytes)", self.path, len(tail))
        good_end = 0
        for number, raw in enumerate(complete, start=1):
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as e:
                if number == len(complete) and not tail:
                    logger.warning("%s: dropping an unreadable last line", self.path)
                    break
                msg = (
                    f"{self.path} line {number} is not valid JSON ({e}); the file is corrupt. "
                    "Delete the stage file to recompute the stage."
                )
                raise RunStateError(msg) from e
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                msg = f"{self.path} line {number} has no string `id`; the file is corrupt."
                raise RunStateError(msg)
            self._rows[row["id"]] = row
            good_end += len(raw) + 1
        if good_end != len(data):
            with self.path.open("r+b") as f:
                f.truncate(good_end)

    def touch(self) -> None:
        """Create the (empty) file if it does not exist: the stage ran, even with no items."""
        self.path.touch(exist_ok=True)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Rows in id order (independent of the order in which they were written)."""
        return iter([self._rows[k] for k in sorted(self._rows)])

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The row with `item_id`, or None."""
        return self._rows.get(item_id)

    def ok_rows(self) -> list[dict[str, Any]]:
        """Rows whose status is `ok`, in id order."""
        return [row for row in self if row.get("status") == "ok"]

    def append(self, row: dict[str, Any]) -> None:
        """Append one row as a line, flushed (and fsynced when `fsync`) before returning."""
        item_id = row.get("id")
        if not isinstance(item_id, str):
            msg = f"A stage row needs a string `id`, got {item_id!r}."
            raise TypeError(msg)
        if item_id in self._rows:
            msg = f"{self.path} already holds id {item_id!r}; work items must not repeat."
            raise RunStateError(msg)
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
            if self.fsync:
                self._syncer = _Syncer(self._file.fileno())
        self._file.write(dumps(row) + "\n")
        self._file.flush()
        if self._syncer is not None:
            self._syncer.request()
        self._rows[item_id] = row

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Fsync (when enabled) and close the file (appending again reopens it)."""
        if self._syncer is not None:
            self._syncer.stop()
            self._syncer = None
        if self._file is not None:
            self._file.close()
            self._file = None


class _Syncer:
    """A daemon thread that fsyncs a file descriptor after each `request` (coalesced)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._wanted = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="jsonl-fsync", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            closing = self._closing  # read before the fsync: it then covers every write
            try:
                os.fsync(self._fd)
            except OSError:  # the file was closed without `close()` (garbage collected)
                return
            if closing:
                return

    def stop(self) -> None:
        self._closing = True
        self._wanted.set()
        self._thread.join()
