"""The train/serve contract on a real engine: `fspo train` adapters served by vLLM.

`ChatFSPO` over vLLM and `ChatFSPO` in-process must give the same greedy *token ids* for the
same adapter, user and shots (text is not compared: the two decode a trailing partial UTF-8
byte differently), and vLLM must see the same prompt token ids the in-process backend builds.
Also here: the prefix cache reusing a user's block of examples, and adapters loaded into the
running server.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fspo_train.testing import build_tiny_adapter
from fspo_train.testing.vllm import MAX_LORA_RANK, VLLMServer
from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.backends.local import LocalBackend
from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.errors import AdapterLoadError, AdapterNotFoundError
from langchain_fspo.memory import PreferenceMemory

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

QUERY = "Which film should I watch tonight?"


def _memory() -> PreferenceMemory:
    memory = PreferenceMemory()
    for i in range(4):
        memory.add(
            "ada",
            prompt=f"Recommend film number {i} for a rainy evening at home.",
            chosen=f"Film {i}: a quiet, clever story with a short running time.",
            rejected=f"Film {i}: a loud sequel of a sequel.",
        )
    return memory


@pytest.fixture(scope="module")
def local_backend(vllm_server: VLLMServer) -> LocalBackend:
    """The in-process backend over the same base model and trained adapters."""
    adapters = {
        name: str(path) for name, path in vllm_server.adapter_dirs.items() if "trained" in name
    }
    return LocalBackend(vllm_server.base_dir, adapters=adapters, dtype="float32")


@pytest.mark.parametrize("style", ["chat", "paper"])
def test_trained_adapter_gives_the_same_token_ids_on_vllm_and_in_process(
    vllm_server: VLLMServer, local_backend: LocalBackend, style: str
) -> None:
    adapter = f"trained-{style}"
    folder = vllm_server.adapter_dirs[adapter]
    memory = _memory()
    common = {"memory": memory, "user_id": "ada", "temperature": 0, "max_tokens": 24}
    served = ChatFSPO.from_pretrained(
        folder,
        backend="openai",
        base_url=vllm_server.base_url,
        adapter_name=adapter,
        model_kwargs={"return_token_ids": True},  # vLLM: the answer carries its token ids
        **common,
    )
    local = ChatFSPO.from_pretrained(folder, backend=local_backend, adapter_name=adapter, **common)
    assert served.prompt_format.style == style
    remote, here = served.invoke(QUERY), local.invoke(QUERY)
    assert remote.response_metadata["example_ids"] == here.response_metadata["example_ids"]
    assert remote.response_metadata["num_shots"] == 2
    assert here.response_metadata["token_ids"]
    assert remote.response_metadata["token_ids"] == here.response_metadata["token_ids"]
    # The prompt vLLM tokenised is the one the in-process backend builds from the same render.
    prompt = served.build_prompt(QUERY)
    params = GenerationParams(max_tokens=1, extra={"return_token_ids": True})
    body = served.backend.request_body(prompt, adapter, params, stream=False)
    route = "chat/completions" if style == "chat" else "completions"
    answer = httpx.post(f"{vllm_server.base_url}/{route}", json=body, timeout=120).json()
    # vLLM puts them on the chat response, and on each choice of a completion.
    where = answer if style == "chat" else answer["choices"][0]
    assert where["prompt_token_ids"] == local_backend.encode_prompt(prompt)


def test_prefix_cache_reuses_a_users_examples(vllm_server: VLLMServer) -> None:
    llm = ChatFSPO.from_pretrained(
        vllm_server.adapter_dirs["beta"],
        backend="openai",
        base_url=vllm_server.base_url,
        adapter_name="beta",
        memory=_memory(),
        user_id="ada",
        max_tokens=4,
    )
    first = llm.invoke("Recommend a book for a long flight over the ocean.")
    second = llm.invoke("Plan a quiet weekend.")
    assert first.usage_metadata is not None
    assert second.usage_metadata is not None
    assert first.usage_metadata["input_token_details"] == {"cache_read": 0}
    cached = second.usage_metadata["input_token_details"]["cache_read"]
    # vLLM caches whole blocks (128 tokens on CPU) of the shared prefix: the examples.
    assert cached >= 128
    assert cached % 128 == 0
    assert cached < second.usage_metadata["input_tokens"]
    streamed = list(llm.stream("Plan a quiet weekend."))[-1]
    assert streamed.usage_metadata is not None
    assert streamed.usage_metadata["input_token_details"]["cache_read"] >= cached


def test_adapters_load_into_the_running_server(vllm_server: VLLMServer, tmp_path: Path) -> None:
    backend = OpenAICompatibleBackend(vllm_server.base_url, max_retries=0)
    dirs = vllm_server.adapter_dirs
    llm = ChatFSPO.from_pretrained(
        dirs["alpha"],
        backend=backend,
        adapter_name="alpha",
        memory=_memory(),
        user_id="ada",
        temperature=0,
        max_tokens=12,
    )
    alpha, beta = llm.invoke(QUERY), llm.invoke(QUERY, model="beta")
    # A new version appears under a new name, then replaces it in place.
    backend.load_adapter("fspo-next", str(dirs["beta"]))
    backend.check_adapter("fspo-next")
    assert llm.invoke(QUERY, model="fspo-next").content == beta.content
    backend.load_adapter("fspo-next", str(dirs["alpha"]), replace=True)
    assert llm.invoke(QUERY, model="fspo-next").content == alpha.content
    with pytest.raises(AdapterLoadError, match="replace=True"):
        backend.load_adapter("fspo-next", str(dirs["beta"]))
    backend.unload_adapter("fspo-next")
    with pytest.raises(AdapterNotFoundError, match="fspo-next"):
        backend.check_adapter("fspo-next")
    with pytest.raises(AdapterNotFoundError, match="fspo-next"):
        llm.invoke(QUERY, model="fspo-next")
    with pytest.raises(AdapterNotFoundError, match="fspo-next"):
        backend.unload_adapter("fspo-next")
    with pytest.raises(AdapterNotFoundError, match="no-such-folder"):
        backend.load_adapter("ghost", str(tmp_path / "no-such-folder"))
    too_big = build_tiny_adapter(vllm_server.base_dir, tmp_path / "r32", r=2 * MAX_LORA_RANK)
    with pytest.raises(AdapterLoadError, match="max_lora_rank") as info:
        backend.load_adapter("too-big", str(too_big))
    assert info.value.status_code == 500
    assert "too-big" not in backend.served_models(refresh=True)
