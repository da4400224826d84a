"""Publish a real tiny PEFT adapter to the Hub test double and serve it back with ChatFSPO.

The round trip a user does: train -> `fspo publish` -> `ChatFSPO.from_pretrained(repo)`; here
the Hub is `tests.hub_server.HubServer` on 127.0.0.1 and the model the offline tiny Llama.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub import snapshot_download

from fspo_train.publish.hub import publish_adapter
from langchain_fspo import ChatFSPO, PreferenceMemory
from langchain_fspo.prompt_format import PromptFormat
from tests.hub_server import HubServer

pytestmark = [pytest.mark.train, pytest.mark.integration, pytest.mark.enable_socket]

TOKEN = "hf_test"


@pytest.fixture
def published(hub_server: HubServer, tiny_adapter_dirs: dict[str, Path], tmp_path: Path) -> str:
    folder = Path(shutil.copytree(tiny_adapter_dirs["alpha"], tmp_path / "alpha"))
    publish_adapter(folder, "org/tiny-fspo", token=TOKEN)
    return "org/tiny-fspo"


def _memory() -> PreferenceMemory:
    memory = PreferenceMemory()
    memory.add("ada", prompt="Review Dune.", chosen="Epic!", rejected="Too long.")
    memory.add("ada", prompt="Review Heat.", chosen="Tense!", rejected="Meh.")
    return memory


def test_published_repo_holds_a_loadable_peft_adapter(
    published: str, hub_server: HubServer, tiny_model_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    files = hub_server.files(published)
    assert {"adapter_config.json", "adapter_model.safetensors", "fspo_format.json"} <= set(files)
    folder = Path(snapshot_download(published))

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    ids = torch.tensor([[1, 20, 30, 40]])
    with torch.no_grad():
        before = base(ids).logits
        model = PeftModel.from_pretrained(base, str(folder))
        after = model(ids).logits
    assert not torch.allclose(before, after), "the downloaded adapter changes nothing"
    assert PromptFormat.from_pretrained(folder) == PromptFormat.from_pretrained(published)


def test_chat_fspo_from_the_published_repo_answers(published: str) -> None:
    chat = ChatFSPO.from_pretrained(published, backend="local", memory=_memory(), max_tokens=8)

    reply = chat.invoke("Review Alien.", user_id="ada")

    assert isinstance(reply.content, str)
    assert reply.response_metadata["model_name"] == published
    assert len(reply.response_metadata["example_ids"]) == 2


def test_chat_fspo_from_a_downloaded_folder_answers(published: str) -> None:
    folder = Path(snapshot_download(published))
    chat = ChatFSPO.from_pretrained(folder, backend="local", memory=_memory(), max_tokens=8)
    reply = chat.invoke("Review Alien.", user_id="ada")
    assert isinstance(reply.content, str)
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] > 0


def test_chat_fspo_from_a_private_repo_with_a_token(
    hub_server: HubServer, tiny_adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(tiny_adapter_dirs["alpha"], tmp_path / "alpha"))
    publish_adapter(folder, "org/private-fspo", private=True, token=TOKEN)
    chat = ChatFSPO.from_pretrained(
        "org/private-fspo", backend="local", memory=_memory(), token=TOKEN, max_tokens=4
    )
    assert isinstance(chat.invoke("Review Alien.", user_id="ada").content, str)


def test_model_card_langchain_snippet_runs_against_a_tgi_server(
    hub_server: HubServer,
    tiny_model_dir: Path,
    tiny_adapter_dirs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """The model card's LangChain example runs as written (only the URL swapped).

    It talks to the TGI test server, which serves the published adapter under its repo id.
    """
    from langchain_fspo.backends.local import LocalBackend
    from tests.tgi_server.server import TGITestServer

    repo = "org/card-test"
    folder = Path(shutil.copytree(tiny_adapter_dirs["alpha"], tmp_path / "alpha"))
    publish_adapter(folder, repo, token=TOKEN)
    card = hub_server.files(repo)["README.md"].decode()
    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]
    engine = LocalBackend(tiny_model_dir, adapters={repo: str(folder)}, default_max_tokens=4)
    with TGITestServer(engine, model_id=str(tiny_model_dir), adapters=[repo]) as tgi:
        namespace: dict[str, object] = {}
        exec(snippet.replace("http://localhost:8080", tgi.url), namespace)

        assert [r.served_adapter for r in tgi.requests if r.served_adapter] == [repo]
        chat = namespace["chat"]
        assert isinstance(chat, ChatFSPO)
        assert chat.prompt_format == PromptFormat.from_pretrained(folder)
