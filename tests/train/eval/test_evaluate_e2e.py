"""The ML engineer's path end to end on the tiny model.

`fspo train` -> `fspo eval` -> `fspo publish` (to the Hub test double) ->
`ChatFSPO.from_pretrained(repo)` answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fspo_train.cli import main
from fspo_train.data.loaders import write_records
from langchain_fspo import ChatFSPO, PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat
from tests.hub_server import HubServer
from tests.train.records import tiny_run_config, toy_records

USERS = ("fox", "owl", "cat")


pytestmark = [
    pytest.mark.train,
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.enable_socket,
]


def test_train_eval_publish_serve(
    tmp_path: Path,
    tiny_model_dir: Path,
    hub_server: HubServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_records(tmp_path / "prefs.jsonl", toy_records(users=USERS))
    out = tmp_path / "out"
    config = tiny_run_config(
        tmp_path / "run.yaml",
        tiny_model_dir,
        data,
        out,
        max_steps=1,
        holdout_users=1,
        holdout_question_fraction=0.34,
        beta=0.1,
    )
    assert main(["train", "--config", str(config), "--style", "chat"]) == 0

    code = main(
        [
            "eval",
            str(out),
            "--judge",
            "tests.train.eval.test_evaluate:length_judge",
            "--methods",
            "fspo,base,few_shot,pref_ft,oracle",
            "--max-new-tokens",
            "4",
            "--max-items",
            "2",
        ]
    )
    assert code == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results["splits"]) == {"trained", "held_out"}  # from the run's splits/
    assert results["reference"] == str(out / "stage1")  # stage 1 is the IPO reference
    assert set(results["win_rate"]) == {"fspo", "few_shot", "pref_ft", "oracle"}
    assert (out / "eval_plot.png").is_file()
    assert results["beta"] == 0.1  # the run's β, read from fspo_train_config.yaml

    code = main(["publish", str(out), "--repo-id", "org/e2e", "--token", "hf_x"])
    assert code == 0
    uploaded = set(hub_server.files("org/e2e"))
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "fspo_format.json",
        "README.md",
        "eval_results.json",
        "eval_plot.png",
        "stage1/adapter_model.safetensors",
    } <= uploaded
    assert not [p for p in uploaded if p.startswith(("splits/", "checkpoints/"))]
    assert not [p for p in uploaded if p.endswith(".jsonl")]
    card = hub_server.files("org/e2e")["README.md"].decode()
    assert "## Evaluation" in card
    assert f"base_model: {tiny_model_dir.resolve()}" in card or str(tiny_model_dir) in card

    memory = PreferenceMemory()
    memory.add("ada", prompt="Why does the fox jump?", chosen="It is quick.", rejected="No.")
    chat = ChatFSPO.from_pretrained("org/e2e", backend="local", memory=memory, max_tokens=6)
    reply = chat.invoke("Why is the dog lazy?", user_id="ada")
    assert isinstance(reply.content, str)
    assert chat.prompt_format == PromptFormat.from_pretrained(out)
