"""`PromptFormat.from_pretrained` and `resolve_file` against the Hub test double.

The real `huggingface_hub` client (hf_hub_download, snapshot_download, HfApi) talks HTTP to
`tests.hub_server.HubServer` on 127.0.0.1; nothing is mocked inside the client.
"""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download

from langchain_fspo.artifact import resolve_file
from langchain_fspo.errors import AdapterNotFoundError
from langchain_fspo.prompt_format import FORMAT_FILENAME, PromptFormat
from tests.hub_fixtures import set_hub_offline
from tests.hub_server import HubServer, git_blob_sha

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


def _publish_format(hub: HubServer, repo: str, fmt: PromptFormat, revision: str = "main") -> str:
    return hub.add_file(repo, FORMAT_FILENAME, fmt.to_json().encode(), revision=revision)


def test_from_pretrained_reads_the_hub_repo(hub_server: HubServer) -> None:
    fmt = PromptFormat(style="paper", num_shots=6, base_model_id="org/base")
    _publish_format(hub_server, "org/fspo", fmt)

    loaded = PromptFormat.from_pretrained("org/fspo")

    assert loaded == fmt
    resolves = [r for r in hub_server.requests if "/resolve/" in r.path]
    assert resolves, "the client never asked the double for the file"
    assert all(r.path.startswith("/org/fspo/resolve/main/") for r in resolves)


def test_repo_without_format_fails_clearly(hub_server: HubServer) -> None:
    hub_server.add_file("org/plain-lora", "adapter_config.json", b"{}")

    with pytest.raises(AdapterNotFoundError) as info:
        PromptFormat.from_pretrained("org/plain-lora")

    message = str(info.value)
    assert "org/plain-lora" in message
    assert FORMAT_FILENAME in message
    assert "fspo publish" in message


def test_unknown_repo_fails_clearly(hub_server: HubServer) -> None:
    with pytest.raises(AdapterNotFoundError, match="org/nothing-here"):
        PromptFormat.from_pretrained("org/nothing-here")


def test_revision_is_honoured(hub_server: HubServer) -> None:
    _publish_format(hub_server, "org/fspo", PromptFormat(num_shots=4))
    _publish_format(hub_server, "org/fspo", PromptFormat(num_shots=8), revision="v2")

    assert PromptFormat.from_pretrained("org/fspo").num_shots == 4
    assert PromptFormat.from_pretrained("org/fspo", revision="v2").num_shots == 8
    paths = [r.path for r in hub_server.requests if "/resolve/" in r.path]
    assert any("/resolve/v2/" in p for p in paths)


def test_unknown_revision_fails_clearly(hub_server: HubServer) -> None:
    _publish_format(hub_server, "org/fspo", PromptFormat())
    with pytest.raises(AdapterNotFoundError, match="no-such-branch"):
        PromptFormat.from_pretrained("org/fspo", revision="no-such-branch")


def test_offline_reads_the_cache_without_requests(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt = PromptFormat(style="chat", num_shots=3)
    _publish_format(hub_server, "org/fspo", fmt)
    assert PromptFormat.from_pretrained("org/fspo") == fmt
    before = len(hub_server.requests)

    set_hub_offline(monkeypatch)
    hub_server.stop()  # nothing may reach the network now

    assert PromptFormat.from_pretrained("org/fspo") == fmt
    assert len(hub_server.requests) == before


def test_offline_without_cache_fails(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish_format(hub_server, "org/fspo", PromptFormat())
    set_hub_offline(monkeypatch)
    with pytest.raises(AdapterNotFoundError):
        resolve_file("org/fspo", FORMAT_FILENAME)
    assert not [r for r in hub_server.requests if "/resolve/" in r.path]


def test_double_serves_snapshot_download_and_tree(hub_server: HubServer) -> None:
    hub_server.add_file("org/fspo", "adapter_config.json", b'{"r": 4}')
    hub_server.add_file("org/fspo", "nested/notes.txt", b"hello")

    folder = snapshot_download("org/fspo")

    from pathlib import Path

    root = Path(folder)
    assert (root / "adapter_config.json").read_bytes() == b'{"r": 4}'
    assert (root / "nested" / "notes.txt").read_bytes() == b"hello"
    tree = {f.path: f.blob_id for f in HfApi().list_repo_tree("org/fspo", recursive=True)}
    assert tree["nested/notes.txt"] == git_blob_sha(b"hello")


def test_private_repo_is_hidden_from_anonymous_callers(hub_server: HubServer) -> None:
    api = HfApi()
    api.create_repo("org/secret", private=True, token="hf_test")
    hub_server.add_file("org/secret", FORMAT_FILENAME, PromptFormat().to_json().encode())

    with pytest.raises(AdapterNotFoundError):
        PromptFormat.from_pretrained("org/secret")
    assert PromptFormat.from_pretrained("org/secret", token="hf_test").num_shots == 8
    path = hf_hub_download("org/secret", FORMAT_FILENAME, token="hf_test")
    assert path.endswith(FORMAT_FILENAME)


def test_offline_cache_miss_says_offline(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish_format(hub_server, "org/fspo", PromptFormat())
    set_hub_offline(monkeypatch)
    with pytest.raises(AdapterNotFoundError, match="cache"):
        resolve_file("org/fspo", FORMAT_FILENAME)
