"""The one OpenAI wire parser (`_openai_wire`) and TGI's own shapes (`_tgi_wire`).

Payloads are the JSON shapes OpenAI, vLLM and TGI send, as the backends decode them.
"""

from __future__ import annotations

import doctest
import importlib
import json
from typing import Any

import pytest

from langchain_fspo.backends._http import MalformedResponseError, StreamInterruptedError
from langchain_fspo.backends._openai_wire import CompletionStream, parse_completion
from langchain_fspo.backends._tgi_wire import GenerateStream, parse_text_generation
from langchain_fspo.errors import InferenceServerError

ARGS = {"film": "Dune", "stars": 4}


def _chat_body(arguments: Any, **extra: Any) -> dict[str, Any]:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "rate", "arguments": arguments},
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {
        "model": "served",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        **extra,
    }


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "model": "served",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


@pytest.mark.parametrize(
    "name", ["langchain_fspo.backends._openai_wire", "langchain_fspo.backends._tgi_wire"]
)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("arguments", [json.dumps(ARGS), ARGS])
def test_tool_call_arguments_as_json_text_or_object(arguments: Any) -> None:
    result = parse_completion(_chat_body(arguments), "fspo-a", chat=True, naming="adapter")
    assert result.tool_calls == [{"id": "call_1", "name": "rate", "args": ARGS}]
    assert result.finish_reason == "tool_calls"
    assert (result.text, result.input_tokens, result.output_tokens) == ("", 5, 2)


def test_arguments_that_are_not_json_are_malformed() -> None:
    with pytest.raises(MalformedResponseError, match="not JSON"):
        parse_completion(_chat_body("{oops"), None, chat=True, naming="adapter")


def test_the_naming_policy_picks_the_model_name() -> None:
    body = _chat_body("{}")
    assert parse_completion(body, "fspo-a", chat=True, naming="adapter").model_name == "fspo-a"
    assert parse_completion(body, "fspo-a", chat=True, naming="server").model_name == "served"
    assert parse_completion(body, None, chat=True, naming="adapter").model_name == "served"
    anonymous = {**body, "model": None}
    assert parse_completion(anonymous, "a", chat=True, naming="server").model_name == "a"


def test_text_completions_and_tgi_finish_reasons() -> None:
    body = {"choices": [{"text": "Hello", "finish_reason": "eos_token"}]}
    result = parse_completion(body, None, chat=False, naming="adapter")
    assert (result.text, result.finish_reason, result.input_tokens) == ("Hello", "stop", None)


@pytest.mark.parametrize("body", [[], {"choices": []}, {"choices": [{"message": None}]}])
def test_bodies_without_a_completion_are_malformed(body: Any) -> None:
    with pytest.raises(MalformedResponseError):
        parse_completion(body, None, chat=True, naming="adapter")


def test_a_stream_yields_text_and_tool_pieces_then_the_final_chunk() -> None:
    stream = CompletionStream("fspo-a", chat=True, naming="adapter")
    pieces = [
        *stream.feed(_chunk({"content": "Hel"})),
        *stream.feed(_chunk({"content": "lo"})),
        *stream.feed(
            _chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "c", "function": {"name": "rate", "arguments": ARGS}}
                    ]
                },
                finish="tool_calls",
            )
        ),
        *stream.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
    ]
    assert [p.text for p in pieces] == ["Hel", "lo", ""]
    assert pieces[2].tool_call_chunks == [
        {"index": 0, "id": "c", "name": "rate", "args": json.dumps(ARGS)}
    ]
    stream.done = True
    final = stream.final()
    assert (final.finish_reason, final.input_tokens, final.output_tokens) == ("tool_calls", 3, 4)
    assert final.model_name == "fspo-a"


def test_a_stream_is_complete_when_it_said_how_it_finished() -> None:
    unfinished = CompletionStream(None, chat=False, naming="adapter")
    unfinished.feed({"choices": [{"text": "Hi", "finish_reason": None}]})
    with pytest.raises(StreamInterruptedError, match=r"no finish_reason; without data: \[DONE\]"):
        unfinished.final()
    unfinished.done = True
    with pytest.raises(StreamInterruptedError, match=r"no finish_reason; after data: \[DONE\]"):
        unfinished.final()
    finished = CompletionStream(None, chat=False, naming="adapter")
    finished.feed({"choices": [{"text": "Hi", "finish_reason": "stop"}]})
    assert finished.done is False  # no `data: [DONE]`: not required after a finish_reason
    assert finished.final().finish_reason == "stop"


def test_an_answer_without_a_finish_reason_is_not_complete() -> None:
    body = {"choices": [{"text": "Half an ans", "finish_reason": None}], "model": "m"}
    with pytest.raises(MalformedResponseError, match="without a finish_reason"):
        parse_completion(body, None, chat=False, naming="adapter")
    body["choices"][0]["finish_reason"] = "length"
    assert parse_completion(body, None, chat=False, naming="adapter").finish_reason == "length"


def test_an_error_event_mid_stream_is_not_retried() -> None:
    stream = CompletionStream("fspo-a", chat=True, naming="adapter")
    with pytest.raises(InferenceServerError, match="overloaded") as info:
        stream.feed({"error": {"message": "overloaded"}})
    assert info.value.retryable is False
    assert info.value.adapter == "fspo-a"


def test_tgi_chat_answer_names_the_served_model() -> None:
    data = _chat_body(ARGS, system_fingerprint="x")
    result = parse_completion(data, None, chat=True, naming="server")
    assert result.tool_calls[0]["args"] == ARGS
    assert result.model_name == "served"


def test_tgi_chat_stream_events_parse() -> None:
    stream = CompletionStream(None, chat=True, naming="server")
    event = _chunk({"role": "assistant", "content": "Hi"}, finish="eos_token", created=1, id="x")
    assert [c.text for c in stream.feed(event)] == ["Hi"]
    stream.done = True
    assert stream.final().finish_reason == "stop"


def test_tgi_generate_route_answers_and_stream_events() -> None:
    answer = {
        "generated_text": "Hi",
        "details": {"finish_reason": "length", "generated_tokens": 2, "prefill": []},
    }
    result = parse_text_generation(answer, "fspo-a")
    assert (result.text, result.finish_reason, result.output_tokens) == ("Hi", "length", 2)
    assert result.input_tokens is None

    stream = GenerateStream("fspo-a")
    token = {"id": 1, "text": "Hi", "logprob": 0.0, "special": False}
    eos = {"id": 2, "text": "</s>", "logprob": 0.0, "special": True}
    details = {"finish_reason": "eos_token", "generated_tokens": 2, "input_length": 7}
    events = [{"index": 1, "token": token}, {"index": 2, "token": eos, "details": details}]
    assert [c.text for e in events for c in stream.feed(e)] == ["Hi"]
    final = stream.final()
    assert (final.finish_reason, final.input_tokens, final.output_tokens) == ("stop", 7, 2)
    with pytest.raises(MalformedResponseError):
        GenerateStream(None).feed({"index": 1})
    with pytest.raises(InferenceServerError, match="overloaded"):
        GenerateStream(None).feed({"error": "overloaded", "error_type": "overloaded"})
    assert parse_text_generation([answer], None).text == "Hi"


def test_vllm_token_ids_and_cached_prompt_tokens_are_read() -> None:
    usage = {
        "prompt_tokens": 300,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 256},
    }
    body = {
        "model": "fspo",
        "choices": [{"index": 0, "text": "Hi", "token_ids": [13, 7], "finish_reason": "length"}],
        "usage": usage,
    }
    generation = parse_completion(body, "fspo", chat=False, naming="adapter")
    assert (generation.token_ids, generation.cached_tokens) == ([13, 7], 256)
    plain = parse_completion(_chat_body("{}"), "fspo", chat=True, naming="adapter")
    assert (plain.token_ids, plain.cached_tokens) == (None, None)
    stream = CompletionStream("fspo", chat=True, naming="adapter")
    stream.feed(_chunk({"content": "Hi"}, "length"))
    stream.feed({"model": "fspo", "choices": [], "usage": usage})
    stream.done = True
    assert stream.final().cached_tokens == 256
