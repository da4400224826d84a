r"""Load preference records: the JSONL schema, and the paper's released dataset layouts.

Every bad line or row is reported, never silently dropped: it becomes a `Problem` (path, line,
reason) in `LoadResult.skipped`, is logged, and is counted in `LoadResult.summary()`. With
`strict=True` the first problem raises `InvalidExampleError` instead.

Layouts (the paper's released datasets, arXiv 2502.19312 App. A.4):

- `records`: one `PreferenceRecord` JSON object per line (see `fspo_train.data.records`).
- `elix`, `reviews`: `prompt, response_x, response_y, label (0 -> x preferred), level_x,
  level_y, scorer_level`. The user is `scorer_level`; the description is "The user is {level}."
  (ELIX) or "This user prefers {a} and {b} reviews." (Reviews).
- `roleplay`: `x, yw, yl, level, score_persona.persona_description`. The user is `level`.

Paper layouts are read from `.jsonl`/`.json`, `.parquet` or `.csv` files (`line` is then the
1-based data row).

Example:
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "prefs.jsonl"
    >>> row = {"user_id": "u1", "question": "Hi?", "chosen": "Hello!", "rejected": "Go away."}
    >>> _ = path.write_text(json.dumps(row) + "\n{not json\n")
    >>> result = load_records(path)
    >>> len(result.records), result.skipped[0].line
    (1, 2)
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from fspo_train.data.records import PreferenceRecord
from langchain_fspo.errors import InvalidExampleError

__all__ = [
    "DatasetLayout",
    "LoadResult",
    "Problem",
    "load_dataset_file",
    "load_paper_dataset",
    "load_records",
    "question_id_for",
    "reviews_description",
    "write_records",
]

logger = logging.getLogger(__name__)

DatasetLayout = Literal["records", "elix", "reviews", "roleplay"]
"""The file layouts `load_dataset_file` understands."""

_MAX_LOGGED = 20


@dataclass(frozen=True)
class Problem:
    """One line (or row) that was not loaded, and why."""

    path: str
    """The file the line came from."""
    line: int
    """1-based line number (JSONL) or data row number (parquet, CSV)."""
    reason: str
    """What is wrong with it, in words."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class LoadResult:
    """The records that loaded, and the problems of those that did not."""

    records: list[PreferenceRecord] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph: how many loaded, how many skipped and the most common reasons."""
        text = f"Loaded {len(self.records)} preference records"
        if not self.skipped:
            return text + "; nothing skipped."
        reasons = Counter(_reason_kind(p.reason) for p in self.skipped)
        common = ", ".join(f"{n} x {kind}" for kind, n in reasons.most_common(5))
        first = "; ".join(str(p) for p in self.skipped[:3])
        return f"{text}; skipped {len(self.skipped)} ({common}). First: {first}"


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


class _Collector:
    """Builds a `LoadResult`, logging or raising on each problem."""

    def __init__(self, path: Path, *, strict: bool) -> None:
        self.path = path
        self.strict = strict
        self.result = LoadResult()

    def problem(self, line: int, reason: str) -> None:
        issue = Problem(str(self.path), line, reason)
        if self.strict:
            msg = f"{issue}. Fix the line, or load with strict=False to skip bad lines."
            error = InvalidExampleError(msg)
            error.add_note(str(issue))  # the problem alone, for callers with their own fix
            raise error
        if len(self.result.skipped) < _MAX_LOGGED:
            logger.warning("Skipping %s", issue)
        elif len(self.result.skipped) == _MAX_LOGGED:
            logger.warning("More bad lines in %s; see the load summary.", self.path)
        self.result.skipped.append(issue)

    def add(self, line: int, data: dict[str, Any]) -> None:
        try:
            self.result.records.append(PreferenceRecord.model_validate(data))
        except ValidationError as e:
            self.problem(line, "invalid record: " + _describe(e))

    def finish(self) -> LoadResult:
        if self.result.skipped:
            logger.warning("%s: %s", self.path, self.result.summary())
        else:
            logger.info("%s: %s", self.path, self.result.summary())
        return self.result


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(x) for x in item["loc"]) or "record"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"`{where}` {message}" if item["loc"] else message)
    return "; ".join(parts)


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        msg = f"No such data file: {path}. Pass the path of a .jsonl, .parquet or .csv file."
        raise FileNotFoundError(msg)
    return path


def load_records(path: str | Path, *, strict: bool = False) -> LoadResult:
    """Load and validate a `PreferenceRecord` JSONL file.

    Blank lines are ignored; every other line must be one JSON object matching the schema.

    Args:
        path: The JSONL file.
        strict: Raise `InvalidExampleError` on the first bad line instead of skipping it.

    Returns:
        The valid records, in file order, and a `Problem` per skipped line.

    Raises:
        FileNotFoundError: `path` is not a file.
        InvalidExampleError: `strict=True` and a line is malformed or invalid.
    """
    path = _check_file(path)
    collector = _Collector(path, strict=strict)
    for number, data in _json_lines(path, collector):
        collector.add(number, data)
    return collector.finish()


def _json_lines(path: Path, collector: _Collector) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                collector.problem(number, f"malformed JSON: {e.msg} at column {e.colno}")
                continue
            if not isinstance(data, dict):
                collector.problem(
                    number, f"malformed JSON: expected an object, got {type(data).__name__}"
                )
                continue
            yield number, data


def write_records(path: str | Path, records: Iterable[PreferenceRecord]) -> Path:
    """Write `records` as JSONL (one object per line, UTF-8) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.model_dump_json(exclude_defaults=True) + "\n")
    return path


# ---------------------------------------------------------------------- paper layouts


def question_id_for(question: str) -> str:
    """A stable id for a question text (groups the same question across users)."""
    return "q-" + hashlib.sha256(question.encode("utf-8")).hexdigest()[:16]


def reviews_description(level: str) -> str:
    """The Reviews user description, e.g. "This user prefers positive and concise reviews.".

    Example:
        >>> reviews_description("positive+concise")
        'This user prefers positive and concise reviews.'
    """
    parts = [p for p in re.split(r"\s*(?:\+|,|&|\band\b|_and_)\s*", level.strip()) if p]
    return f"This user prefers {' and '.join(parts)} reviews."


def _elix_description(level: str) -> str:
    return f"The user is {level}."


def _label(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip() in ("0", "1", "0.0", "1.0"):
        return int(float(value))
    msg = f"`label` must be 0 (response_x preferred) or 1 (response_y preferred), got {value!r}"
    raise ValueError(msg)


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        msg = f"missing column `{key}`"
        raise ValueError(msg)
    return str(value)


def _pairwise_row(
    row: dict[str, Any], describe: Callable[[str], str], layout: str
) -> dict[str, Any]:
    label = _label(row.get("label"))
    x, y = _text(row, "response_x"), _text(row, "response_y")
    chosen, rejected = (x, y) if label == 0 else (y, x)
    level = _text(row, "scorer_level")
    question = _text(row, "prompt")
    provenance = {"dataset": layout, "label": label}
    for key in ("level_x", "level_y", "scorer_level_id", "det_choice"):
        if row.get(key) is not None:
            provenance[key] = row[key]
    return {
        "user_id": level,
        "question": question,
        "chosen": chosen,
        "rejected": rejected,
        "user_description": describe(level),
        "question_id": question_id_for(question),
        "provenance": provenance,
    }


def _roleplay_row(row: dict[str, Any]) -> dict[str, Any]:
    persona = row.get("score_persona")
    if isinstance(persona, str):
        try:
            persona = json.loads(persona)
        except json.JSONDecodeError:
            persona = {"persona_description": persona}
    description = persona.get("persona_description") if isinstance(persona, dict) else None
    if description is None and row.get("score_persona.persona_description") is not None:
        description = row["score_persona.persona_description"]
    question = _text(row, "x")
    return {
        "user_id": _text(row, "level"),
        "question": question,
        "chosen": _text(row, "yw"),
        "rejected": _text(row, "yl"),
        "user_description": None if description is None else str(description),
        "question_id": question_id_for(question),
        "provenance": {"dataset": "roleplay"},
    }


_CONVERTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "elix": lambda row: _pairwise_row(row, _elix_description, "elix"),
    "reviews": lambda row: _pairwise_row(row, reviews_description, "reviews"),
    "roleplay": _roleplay_row,
}


def _table_rows(path: Path, collector: _Collector) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        yield from _json_lines(path, collector)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

        for number, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield number, row
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=1):
                yield number, dict(row)
    else:
        msg = f"Cannot read {path}: use a .jsonl, .json, .parquet or .csv file (got {suffix!r})."
        raise ValueError(msg)


def load_paper_dataset(
    path: str | Path,
    layout: Literal["elix", "reviews", "roleplay"],
    *,
    strict: bool = False,
) -> LoadResult:
    r"""Load a file in one of the paper's released dataset layouts as `PreferenceRecord`s.

    Args:
        path: A `.jsonl`/`.json`, `.parquet` or `.csv` file with the layout's columns.
        layout: `elix`, `reviews` or `roleplay` (see the module docstring).
        strict: Raise on the first bad row instead of skipping it.

    Example:
        >>> import json, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "elix.jsonl"
        >>> row = {
        ...     "prompt": "Why?",
        ...     "response_x": "A",
        ...     "response_y": "B",
        ...     "label": 1,
        ...     "level_x": "a child",
        ...     "level_y": "an expert",
        ...     "scorer_level": "an expert",
        ... }
        >>> _ = path.write_text(json.dumps(row) + "\n")
        >>> rec = load_paper_dataset(path, "elix").records[0]
        >>> rec.chosen, rec.user_description
        ('B', 'The user is an expert.')
    """
    if layout not in _CONVERTERS:
        msg = f"Unknown dataset layout {layout!r}; use one of {sorted(_CONVERTERS)}."
        raise ValueError(msg)
    path = _check_file(path)
    convert = _CONVERTERS[layout]
    collector = _Collector(path, strict=strict)
    for number, row in _table_rows(path, collector):
        try:
            data = convert(row)
        except (ValueError, TypeError, AttributeError) as e:
            collector.problem(number, f"invalid {layout} row: {e}")
            continue
        data["provenance"] = {**data["provenance"], "source": path.name, "row": number}
        collector.add(number, data)
    return collector.finish()


def load_dataset_file(
    path: str | Path, layout: DatasetLayout = "records", *, strict: bool = False
) -> LoadResult:
    """Load `path` with `load_records` (`layout="records"`) or `load_paper_dataset`."""
    if layout == "records":
        return load_records(path, strict=strict)
    return load_paper_dataset(path, layout, strict=strict)


def merge_results(results: Sequence[LoadResult]) -> LoadResult:
    """Concatenate several `LoadResult`s (records and problems, in order)."""
    merged = LoadResult()
    for result in results:
        merged.records.extend(result.records)
        merged.skipped.extend(result.skipped)
    return merged
