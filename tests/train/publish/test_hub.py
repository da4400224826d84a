"""`fspo publish` / `publish_adapter` against the Hub test double (no torch needed).

The adapter files here are stand-ins (publishing copies bytes; it does not load weights);
`tests/train/publish/test_publish.py` publishes a real tiny PEFT adapter and loads it back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from fspo_train.publish.hub import REQUIRED_FILES, check_adapter_folder, publish_adapter
from langchain_fspo.errors import AdapterNotFoundError
from langchain_fspo.prompt_format import FORMAT_FILENAME, PromptFormat
from tests.hub_server import HubServer

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

BASE = "meta-llama/Llama-3.2-3B-Instruct"
TOKEN = "hf_test"  # the double accepts any token
ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors", FORMAT_FILENAME}


def _adapter_folder(root: Path, *, style: str = "paper", results: bool = False) -> Path:
    folder = root / "run"
    folder.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": 32, "base_model_name_or_path": BASE}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"\x00weights" * 64)
    PromptFormat(style=style, num_shots=8, base_model_id=BASE).save_pretrained(folder)
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "optimizer.pt").write_bytes(b"state")
    for private in (
        "checkpoints/stage2/checkpoint-5/adapter_model.safetensors",
        "splits/test_users.jsonl",
        "eval_generations.jsonl",
    ):
        (folder / private).parent.mkdir(parents=True, exist_ok=True)
        (folder / private).write_text("users' data or trainer state")
    stage1 = folder / "pref_ft"
    stage1.mkdir()
    (stage1 / "adapter_config.json").write_text(json.dumps(config))
    if results:
        payload = {
            "baseline": "base",
            "judge": "ScriptedJudge",
            "beta": 0.01,
            "win_rate": {"fspo": {"trained": {"win_rate": 0.8125, "n": 16}}},
            "accuracy": {"fspo": {"held_out": {"accuracy": 0.75, "n": 8}}},
        }
        (folder / "eval_results.json").write_text(json.dumps(payload))
    return folder


def _card(data: bytes) -> tuple[dict[str, object], str]:
    text = data.decode()
    _, header, body = text.split("---", 2)
    return yaml.safe_load(header), body


def test_publish_uploads_adapter_format_and_card(hub_server: HubServer, tmp_path: Path) -> None:
    folder = _adapter_folder(tmp_path)

    result = publish_adapter(folder, "org/fspo-roleplay", token=TOKEN)

    assert len(hub_server.commits) == 1
    commit = hub_server.commits[0]
    assert commit.revision == "main"
    assert commit.oid == result.commit_oid
    # Trainer state and data files (users' preferences, generations) are never uploaded.
    assert set(commit.files) == {*ADAPTER_FILES, "README.md", "pref_ft/adapter_config.json"}
    assert commit.files["adapter_model.safetensors"] == b"\x00weights" * 64
    assert PromptFormat.from_json(commit.files[FORMAT_FILENAME].decode()).num_shots == 8
    meta, body = _card(commit.files["README.md"])
    assert meta["library_name"] == "peft"
    assert meta["base_model"] == BASE
    assert meta["pipeline_tag"] == "text-generation"
    assert {"fspo", "lora", "personalization", f"base_model:adapter:{BASE}"} <= set(meta["tags"])
    assert "LORA_ADAPTERS=org/fspo-roleplay" in body
    assert '"adapter_id": "org/fspo-roleplay"' in body  # paper style: /generate + adapter_id
    assert "--lora-modules fspo=org/fspo-roleplay --max-lora-rank 32" in body
    assert 'ChatFSPO.from_pretrained(\n    "org/fspo-roleplay",' in body
    assert 'adapters=["org/fspo-roleplay"]' in body
    assert "## Evaluation" not in body
    # The card parses with huggingface_hub's own loader.
    assert ModelCard(commit.files["README.md"].decode()).data.library_name == "peft"


def test_chat_style_card_documents_chat_completions(hub_server: HubServer, tmp_path: Path) -> None:
    publish_adapter(_adapter_folder(tmp_path, style="chat"), "org/fspo-chat", token=TOKEN)
    _, body = _card(hub_server.commits[0].files["README.md"])
    assert "/v1/chat/completions" in body
    assert '"model": "org/fspo-chat"' in body


def test_eval_results_reach_the_card(hub_server: HubServer, tmp_path: Path) -> None:
    publish_adapter(_adapter_folder(tmp_path, results=True), "org/fspo-eval", token=TOKEN)
    files = hub_server.commits[0].files
    assert "eval_results.json" in files
    _, body = _card(files["README.md"])
    assert "## Evaluation" in body
    assert "| fspo | 81.2 (n=16) |" in body
    assert "| fspo | 75.0 (n=8) |" in body


def test_private_flag_revision_and_token_reach_the_server(
    hub_server: HubServer, tmp_path: Path
) -> None:
    folder = _adapter_folder(tmp_path)

    result = publish_adapter(
        folder, "org/fspo-private", private=True, revision="v2", token="hf_secret"
    )

    assert hub_server.repos["org/fspo-private"].private is True
    create = next(r for r in hub_server.requests if r.path == "/api/repos/create")
    assert json.loads(create.body)["visibility"] == "private"
    assert hub_server.commits[-1].revision == "v2"
    assert result.revision == "v2"
    assert "adapter_model.safetensors" in hub_server.files("org/fspo-private", "v2")
    assert "adapter_model.safetensors" not in hub_server.files("org/fspo-private", "main")
    assert all(r.headers.get("authorization") == "Bearer hf_secret" for r in hub_server.requests)


def test_republishing_to_an_existing_repo_adds_a_commit(
    hub_server: HubServer, tmp_path: Path
) -> None:
    folder = _adapter_folder(tmp_path)
    publish_adapter(folder, "org/fspo", token=TOKEN)
    (folder / "adapter_model.safetensors").write_bytes(b"new weights")
    publish_adapter(folder, "org/fspo", commit_message="Retrained", token=TOKEN)
    assert [c.message for c in hub_server.commits] == ["Upload FSPO adapter", "Retrained"]
    assert hub_server.files("org/fspo")["adapter_model.safetensors"] == b"new weights"


@pytest.mark.parametrize("missing", sorted(REQUIRED_FILES))
def test_incomplete_folder_is_refused_before_any_request(
    hub_server: HubServer, tmp_path: Path, missing: str
) -> None:
    folder = _adapter_folder(tmp_path)
    (folder / missing).unlink()

    with pytest.raises(AdapterNotFoundError) as info:
        publish_adapter(folder, "org/fspo", token=TOKEN)

    message = str(info.value)
    assert missing in message
    assert REQUIRED_FILES[missing] in message  # how to produce it
    assert hub_server.requests == []
    assert not (folder / "README.md").exists()


def test_check_lists_every_missing_file(tmp_path: Path) -> None:
    (tmp_path / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(AdapterNotFoundError) as info:
        check_adapter_folder(tmp_path)
    message = str(info.value)
    assert all(name in message for name in REQUIRED_FILES)
    assert "adapter_model.bin" in message  # the conversion hint


def _cli(argv: list[str]) -> int:
    from fspo_train.cli import main

    return main(argv)


def test_cli_publish(
    hub_server: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _adapter_folder(tmp_path)

    argv = ["publish", str(folder), "--repo-id", "org/cli", "--private", "--revision", "rc"]
    argv += ["--license", "llama3.2", "--dataset", "org/prefs"]
    code = _cli([*argv, "--token", TOKEN])

    assert code == 0
    assert hub_server.repos["org/cli"].private is True
    assert hub_server.commits[-1].revision == "rc"
    meta, _ = _card(hub_server.commits[-1].files["README.md"])
    assert meta["license"] == "llama3.2"
    assert meta["datasets"] == ["org/prefs"]
    out = capsys.readouterr().out
    assert "org/cli" in out
    assert hub_server.commits[-1].oid in out


def test_cli_without_credentials_says_how_to_log_in(
    hub_server: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _adapter_folder(tmp_path)
    assert _cli(["publish", str(folder), "--repo-id", "org/cli"]) == 1
    err = capsys.readouterr().err
    assert "401" in err
    assert "--token" in err
    assert hub_server.commits == []


def test_cli_card_only_uploads_nothing(
    hub_server: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _adapter_folder(tmp_path)
    assert _cli(["publish", str(folder), "--repo-id", "org/cli", "--card-only"]) == 0
    meta, body = _card((folder / "README.md").read_bytes())
    assert meta["library_name"] == "peft"
    assert "org/cli" in body
    assert hub_server.requests == []


def test_cli_refuses_incomplete_folder(
    hub_server: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _adapter_folder(tmp_path)
    (folder / FORMAT_FILENAME).unlink()
    assert _cli(["publish", str(folder), "--repo-id", "org/cli"]) == 2
    assert FORMAT_FILENAME in capsys.readouterr().err
    assert hub_server.requests == []


def test_a_local_base_model_is_not_linked_as_a_hub_repo(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fspo_train.publish.model_card import build_model_card

    folder = _adapter_folder(tmp_path)
    local_base = str(tmp_path / "tiny-base")
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": local_base})
    )
    PromptFormat(style="paper", base_model_id=local_base).save_pretrained(folder)
    with caplog.at_level("WARNING"):
        check_adapter_folder(folder)
    assert "only this machine has" in caplog.text
    card = build_model_card(folder, "org/fspo")
    assert card.data.base_model is None
    assert "huggingface.co/" + local_base not in card.content
    assert f"the local model `{local_base}`" in card.content


def test_cli_with_the_hub_unreachable_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from tests.hub_fixtures import point_hub_at

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    point_hub_at(monkeypatch, url, tmp_path / "hf_home")
    folder = _adapter_folder(tmp_path)
    assert _cli(["publish", str(folder), "--repo-id", "org/cli", "--token", TOKEN]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fspo publish: cannot reach {url}")
    assert "HF_ENDPOINT" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 2
    with pytest.raises(Exception, match="onnect"):  # --debug: the error itself
        _cli(["--debug", "publish", str(folder), "--repo-id", "org/cli", "--token", TOKEN])
