"""`langchain_fspo.artifact`: the adapter's file names, finding its files, the base-model check."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import langchain_fspo.artifact
from langchain_fspo.artifact import (
    ADAPTER_CONFIG_FILENAME,
    ADAPTER_FILES,
    ADAPTER_WEIGHTS_FILENAME,
    FORMAT_FILENAME,
    adapter_folder,
    check_base_model,
    missing_files,
    read_adapter_config,
    same_model,
)
from langchain_fspo.errors import AdapterNotFoundError, PromptFormatError
from langchain_fspo.prompt_format import PromptFormat


def _adapter(folder: Path, config: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ADAPTER_CONFIG_FILENAME).write_text(json.dumps(config), encoding="utf-8")
    (folder / ADAPTER_WEIGHTS_FILENAME).write_bytes(b"weights")
    PromptFormat(style="paper").save_pretrained(folder)
    return folder


def test_docstring_examples_run() -> None:
    result = doctest.testmod(langchain_fspo.artifact)
    assert result.attempted > 0
    assert result.failed == 0


def test_the_format_is_saved_under_the_contract_name(tmp_path: Path) -> None:
    path = PromptFormat().save_pretrained(tmp_path)
    assert path.name == FORMAT_FILENAME
    assert FORMAT_FILENAME in ADAPTER_FILES


def test_missing_files_lists_what_a_folder_lacks(tmp_path: Path) -> None:
    folder = _adapter(tmp_path / "a", {"base_model_name_or_path": "org/base"})
    assert missing_files(folder) == []
    (folder / ADAPTER_WEIGHTS_FILENAME).unlink()
    assert missing_files(folder) == [ADAPTER_WEIGHTS_FILENAME]


def test_read_adapter_config_needs_the_base_model(tmp_path: Path) -> None:
    good = _adapter(tmp_path / "good", {"base_model_name_or_path": "org/base", "r": 8})
    assert read_adapter_config(good)["r"] == 8

    bad = _adapter(tmp_path / "bad", {"r": 8})
    with pytest.raises(AdapterNotFoundError, match="base_model_name_or_path"):
        read_adapter_config(bad)


def test_a_local_adapter_folder_is_used_as_it_is(tmp_path: Path) -> None:
    folder = _adapter(tmp_path / "a", {"base_model_name_or_path": "org/base"})
    assert adapter_folder(folder) == folder


def test_same_model_resolves_paths(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    link = tmp_path / "link"
    link.symlink_to(base, target_is_directory=True)
    assert same_model(str(base), str(link))
    assert not same_model(str(base), str(tmp_path))
    assert not same_model("org/missing-a", "org/missing-b")


def test_check_base_model_names_both_files(tmp_path: Path) -> None:
    check_base_model(None, "org/base", source=tmp_path)
    check_base_model("org/base", "org/base/", source=tmp_path)
    with pytest.raises(PromptFormatError) as info:
        check_base_model("org/base", "org/other", source=tmp_path)
    message = str(info.value)
    assert FORMAT_FILENAME in message
    assert ADAPTER_CONFIG_FILENAME in message
    assert "'org/other'" in message
