"""`OpenAICompatibleBackend`: FSPO adapters on vLLM or SGLang (OpenAI-compatible API, httpx).

The launch lines (vLLM's as the integration tests run it, SGLang's) are in docs/serving.md.
Both engines keep automatic prefix caching on with LoRA, which FSPO's long, stable per-user
prefix of examples benefits from; vLLM reports the cached prompt tokens, and loads adapters
at run time (`load_adapter`, `runtime_lora`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import SecretStr

from langchain_fspo.backends._event_stream import achunks, chunks
from langchain_fspo.backends._http import (
    CallContext,
    resolve_api_key,
    safe_url,
)
from langchain_fspo.backends._openai_models import Flavor, ServedModels
from langchain_fspo.backends._openai_wire import CompletionStream, parse_completion
from langchain_fspo.backends._retry import (
    acall_with_retries,
    astream_with_retries,
    call_with_retries,
    stream_with_retries,
)
from langchain_fspo.backends._server import ServerBackend
from langchain_fspo.backends.base import Generation, GenerationChunk, GenerationParams
from langchain_fspo.backends.runtime_lora import (
    missing_adapter_is_typed,
)

if TYPE_CHECKING:
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["OpenAICompatibleBackend"]


class OpenAICompatibleBackend(ServedModels, ServerBackend):
    """Sends FSPO prompts to an OpenAI-compatible server (vLLM, SGLang), adapter per call.

    `style="chat"` prompts go to `/v1/chat/completions`, `style="paper"` prompts as raw text
    to `/v1/completions`. The adapter travels in `model`: its name on vLLM
    (`--lora-modules name=path`), `"<base>:<adapter>"` on SGLang (`--lora-paths`). With
    `adapter=None` the base model (`model`, or the first model the server lists) answers.

    Every `GenerationParams` field is sent by its OpenAI name (`top_k` and
    `repetition_penalty` are vLLM/SGLang extensions both servers accept); `extra` is merged
    into the JSON body as is (`tools`, `tool_choice`, `response_format`, ...). Streams ask for
    usage (`stream_options.include_usage`). An answer or stream is complete when it carries a
    `finish_reason` (`data: [DONE]` is not required after one); one without, or a stream cut
    off mid-way, raises `InferenceServerError`. `timeout` bounds each attempt whole; timeouts,
    connection errors, 429 and 5xx are retried with exponential backoff (docs/serving.md,
    "Failures"); other errors raise at once.

    Example:
        ```python
        from langchain_fspo.backends.openai_compat import OpenAICompatibleBackend

        vllm = OpenAICompatibleBackend("http://localhost:8000/v1")
        vllm.check_adapter("fspo-reviews")  # asks /v1/models; raises if not served
        sglang = OpenAICompatibleBackend(
            "http://localhost:30000", flavor="sglang", model="meta-llama/Llama-3.2-1B-Instruct"
        )
        ```
    """

    name: ClassVar[str] = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        flavor: Flavor = "vllm",
        adapters: Iterable[str] | None = None,
        api_key: str | SecretStr | None = None,
        timeout: float | None = 120.0,
        stream_timeout: float | None = None,
        max_retries: int = 2,
        backoff_factor: float = 0.5,
        backoff_max: float = 8.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Configure the backend; no request is made until the first call.

        Args:
            base_url: The server, e.g. `http://localhost:8000` (a trailing `/v1` is fine).
            model: The served base model name; default: asked from `/v1/models` once.
            flavor: `vllm` (adapter name in `model`) or `sglang` (`"<base>:<adapter>"`).
            adapters: Allow-list of adapter names; default: whatever `/v1/models` lists.
            api_key: Bearer token (vLLM `--api-key`); default: env `OPENAI_API_KEY`.
            timeout: Seconds one attempt may take, whole: connecting, the headers and the
                body; for a stream, opening it and each gap between two chunks. None: no
                limit.
            stream_timeout: Seconds a whole stream may take (None: no total limit).
            max_retries: Retries of a call that failed transiently.
            backoff_factor: Seconds before the first retry, doubled on each retry.
            backoff_max: The longest wait between two attempts.
            headers: Extra HTTP headers for every request.
        """
        if flavor not in {"vllm", "sglang"}:
            msg = f"`flavor` must be 'vllm' or 'sglang', got {flavor!r}."
            raise ValueError(msg)
        self._connect(
            base_url,
            resolve_api_key(api_key, "OPENAI_API_KEY"),
            headers,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            timeout=timeout,
            stream_timeout=stream_timeout,
        )
        self.model = model
        self.flavor: Flavor = flavor
        self.adapters: list[str] | None = list(adapters) if adapters is not None else None
        self._served: list[str] | None = None

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleBackend(base_url={safe_url(self.base_url)!r}, "
            f"flavor={self.flavor!r}, "
            f"model={self.model!r}, api_key={'**********' if self.api_key else None}, "
            f"timeout={self.timeout}, max_retries={self.retry.max_retries})"
        )

    # ------------------------------------------------------------------ HTTP

    def _request_headers(self) -> dict[str, str]:
        return dict(self._http.headers)

    def _client(self) -> httpx.Client:
        return self._http.client(self.timeout)

    def _context(self, adapter: str | None, route: str) -> CallContext:
        return CallContext(backend=self.flavor, url=self.base_url, adapter=adapter, route=route)

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        if response.status_code >= 400:  # noqa: PLR2004 - HTTP error range
            response.read()
            response.raise_for_status()

    # ------------------------------------------------------------------ requests

    def request_body(
        self, prompt: RenderedPrompt, adapter: str | None, params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        """The JSON body for one call (chat or completions, by the prompt's style)."""
        body: dict[str, Any] = {"model": self.model_for(adapter)}
        if prompt.style == "chat":
            body["messages"] = list(prompt.messages)
        else:
            body["prompt"] = [prompt.text]
        body.update(params.set_fields())
        if prompt.style == "paper" and self.flavor == "vllm":
            # The paper layout is trained without BOS; /v1/completions adds one by default.
            body["add_special_tokens"] = False
        body.update(params.extra)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def _route(prompt: RenderedPrompt) -> str:
        return "/v1/chat/completions" if prompt.style == "chat" else "/v1/completions"

    def _prepare(self, adapter: str | None) -> None:
        if self.adapters is not None:
            self.check_adapter(adapter)

    @staticmethod
    def _parse(payload: Any, adapter: str | None, *, chat: bool) -> Generation:
        return parse_completion(payload, adapter, chat=chat, naming="adapter")

    # ------------------------------------------------------------------ Backend API

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Complete `prompt` with `adapter` (None: the base model)."""
        self._prepare(adapter)
        route = self._route(prompt)
        body = self.request_body(prompt, adapter, params, stream=False)
        chat = prompt.style == "chat"

        def call() -> Generation:
            return self._parse(self._http.post_json(route, body, self.timeout), adapter, chat=chat)

        with missing_adapter_is_typed(adapter, self.base_url):
            return call_with_retries(call, self._context(adapter, route), self.retry)

    def stream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Iterator[GenerationChunk]:
        """Stream the completion; the last chunk carries `finish_reason` and usage.

        The text of the events that arrive together (one network read) comes as one chunk.
        """
        self._prepare(adapter)
        route = self._route(prompt)
        body = self.request_body(prompt, adapter, params, stream=True)
        chat = prompt.style == "chat"

        def open_stream() -> Iterator[GenerationChunk]:
            response = self._http.open_stream(route, body, self.timeout)
            return chunks(response, CompletionStream(adapter, chat=chat, naming="adapter"))

        with missing_adapter_is_typed(adapter, self.base_url):
            yield from stream_with_retries(open_stream, self._context(adapter, route), self.retry)

    async def agenerate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Native async `generate` (httpx, pooled per event loop)."""
        self._prepare(adapter)
        route = self._route(prompt)
        body = self.request_body(prompt, adapter, params, stream=False)
        chat = prompt.style == "chat"

        async def call() -> Generation:
            payload = await self._http.apost_json(route, body, self.timeout)
            return self._parse(payload, adapter, chat=chat)

        with missing_adapter_is_typed(adapter, self.base_url):
            return await acall_with_retries(call, self._context(adapter, route), self.retry)

    async def astream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        """Native async `stream`."""
        self._prepare(adapter)
        route = self._route(prompt)
        body = self.request_body(prompt, adapter, params, stream=True)
        chat = prompt.style == "chat"

        async def open_stream() -> AsyncIterator[GenerationChunk]:
            response = await self._http.aopen_stream(route, body, self.timeout)
            return achunks(response, CompletionStream(adapter, chat=chat, naming="adapter"))

        ctx = self._context(adapter, route)
        with missing_adapter_is_typed(adapter, self.base_url):
            async for chunk in astream_with_retries(open_stream, ctx, self.retry):
                yield chunk
