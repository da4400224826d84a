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


def test_base_model_path_tells_folders_from_hub_ids(tmp_path: Path, monkeypatch) -> None:
    from langchain_fspo.artifact import base_model_path

    monkeypatch.chdir(tmp_path)
    assert base_model_path("org/base") is None  # a Hub id
    assert base_model_path("base") is None
    assert base_model_path("./tiny-base") == Path("tiny-base")  # no Hub id looks like this
    assert base_model_path("/nowhere/tiny-base") == Path("/nowhere/tiny-base")
    (tmp_path / "base").mkdir()
    assert base_model_path("base") == tmp_path / "base"  # a folder here wins over a Hub id


def test_a_moved_base_model_folder_is_explained(tmp_path: Path, monkeypatch) -> None:
    from langchain_fspo.artifact import check_base_model_exists

    monkeypatch.chdir(tmp_path)
    check_base_model_exists("org/base", source="a")  # Hub ids are not checked here
    (tmp_path / "real").mkdir()
    check_base_model_exists(str(tmp_path / "real"), source="a")
    with pytest.raises(AdapterNotFoundError) as info:
        check_base_model_exists("./tiny-base", source="runs/fspo")
    message = str(info.value)
    assert "runs/fspo" in message
    assert "'./tiny-base'" in message
    assert f"relative path, read from {tmp_path}" in message
    assert "base_model_name_or_path" in message
    assert "Repo id" not in message


def test_read_adapter_config_reports_a_broken_file(tmp_path: Path) -> None:
    folder = _adapter(tmp_path / "a", {"r": 8})
    assert read_adapter_config(folder, require_base_model=False) == {"r": 8}
    (folder / ADAPTER_CONFIG_FILENAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(AdapterNotFoundError, match="not valid JSON"):
        read_adapter_config(folder)


def test_find_adapters_skips_trainer_checkpoints(tmp_path: Path) -> None:
    from langchain_fspo.artifact import find_adapters

    _adapter(tmp_path / "run" / "stage1", {"base_model_name_or_path": "org/base"})
    _adapter(tmp_path / "run" / "checkpoint-5", {"base_model_name_or_path": "org/base"})
    assert find_adapters(tmp_path / "run") == [tmp_path / "run" / "stage1"]


def test_loading_an_adapter_whose_base_folder_moved_says_how_to_fix_it(
    tmp_path: Path, monkeypatch
) -> None:
    """An adapter trained before absolute paths (or copied elsewhere): no Hub-id error."""
    from langchain_fspo import ChatFSPO
    from langchain_fspo.backends.local import LocalBackend

    folder = _adapter(tmp_path / "adapter", {"base_model_name_or_path": "./tiny-base"})
    PromptFormat(style="paper", base_model_id="./tiny-base").save_pretrained(folder)
    monkeypatch.chdir(tmp_path)
    for load in (ChatFSPO.from_pretrained, LocalBackend.from_adapter_dir):
        with pytest.raises(AdapterNotFoundError) as info:
            load(folder)
        message = str(info.value)
        assert "'./tiny-base'" in message
        assert "does not exist here" in message
        assert "alphanumeric" not in message
