"""Tool calls in TGI's wire format, through `TGIBackend` and `ChatFSPO.bind_tools`.

TGI compiles `tools` into a grammar, so a forced tool choice always comes back as a tool call.
The tiny model cannot write one, so the test server sends the call TGI's grammar would force
(`tool_call_next`), in TGI's shapes (arguments as an object; streamed as JSON text pieces),
checked against TGI's OpenAPI spec like every other response.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.backends.tgi import TGIBackend
from langchain_fspo.chat_models import ChatFSPO
from langchain_fspo.prompt_format import PromptFormat
from tests.tgi_server import TGITestServer
from tests.tgi_server.fixtures import ADAPTERS

pytestmark = pytest.mark.integration

ARGS = {"film": "Dune", "stars": 4}
TOOLS = [{"type": "function", "function": {"name": "rate", "parameters": {"type": "object"}}}]


@tool
def rate(film: str, stars: int) -> str:
    """Rate a film from 1 to 5 stars."""
    return f"{film}: {stars}"


def _prompt():
    return PromptFormat(style="chat").render([], "Rate Dune.")


def test_backend_parses_tgi_tool_calls(tgi: TGITestServer) -> None:
    backend = TGIBackend(tgi.url, adapters=list(ADAPTERS))
    params = GenerationParams(max_tokens=2, extra={"tools": TOOLS, "tool_choice": "required"})
    tgi.tool_call_next("rate", ARGS)
    result = backend.generate(_prompt(), adapter="fspo-alice", params=params)
    assert result.finish_reason == "tool_calls"
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [("rate", ARGS)]
    assert result.tool_calls[0]["id"].startswith("call_")
    tgi.tool_call_next("rate", ARGS)
    chunks = list(backend.stream(_prompt(), adapter="fspo-alice", params=params))
    pieces = [c for chunk in chunks for c in chunk.tool_call_chunks]
    assert pieces[0]["name"] == "rate"
    assert "".join(p["args"] for p in pieces) == '{"film": "Dune", "stars": 4}'
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].output_tokens == 2
    assert all(r.body["tools"] == TOOLS for r in tgi.requests)


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("any", "required"),
        (True, "required"),
        ("auto", "auto"),
        ("rate", {"type": "function", "function": {"name": "rate"}}),
    ],
)
def test_bind_tools_sends_openai_tools_and_returns_tool_calls(
    tgi: TGITestServer, choice: object, wire: object
) -> None:
    llm = ChatFSPO(
        model="fspo-bob", base_url=tgi.url, prompt_format=PromptFormat(style="chat"), max_tokens=2
    )
    tgi.tool_call_next("rate", ARGS)
    message = llm.bind_tools([rate], tool_choice=choice).invoke("Rate Dune.")
    (request,) = tgi.requests
    assert request.body["tool_choice"] == wire
    (sent,) = request.body["tools"]
    assert sent["function"]["name"] == "rate"
    assert set(sent["function"]["parameters"]["properties"]) == {"film", "stars"}
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("rate", ARGS)]
    assert message.response_metadata["model_name"] == "fspo-bob"


async def test_streamed_tool_call_aggregates(tgi: TGITestServer) -> None:
    llm = ChatFSPO(
        model="fspo-bob", base_url=tgi.url, prompt_format=PromptFormat(style="chat"), max_tokens=2
    )
    tgi.tool_call_next("rate", ARGS)
    total: AIMessageChunk | None = None
    async for chunk in llm.bind_tools([rate], tool_choice="rate").astream("Rate Dune."):
        total = chunk if total is None else total + chunk  # type: ignore[assignment]
    assert total is not None
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [("rate", ARGS)]
    assert total.response_metadata["finish_reason"] == "tool_calls"
