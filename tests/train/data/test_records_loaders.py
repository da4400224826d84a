"""Loading the JSONL schema and the paper's released dataset layouts (small files written here)."""

from __future__ import annotations

import csv
import doctest
import importlib
import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
import pytest

from fspo_train.data.loaders import (
    load_dataset_file,
    load_paper_dataset,
    load_records,
    reviews_description,
    write_records,
)
from fspo_train.data.records import PreferenceRecord
from langchain_fspo.errors import InvalidExampleError

GOOD = {"user_id": "u1", "question": "Why?", "chosen": "Because.", "rejected": "No."}


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "module", ["fspo_train.data.loaders", "fspo_train.trainer.config", "fspo_train.trainer.losses"]
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0


def test_valid_file_round_trips(tmp_path: Path) -> None:
    records = [
        PreferenceRecord(**GOOD),
        PreferenceRecord(
            user_id="ada@example.com",
            question="Ünïcode?\nline two",
            chosen="yes",
            rejected="no",
            user_description="The user is a child.",
            question_id="q7",
            provenance={"source": "test", "row": 3},
        ),
    ]
    path = write_records(tmp_path / "r.jsonl", records)
    result = load_records(path)
    assert result.records == records
    assert result.skipped == []
    assert "nothing skipped" in result.summary()


def test_bad_lines_are_reported_with_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _jsonl(
        tmp_path / "bad.jsonl",
        [
            json.dumps(GOOD),
            "{not json",
            "",  # blank lines are not data
            json.dumps({**GOOD, "chosen": "same", "rejected": "same"}),
            json.dumps({**GOOD, "question": "   "}),
            json.dumps({**GOOD, "surprise": 1}),
            json.dumps(["a", "list"]),
            json.dumps({k: v for k, v in GOOD.items() if k != "user_id"}),
            json.dumps({**GOOD, "question": "Second?"}),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="fspo_train.data.loaders"):
        result = load_records(path)
    assert [r.question for r in result.records] == ["Why?", "Second?"]
    by_line = {p.line: p.reason for p in result.skipped}
    assert sorted(by_line) == [2, 4, 5, 6, 7, 8]
    assert by_line[2].startswith("malformed JSON")
    assert "`chosen` equals `rejected`" in by_line[4]
    assert "`question`" in by_line[5]
    assert "non-empty" in by_line[5]
    assert "`surprise`" in by_line[6]
    assert "expected an object" in by_line[7]
    assert "`user_id`" in by_line[8]
    assert all(p.path == str(path) for p in result.skipped)
    assert f"{path}:4:" in caplog.text  # each skip is logged with file and line
    summary = result.summary()
    assert "Loaded 2 preference records; skipped 6" in summary
    assert f"{path}:2:" in summary


def test_strict_raises_on_first_bad_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", [json.dumps(GOOD), "{oops", "{also bad"])
    with pytest.raises(InvalidExampleError, match=r"bad\.jsonl:2: malformed JSON"):
        load_records(path, strict=True)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        load_records(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------------- paper layouts

ELIX_ROWS = [
    {
        "prompt": "Why is the sky blue?",
        "response_x": "Light scatters.",
        "response_y": "Rayleigh scattering of short wavelengths.",
        "label": 1,
        "level_x": "a child",
        "level_y": "an expert",
        "scorer_level": "an expert",
        "scorer_level_id": 4,
    },
    {
        "prompt": "What is rain?",
        "response_x": "Water falling from clouds.",
        "response_y": "Precipitation of condensed vapour.",
        "label": 0,
        "level_x": "a child",
        "level_y": "an expert",
        "scorer_level": "a child",
        "scorer_level_id": 0,
    },
]


def _write_table(rows: list[dict[str, Any]], path: Path) -> Path:
    if path.suffix == ".jsonl":
        return _jsonl(path, [json.dumps(r) for r in rows])
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()}
            )
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_elix_layout(tmp_path: Path, suffix: str) -> None:
    path = _write_table(ELIX_ROWS, tmp_path / f"elix{suffix}")
    result = load_paper_dataset(path, "elix")
    assert result.skipped == []
    expert, child = result.records
    assert expert.user_id == "an expert"
    assert expert.chosen == "Rayleigh scattering of short wavelengths."  # label 1 -> y
    assert expert.rejected == "Light scatters."
    assert expert.user_description == "The user is an expert."
    assert child.chosen == "Water falling from clouds."  # label 0 -> x
    assert child.user_description == "The user is a child."
    assert expert.provenance["dataset"] == "elix"
    assert expert.provenance["row"] == 1
    assert expert.question_id is not None
    assert expert.question_id != child.question_id


def test_reviews_layout_and_descriptions(tmp_path: Path) -> None:
    rows = [
        {
            "prompt": "Review the film 'Heat'.",
            "response_x": "A tense, brilliant thriller.",
            "response_y": "Overlong and dull.",
            "label": 0,
            "level_x": "positive",
            "level_y": "negative",
            "scorer_level": "positive+concise",
        }
    ]
    record = load_paper_dataset(_jsonl(tmp_path / "r.jsonl", [json.dumps(rows[0])]), "reviews")
    assert record.records[0].user_description == "This user prefers positive and concise reviews."
    assert reviews_description("negative") == "This user prefers negative reviews."
    assert reviews_description("negative and verbose") == (
        "This user prefers negative and verbose reviews."
    )


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_roleplay_layout(tmp_path: Path, suffix: str) -> None:
    rows = [
        {
            "x": "Plan my weekend.",
            "yw": "A quiet hike.",
            "yl": "A loud party.",
            "level": "3f0c-uuid",
            "score_persona": {"persona_description": "A 53-year-old traveller who likes calm."},
        }
    ]
    result = load_dataset_file(_write_table(rows, tmp_path / f"rp{suffix}"), "roleplay")
    assert result.skipped == []
    (record,) = result.records
    assert record.user_id == "3f0c-uuid"
    assert (record.question, record.chosen, record.rejected) == (
        "Plan my weekend.",
        "A quiet hike.",
        "A loud party.",
    )
    assert record.user_description == "A 53-year-old traveller who likes calm."


def test_bad_paper_rows_are_reported(tmp_path: Path) -> None:
    rows = [
        ELIX_ROWS[0],
        {**ELIX_ROWS[1], "label": 7},
        {k: v for k, v in ELIX_ROWS[1].items() if k != "response_y"},
        {**ELIX_ROWS[1], "response_y": ELIX_ROWS[1]["response_x"]},
    ]
    result = load_paper_dataset(_jsonl(tmp_path / "e.jsonl", [json.dumps(r) for r in rows]), "elix")
    assert len(result.records) == 1
    reasons = {p.line: p.reason for p in result.skipped}
    assert "`label` must be 0" in reasons[2]
    assert "missing column `response_y`" in reasons[3]
    assert "`chosen` equals `rejected`" in reasons[4]
    with pytest.raises(InvalidExampleError, match=r"e\.jsonl:2"):
        load_paper_dataset(tmp_path / "e.jsonl", "elix", strict=True)


def test_unknown_layout_and_suffix(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "x.txt", [json.dumps(ELIX_ROWS[0])])
    with pytest.raises(ValueError, match="Unknown dataset layout"):
        load_paper_dataset(path, "movies")
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        load_paper_dataset(path, "elix")
