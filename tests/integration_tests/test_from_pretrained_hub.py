"""`ChatFSPO.from_pretrained("org/adapter", base_url=..., backend="tgi")` from a Hub repo id.

The adapter repo lives in the Hub test double (`tests.hub_server.HubServer`, pointed at by
`HF_ENDPOINT` through the `hub_server` fixture); the answers come from the TGI test server
(`tests.tgi_server`), which runs the tiny Llama with the same LoRA adapter loaded under the
repo id, as TGI does with `LORA_ADAPTERS=org/adapter`. What is checked: the prompt format is
the repo's (at the requested revision), only the small JSON files are fetched from the Hub
(TGI holds the weights), the request reaches TGI with the repo id as adapter, and a repo
without `fspo_format.json` fails with a clear `AdapterNotFoundError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import AdapterNotFoundError
from langchain_fspo.memory import PreferenceMemory
from langchain_fspo.prompt_format import FORMAT_FILENAME, PromptFormat
from tests.hub_server import HubServer
from tests.tgi_server import TGITestServer

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

REPO = "org/fspo-reviews"
"""The adapter's Hub repo id, which is also its adapter id in TGI (`LORA_ADAPTERS`)."""
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", FORMAT_FILENAME)


@pytest.fixture(scope="module")
def tgi_with_repo(
    tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]
) -> Iterator[TGITestServer]:
    """TGI serving the tiny Llama with the `alpha` adapter loaded under the id `REPO`."""
    from langchain_fspo.backends.local import LocalBackend

    engine = LocalBackend(
        tiny_model_dir, adapters={REPO: str(tiny_adapter_dirs["alpha"])}, default_max_tokens=4
    )
    with TGITestServer(engine, model_id=str(tiny_model_dir), adapters=[REPO]) as server:
        yield server


@pytest.fixture
def tgi(tgi_with_repo: TGITestServer) -> Iterator[TGITestServer]:
    """The server with an empty request log; fails the test on any TGI spec violation."""
    tgi_with_repo.reset()
    yield tgi_with_repo
    violations = list(tgi_with_repo.spec_violations)
    tgi_with_repo.reset()
    assert not violations, f"TGI OpenAPI spec violations: {violations}"


@pytest.fixture
def published(hub_server: HubServer, tiny_adapter_dirs: dict[str, Path]) -> Path:
    """`REPO` on the Hub double: the alpha adapter's three files on `main`."""
    folder = tiny_adapter_dirs["alpha"]
    for name in ADAPTER_FILES:
        hub_server.add_file(REPO, name, (folder / name).read_bytes())
    return folder


@pytest.fixture
def memory() -> PreferenceMemory:
    memory = PreferenceMemory()
    for i in range(6):
        memory.add("ada", prompt=f"Review film {i}.", chosen=f"Loved {i}!", rejected=f"Meh {i}.")
    return memory


def _hub_downloads(hub: HubServer) -> list[str]:
    """The files of `REPO` fetched from the Hub double, as `<revision>/<filename>`."""
    prefix = f"/{REPO}/resolve/"
    return sorted(
        {
            r.path.split("?", 1)[0].removeprefix(prefix)
            for r in hub.requests
            if r.path.startswith(prefix)
        }
    )


def _from_hub(tgi: TGITestServer, memory: PreferenceMemory, **kwargs: object) -> ChatFSPO:
    return ChatFSPO.from_pretrained(
        REPO,
        base_url=tgi.url,
        backend="tgi",
        memory=memory,
        adapters=[REPO],
        max_tokens=4,
        temperature=0,
        **kwargs,
    )


def test_repo_id_answers_through_tgi_with_the_repo_as_adapter(
    published: Path, hub_server: HubServer, tgi: TGITestServer, memory: PreferenceMemory
) -> None:
    chat = _from_hub(tgi, memory)

    reply = chat.invoke("Review Alien.", user_id="ada")

    assert chat.model_name == REPO
    assert chat.prompt_format == PromptFormat.from_pretrained(published)
    assert chat.prompt_format.num_shots == 4
    # Only the JSON files came from the Hub: the weights are TGI's business.
    assert _hub_downloads(hub_server) == [
        "main/adapter_config.json",
        f"main/{FORMAT_FILENAME}",
    ]
    [request] = tgi.requests_to("/v1/chat/completions")
    assert request.status == 200
    assert request.body["model"] == REPO
    assert request.served_adapter == REPO
    sent = "\n".join(m["content"] for m in request.body["messages"])
    assert "Review Alien." in sent
    assert sum(f"Loved {i}!" in sent for i in range(6)) == 4  # K=4 of ada's 6 examples
    assert isinstance(reply.content, str)
    assert reply.content
    assert reply.response_metadata["model_name"] == REPO
    assert len(reply.response_metadata["example_ids"]) == 4


async def test_repo_id_answers_async(
    published: Path, tgi: TGITestServer, memory: PreferenceMemory
) -> None:
    chat = _from_hub(tgi, memory)

    reply = await chat.ainvoke("Review Alien.", user_id="ada")

    [request] = tgi.requests_to("/v1/chat/completions")
    assert request.served_adapter == REPO
    assert reply.response_metadata["model_name"] == REPO
    sync_reply = chat.invoke("Review Alien.", user_id="ada")
    assert reply.content == sync_reply.content  # greedy: the same adapter, the same answer


def test_revision_selects_the_format_of_that_revision(
    published: Path,
    hub_server: HubServer,
    tgi: TGITestServer,
    memory: PreferenceMemory,
    tmp_path: Path,
) -> None:
    main_format = PromptFormat.from_pretrained(published)
    v2_format = main_format.model_copy(update={"num_shots": 2})
    v2_file = v2_format.save_pretrained(tmp_path / "v2")
    v2_oid = hub_server.add_file(REPO, FORMAT_FILENAME, v2_file.read_bytes(), revision="v2")

    on_commit = _from_hub(tgi, memory, revision=v2_oid)  # first: not yet in the cache
    on_v2 = _from_hub(tgi, memory, revision="v2")
    on_main = _from_hub(tgi, memory)

    assert on_v2.prompt_format == v2_format
    assert on_commit.prompt_format == v2_format
    assert on_main.prompt_format == main_format
    downloads = _hub_downloads(hub_server)
    assert f"v2/{FORMAT_FILENAME}" in downloads
    assert "v2/adapter_config.json" in downloads
    assert f"{v2_oid}/{FORMAT_FILENAME}" in downloads

    shots = {
        name: len(chat.invoke("Review Alien.", user_id="ada").response_metadata["example_ids"])
        for name, chat in {"v2": on_v2, "commit": on_commit, "main": on_main}.items()
    }
    assert shots == {"v2": 2, "commit": 2, "main": 4}
    requests = tgi.requests_to("/v1/chat/completions")
    assert [r.served_adapter for r in requests] == [REPO] * 3
    texts = ["\n".join(m["content"] for m in r.body["messages"]) for r in requests]
    assert [sum(f"Loved {i}!" in t for i in range(6)) for t in texts] == [2, 2, 4]


def test_repo_without_fspo_format_fails_clearly(
    hub_server: HubServer,
    tgi: TGITestServer,
    memory: PreferenceMemory,
    tiny_adapter_dirs: dict[str, Path],
) -> None:
    repo = "org/plain-lora"
    folder = tiny_adapter_dirs["alpha"]
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        hub_server.add_file(repo, name, (folder / name).read_bytes())

    with pytest.raises(AdapterNotFoundError) as caught:
        ChatFSPO.from_pretrained(repo, base_url=tgi.url, backend="tgi", memory=memory)

    message = str(caught.value)
    assert FORMAT_FILENAME in message
    assert repo in message
    assert "fspo publish" in message  # says how to fix it
    assert tgi.requests == []  # failed before any call to the server


def test_unknown_revision_fails_clearly(
    published: Path, tgi: TGITestServer, memory: PreferenceMemory
) -> None:
    with pytest.raises(AdapterNotFoundError) as caught:
        _from_hub(tgi, memory, revision="no-such-branch")

    message = str(caught.value)
    assert REPO in message
    assert "no-such-branch" in message
    assert tgi.requests == []
