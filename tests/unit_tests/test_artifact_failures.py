"""Every way an adapter folder can be broken raises a typed error naming the file and the fix.

`fspo_format.json` failures raise `PromptFormatError`, adapter failures `AdapterNotFoundError`
(never `UnicodeDecodeError`, `RecursionError`, `JSONDecodeError`, `HFValidationError` or an
unpickling error). Wrong types in the format are refused, not coerced; sizes are capped.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from langchain_fspo.artifact import (
    ADAPTER_CONFIG_FILENAME,
    ADAPTER_WEIGHTS_FILENAME,
    FORMAT_FILENAME,
    MAX_JSON_BYTES,
    PICKLED_WEIGHTS_FILENAME,
    adapter_folder,
    read_adapter_config,
    resolve_file,
)
from langchain_fspo.errors import AdapterNotFoundError, PromptFormatError
from langchain_fspo.prompt_format import (
    MAX_SPECIAL_TOKENS,
    MAX_SYSTEM_PROMPT_CHARS,
    PromptFormat,
)

CONFIG = {"base_model_name_or_path": "org/base", "peft_type": "LORA"}


def _folder(tmp_path: Path, *, config: bytes | None = None, fmt: bytes | None = None) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / ADAPTER_CONFIG_FILENAME).write_bytes(config or json.dumps(CONFIG).encode())
    (folder / ADAPTER_WEIGHTS_FILENAME).write_bytes(b"weights")
    (folder / FORMAT_FILENAME).write_bytes(fmt or PromptFormat().to_json().encode())
    return folder


# ---------------------------------------------------------------- fspo_format.json


def test_format_with_invalid_utf8_is_a_prompt_format_error(tmp_path: Path) -> None:
    folder = _folder(tmp_path, fmt=b'{"style": "chat", "system_prompt": "caf\xe9"}')
    with pytest.raises(PromptFormatError, match=r"fspo_format\.json is not UTF-8.*save_pretrained"):
        PromptFormat.from_pretrained(folder)


def test_format_nested_100k_deep_is_a_prompt_format_error(tmp_path: Path) -> None:
    deep = b'{"style": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    folder = _folder(tmp_path, fmt=deep)
    with pytest.raises(PromptFormatError, match=r"fspo_format\.json is nested too deeply"):
        PromptFormat.from_pretrained(folder)
    with pytest.raises(PromptFormatError, match="nested too deeply"):
        PromptFormat.from_json(deep.decode())


def test_format_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    prompt = "x" * (MAX_JSON_BYTES + 1)
    folder = _folder(tmp_path, fmt=json.dumps({"system_prompt": prompt}).encode())
    with pytest.raises(PromptFormatError, match=r"fspo_format\.json is .* bytes, over"):
        PromptFormat.from_pretrained(folder)


def test_system_prompt_over_its_cap_is_refused(tmp_path: Path) -> None:
    long = {"style": "chat", "system_prompt": "x" * (MAX_SYSTEM_PROMPT_CHARS + 1)}
    folder = _folder(tmp_path, fmt=json.dumps(long).encode())
    with pytest.raises(PromptFormatError, match=r"(?s)fspo_format\.json.*system_prompt"):
        PromptFormat.from_pretrained(folder)
    ok = {"style": "chat", "system_prompt": "x" * MAX_SYSTEM_PROMPT_CHARS}
    assert PromptFormat.from_json(json.dumps(ok)).system_prompt == ok["system_prompt"]


def test_too_many_or_too_long_special_tokens_are_refused() -> None:
    many = [f"<|t{i}|>" for i in range(MAX_SPECIAL_TOKENS + 1)]
    with pytest.raises(PromptFormatError, match="special_tokens"):
        PromptFormat.from_json(json.dumps({"special_tokens": many}))
    with pytest.raises(PromptFormatError, match="special_tokens"):
        PromptFormat.from_json(json.dumps({"special_tokens": ["<" + "x" * 300 + ">"]}))
    fmt = PromptFormat.from_json(json.dumps({"special_tokens": many[:MAX_SPECIAL_TOKENS]}))
    assert len(fmt.special_tokens) == MAX_SPECIAL_TOKENS


def test_many_special_tokens_are_still_neutralised() -> None:
    tokens = tuple(f"<|reserved_{i}|>" for i in range(5_000))
    fmt = PromptFormat(style="paper", special_tokens=tokens)
    text = fmt.render([], "plain <|reserved_4321|> text").text
    assert "<\u200b|reserved_4321|>" in text
    assert "<|reserved_4321|>" not in text
    assert fmt.render([], "plain text").text.endswith("plain text\n")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_shots", "8"),
        ("num_shots", True),
        ("num_shots", 4.0),
        ("schema_version", True),
        ("schema_version", "1"),
        ("include_rejected", 1),
        ("include_rejected", "true"),
        ("max_prompt_tokens", "4096"),
        ("max_prompt_tokens", 4096.0),
        ("system_prompt", 5),
        ("base_model_id", ["org/base"]),
        ("chat_template_sha256", "not-a-digest"),
        ("special_tokens", "<s>"),
        ("special_tokens", [1, 2]),
    ],
)
def test_wrong_types_are_refused_not_coerced(field: str, value: object) -> None:
    with pytest.raises(PromptFormatError, match=field):
        PromptFormat.from_json(json.dumps({"style": "chat", field: value}))


def test_the_right_types_still_load(tmp_path: Path) -> None:
    fmt = PromptFormat(
        style="chat",
        num_shots=4,
        include_rejected=False,
        max_prompt_tokens=4096,
        system_prompt="Be brief.",
        base_model_id="org/base",
        chat_template_sha256=PromptFormat.template_sha256("{{ x }}"),
        special_tokens=("<s>", "</s>"),
    )
    fmt.save_pretrained(tmp_path)
    assert PromptFormat.from_pretrained(tmp_path) == fmt


# ---------------------------------------------------------------- the adapter


def test_adapter_config_not_json_is_an_adapter_error(tmp_path: Path) -> None:
    folder = _folder(tmp_path, config=b"{not json")
    with pytest.raises(AdapterNotFoundError, match=r"adapter_config\.json is not valid JSON"):
        read_adapter_config(folder)
    with pytest.raises(AdapterNotFoundError, match=r"adapter_config\.json is not valid JSON"):
        adapter_folder(folder)


def test_adapter_config_with_invalid_utf8_is_an_adapter_error(tmp_path: Path) -> None:
    folder = _folder(tmp_path, config=b'{"base_model_name_or_path": "caf\xe9"}')
    with pytest.raises(AdapterNotFoundError, match=r"adapter_config\.json is not UTF-8"):
        read_adapter_config(folder)


def test_adapter_config_base_model_must_be_a_string(tmp_path: Path) -> None:
    folder = _folder(tmp_path, config=json.dumps({"base_model_name_or_path": 7}).encode())
    with pytest.raises(AdapterNotFoundError, match="base_model_name_or_path"):
        read_adapter_config(folder)


def test_folder_without_safetensors_is_not_looked_up_on_the_hub(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / ADAPTER_WEIGHTS_FILENAME).unlink()
    with pytest.raises(AdapterNotFoundError, match=r"No adapter_model\.safetensors in .*adapter"):
        adapter_folder(folder)


def test_a_path_that_is_no_folder_is_not_a_hub_validation_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "adapter"
    with pytest.raises(AdapterNotFoundError, match="not a folder on this machine"):
        resolve_file(missing, FORMAT_FILENAME)
    with pytest.raises(AdapterNotFoundError, match="not a folder on this machine"):
        adapter_folder(missing)
    with pytest.raises(AdapterNotFoundError, match="not a folder on this machine"):
        PromptFormat.from_pretrained(missing)


class _Payload:
    """Unpickling this writes a marker file: proof that the pickle was executed."""

    marker: Path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))


def test_pickled_weights_are_refused_unread(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / ADAPTER_WEIGHTS_FILENAME).unlink()
    payload = _Payload()
    payload.marker = tmp_path / "pwned"
    (folder / PICKLED_WEIGHTS_FILENAME).write_bytes(pickle.dumps(payload))
    with pytest.raises(AdapterNotFoundError, match=r"pickled weights \(adapter_model\.bin\)"):
        adapter_folder(folder)
    assert not payload.marker.exists()
