"""Loading broken or unusual adapter folders into the in-process backend (real tiny model, PEFT).

Each failure raises `AdapterNotFoundError` naming the file and the fix, and leaves the
backend serving what it served before; a dotted folder name (`fspo-v1.2`) just works.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from langchain_fspo import ChatFSPO
from langchain_fspo.artifact import (
    ADAPTER_CONFIG_FILENAME,
    ADAPTER_WEIGHTS_FILENAME,
    PICKLED_WEIGHTS_FILENAME,
)
from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.backends.local import LocalBackend
from langchain_fspo.errors import AdapterNotFoundError
from langchain_fspo.prompt_format import PromptFormat

pytestmark = pytest.mark.train

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

PARAMS = GenerationParams(max_tokens=6)
PROMPT = PromptFormat(style="chat").render([], "Recommend a film.")


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]) -> LocalBackend:
    return LocalBackend(tiny_model_dir, adapters={"alpha": tiny_adapter_dirs["alpha"]})


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_a_dotted_folder_name_loads_and_answers_like_the_adapter(
    tiny_adapter_dirs: dict[str, Path], backend: LocalBackend, tmp_path: Path
) -> None:
    folder = _copy(tiny_adapter_dirs["alpha"], tmp_path / "fspo-v1.2")
    llm = ChatFSPO.from_pretrained(folder, max_tokens=6)
    assert llm.model_name == "fspo-v1.2"
    message = llm.invoke("Recommend a film.")
    assert message.response_metadata["model_name"] == "fspo-v1.2"
    local = llm.backend
    assert isinstance(local, LocalBackend)
    dotted = local.generate(PROMPT, adapter="fspo-v1.2", params=PARAMS)
    assert dotted.text == backend.generate(PROMPT, adapter="alpha", params=PARAMS).text
    # Names that sanitise alike stay apart.
    local.add_adapter("fspo_v1_2", tiny_adapter_dirs["beta"])
    local.add_adapter("keys", tiny_adapter_dirs["beta"])
    beta = local.generate(PROMPT, adapter="fspo_v1_2", params=PARAMS)
    assert beta.text != dotted.text
    assert local.generate(PROMPT, adapter="keys", params=PARAMS).text == beta.text
    assert local.generate(PROMPT, adapter="fspo-v1.2", params=PARAMS).text == dotted.text


def test_pickled_weights_are_refused_and_never_unpickled(
    tiny_adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    folder = _copy(tiny_adapter_dirs["alpha"], tmp_path / "pickled")
    (folder / ADAPTER_WEIGHTS_FILENAME).unlink()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))

    (folder / PICKLED_WEIGHTS_FILENAME).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(AdapterNotFoundError, match=r"pickled weights.*adapter_model\.safetensors"):
        ChatFSPO.from_pretrained(folder)
    assert not marker.exists()


def test_a_folder_without_safetensors_is_not_taken_for_a_hub_repo(
    tiny_adapter_dirs: dict[str, Path], backend: LocalBackend, tmp_path: Path
) -> None:
    folder = _copy(tiny_adapter_dirs["alpha"], tmp_path / "no-weights")
    (folder / ADAPTER_WEIGHTS_FILENAME).unlink()
    with pytest.raises(AdapterNotFoundError, match=r"No adapter_model\.safetensors in"):
        ChatFSPO.from_pretrained(folder)
    with pytest.raises(AdapterNotFoundError, match=r"No adapter_model\.safetensors in"):
        backend.add_adapter("no-weights", folder)


def test_adapter_config_that_is_not_json_fails_before_peft(
    tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    folder = _copy(tiny_adapter_dirs["alpha"], tmp_path / "bad-config")
    (folder / ADAPTER_CONFIG_FILENAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(AdapterNotFoundError, match=r"adapter_config\.json is not valid JSON"):
        LocalBackend(tiny_model_dir, adapters={"bad": folder})


def test_a_config_peft_cannot_read_or_corrupt_weights_fail_before_peft(
    tiny_adapter_dirs: dict[str, Path], backend: LocalBackend, tmp_path: Path
) -> None:
    folder = _copy(tiny_adapter_dirs["alpha"], tmp_path / "odd-config")
    config = json.loads((folder / ADAPTER_CONFIG_FILENAME).read_text())
    (folder / ADAPTER_CONFIG_FILENAME).write_text(json.dumps({**config, "peft_type": "NOPE"}))
    with pytest.raises(AdapterNotFoundError, match=r"adapter_config\.json is not a PEFT adapter"):
        backend.add_adapter("odd", folder)
    folder = _copy(tiny_adapter_dirs["alpha"], tmp_path / "corrupt")
    (folder / ADAPTER_WEIGHTS_FILENAME).write_bytes(b"\x00not safetensors")
    with pytest.raises(AdapterNotFoundError, match=r"adapter_model\.safetensors is not a readable"):
        backend.add_adapter("corrupt", folder)
    assert sorted(backend.adapters) == ["alpha"]


def test_an_adapter_of_another_base_model_fails_and_leaves_the_backend_serving(
    backend: LocalBackend, tmp_path: Path
) -> None:
    from fspo_train.testing.tiny import build_tiny_adapter, build_tiny_base_model

    before = backend.generate(PROMPT, adapter="alpha", params=PARAMS).text
    other_base = build_tiny_base_model(tmp_path / "wide", hidden_size=96, num_heads=4)
    other = build_tiny_adapter(other_base, tmp_path / "other")
    with pytest.raises(AdapterNotFoundError, match="PEFT could not load the adapter in"):
        backend.add_adapter("other", other)
    assert sorted(backend.adapters) == ["alpha"]
    assert "other" not in backend._model.peft_config
    assert backend.generate(PROMPT, adapter="alpha", params=PARAMS).text == before
