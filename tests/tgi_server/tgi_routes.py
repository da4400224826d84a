"""The TGI test server's native routes.

`/health`, `/info`, `/tokenize`, `/generate`, `/generate_stream` and the compat `/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from langchain_fspo.backends.base import GenerationParams
from langchain_fspo.prompt_format import RenderedPrompt
from tests.tgi_server.engine import DEFAULT_MAX_TOKENS, Engine
from tests.tgi_server.faults import Fault
from tests.tgi_server.wire import LoggedRequest


class TGIRoutes(Engine):
    """TGI's own routes (see the module docstring)."""

    model_id: str
    adapters: set[str]

    def _health(
        self, handler: BaseHTTPRequestHandler, entry: LoggedRequest, body: Any, fault: Fault | None
    ) -> None:
        entry.status = 200
        handler.send_response(200)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _info(
        self, handler: BaseHTTPRequestHandler, entry: LoggedRequest, body: Any, fault: Fault | None
    ) -> None:
        info = {
            "model_id": self.model_id,
            "model_sha": None,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": 128,
            "max_best_of": 2,
            "max_stop_sequences": 4,
            "max_input_tokens": self.max_input_tokens,
            "max_total_tokens": self.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": 4,
            "router": "text-generation-router",
            "version": "3.3.7",
            "sha": None,
            "docker_label": None,
        }
        self._send_json(handler, entry, 200, info, schema="Info", fault=fault)

    def _tokenize(
        self,
        handler: BaseHTTPRequestHandler,
        entry: LoggedRequest,
        body: dict[str, Any],
        fault: Fault | None,
    ) -> None:
        tokenizer = getattr(self.backend, "tokenizer", None)
        if tokenizer is None:
            self._send_error(handler, entry, 404, "No fast tokenizer available", "tokenizer")
            return
        text = body["inputs"]
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        tokens = [
            {"id": int(token_id), "text": text[start:stop], "start": start, "stop": stop}
            for token_id, (start, stop) in zip(
                encoded["input_ids"], encoded["offset_mapping"], strict=True
            )
        ]
        self._send_json(handler, entry, 200, tokens, schema="TokenizeResponse", fault=fault)

    # ------------------------------------------------------------------ /generate

    def _generate(
        self,
        handler: BaseHTTPRequestHandler,
        entry: LoggedRequest,
        body: dict[str, Any],
        fault: Fault | None,
    ) -> None:
        params_in: dict[str, Any] = body.get("parameters") or {}
        requested = params_in.get("adapter_id")
        adapter = requested if requested in self.adapters else None
        entry.served_adapter = adapter
        temperature = params_in.get("temperature")
        if not params_in.get("do_sample") and temperature is None:
            temperature = 0.0
        elif temperature is None:
            temperature = 1.0
        params = GenerationParams(
            temperature=temperature,
            max_tokens=params_in.get("max_new_tokens") or DEFAULT_MAX_TOKENS,
            top_p=params_in.get("top_p"),
            top_k=params_in.get("top_k"),
            seed=params_in.get("seed"),
            stop=params_in.get("stop") or None,
            frequency_penalty=params_in.get("frequency_penalty"),
            repetition_penalty=params_in.get("repetition_penalty"),
        )
        prompt = RenderedPrompt(
            text=body["inputs"],
            messages=[{"role": "user", "content": body["inputs"]}],
            shots=[],
            style="paper",
        )
        if self._too_long(handler, entry, prompt):
            return
        stream = entry.path == "/generate_stream" or (entry.path == "/" and body.get("stream"))
        if not stream:
            outcome = self._run_all(prompt, adapter, params)
            text = "".join(outcome.pieces)
            response: dict[str, Any] = {"generated_text": text}
            if params_in.get("details"):
                response["details"] = {
                    "finish_reason": _tgi_finish(outcome.finish_reason),
                    "generated_tokens": outcome.output_tokens,
                    "seed": params.seed,
                    "prefill": [],
                    "tokens": [_token(i, p) for i, p in enumerate(outcome.pieces) if p],
                }
            self._send_json(handler, entry, 200, response, schema="GenerateResponse", fault=fault)
            return

        def events() -> Iterator[dict[str, Any]]:
            produced = ""
            for index, (piece, outcome) in enumerate(self._run(prompt, adapter, params)):
                produced += piece
                event: dict[str, Any] = {
                    "index": index,
                    "token": _token(index, piece),
                    "generated_text": None,
                    "details": None,
                    "top_tokens": [],
                }
                if outcome is not None:
                    event["generated_text"] = produced
                    event["details"] = {
                        "finish_reason": _tgi_finish(outcome.finish_reason),
                        "generated_tokens": outcome.output_tokens,
                        "input_length": outcome.input_tokens,
                        "seed": params.seed,
                    }
                yield event

        self._send_sse(handler, entry, events(), schema="StreamResponse", done=False, fault=fault)


def _token(index: int, text: str) -> dict[str, Any]:
    return {"id": index, "text": text, "logprob": None, "special": False}


def _tgi_finish(reason: str) -> str:
    return {"length": "length", "stop": "eos_token", "stop_sequence": "stop_sequence"}.get(
        reason, "eos_token"
    )
