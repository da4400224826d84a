"""`fspo publish` refuses an adapter that a serving engine would refuse or cut, unless allowed.

Against the Hub test double, with stand-in adapter files (see test_hub_publish.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fspo_train.publish.hub import publish_adapter
from langchain_fspo.errors import IncompatibleAdapterError
from tests.hub_server import HubServer
from tests.train.publish.test_hub import TOKEN, _adapter_folder, _card, _cli

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _folder(root: Path, **config: Any) -> Path:
    """A publishable folder whose `adapter_config.json` gets `config` on top."""
    folder = _adapter_folder(root)
    path = folder / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return folder


def test_publish_refuses_what_an_engine_would_cut_before_any_request(
    hub_server: HubServer, tmp_path: Path
) -> None:
    folder = _folder(tmp_path, target_modules=[*PROJECTIONS, "lm_head"], use_dora=True)
    with pytest.raises(IncompatibleAdapterError) as info:
        publish_adapter(folder, "org/fspo", token=TOKEN)
    message = str(info.value)
    assert "vLLM refuses it: DoRA (use_dora)" in message
    assert "TGI drops it: LoRA on ['lm_head']" in message
    assert "--allow-engine-problems" in message
    assert hub_server.requests == []
    assert not (folder / "README.md").exists()


def test_allowed_problems_are_published_and_listed_on_the_card(
    hub_server: HubServer, tmp_path: Path
) -> None:
    folder = _folder(tmp_path, r=8, target_modules=[*PROJECTIONS, "lm_head"])
    publish_adapter(folder, "org/fspo", token=TOKEN, allow_engine_problems=True)
    _, body = _card(hub_server.commits[0].files["README.md"])
    assert "Serving limits of this adapter:" in body
    assert "- TGI drops it: LoRA on ['lm_head']" in body
    assert "--lora-modules fspo=org/fspo --max-lora-rank 8" in body
    assert "`--max-lora-rank 8` is the smallest value vLLM accepts for this adapter's rank (8)" in (
        body
    )


def test_default_targets_publish_without_limits(hub_server: HubServer, tmp_path: Path) -> None:
    publish_adapter(_folder(tmp_path, r=16, target_modules=PROJECTIONS), "org/fspo", token=TOKEN)
    _, body = _card(hub_server.commits[0].files["README.md"])
    assert "Serving limits" not in body
    assert "--max-lora-rank 16" in body


def test_cli_refuses_then_publishes_with_the_flag(
    hub_server: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder(tmp_path, modules_to_save=["embed_tokens"])
    argv = ["publish", str(folder), "--repo-id", "org/cli", "--token", TOKEN]
    assert _cli(argv) == 2
    err = capsys.readouterr().err
    assert "vLLM refuses it: modules_to_save ['embed_tokens']" in err
    assert hub_server.commits == []
    assert _cli([*argv, "--allow-engine-problems"]) == 0
    assert len(hub_server.commits) == 1


def test_card_only_states_a_rank_vllm_cannot_serve(hub_server: HubServer, tmp_path: Path) -> None:
    folder = _folder(tmp_path, r=1024)
    assert _cli(["publish", str(folder), "--repo-id", "org/cli", "--card-only"]) == 0
    _, body = _card((folder / "README.md").read_bytes())
    assert "LoRA rank 1024 is above vLLM's largest --max-lora-rank (512)" in body
    assert "- vLLM refuses it: rank 1024" in body
    assert "--max-lora-rank" not in body.split("```bash\nvllm serve", 1)[1].split("```", 1)[0]
    assert hub_server.requests == []
