"""Pytest fixtures around the Hub test double (`tests.hub_server.HubServer`).

Import the fixture into a conftest (or a test module) to use it; it is registered under the
name `hub_server`:

    from tests.hub_fixtures import hub_server_fixture  # noqa: F401

`hub_server` starts a `HubServer` on 127.0.0.1 and points `huggingface_hub` at it for the
duration of one test: `HF_ENDPOINT` (environment, for subprocesses) and the module constants
`huggingface_hub` reads at import time (for this process), an empty `HF_HOME`/`HF_HUB_CACHE`
under `tmp_path`, no stored token, online mode. `set_hub_offline(monkeypatch)` then switches
this process (and subprocesses) to `HF_HUB_OFFLINE=1`, to test reading from the cache.

The object yielded has `.url`, `.commits` (every accepted `HubCommit`), `.requests`,
`.repos`, `.add_file(repo_id, path, data, revision="main")` and `.files(repo_id, revision)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub_server import HubServer

__all__ = ["hub_server_fixture", "point_hub_at", "set_hub_offline"]


def point_hub_at(monkeypatch: pytest.MonkeyPatch, url: str, home: Path) -> None:
    """Make `huggingface_hub` (this process and subprocesses) use `url` and an empty `home`."""
    from huggingface_hub import constants

    cache = home / "hub"
    cache.mkdir(parents=True, exist_ok=True)
    env = {
        "HF_ENDPOINT": url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_TOKEN_PATH": str(home / "token"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)


def set_hub_offline(monkeypatch: pytest.MonkeyPatch, offline: bool = True) -> None:
    """Switch `huggingface_hub` to (or out of) offline mode, as `HF_HUB_OFFLINE=1` does."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


@pytest.fixture(name="hub_server")
def hub_server_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    """A running Hub test double, with `huggingface_hub` pointed at it and an empty cache.

    Fails the test if the double itself raised while serving.
    """
    with HubServer() as server:
        point_hub_at(monkeypatch, server.url, tmp_path / "hf_home")
        yield server
        errors = list(server.handler_errors)
    assert not errors, f"the Hub test double failed while serving: {errors!r}"
