r"""`TGIBackend`: FSPO adapters served by Text Generation Inference (its HTTP API, with httpx).

Launching TGI with FSPO adapters (LoRA adapters are loaded at startup only; TGI cannot load
one at run time):

```bash
docker run --gpus all -p 8080:80 \\
    -e LORA_ADAPTERS=org/fspo-reviews,org/fspo-elix@v2,local=/adapters/fspo-roleplay \\
    -e PREFIX_CACHING=1 \\
    ghcr.io/huggingface/text-generation-inference:3.3.7 \\
    --model-id meta-llama/Llama-3.2-1B-Instruct --max-input-tokens 8192
```

- TGI **disables prefix caching when `LORA_ADAPTERS` is set**, unless `PREFIX_CACHING` is set
  explicitly. FSPO prompts share a long per-user prefix (the user's examples, rendered in a
  stable order), so set `PREFIX_CACHING=1`.
- TGI **silently serves the base model for an adapter id it did not load**. Pass the ids you
  launched with as `adapters=[...]` (or the `LORA_ADAPTERS` string itself): calls with any other
  adapter then raise `AdapterNotFoundError` instead of quietly losing the personalisation.
- `MAX_STOP_SEQUENCES` defaults to 4 and `--max-input-tokens` caps the few-shot prompt.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import SecretStr

from langchain_fspo.backends import _tgi_params
from langchain_fspo.backends._event_stream import achunks, chunks
from langchain_fspo.backends._http import (
    CallContext,
    MalformedResponseError,
    resolve_api_key,
    safe_url,
)
from langchain_fspo.backends._retry import (
    acall_with_retries,
    astream_with_retries,
    call_with_retries,
    stream_with_retries,
)
from langchain_fspo.backends._server import ServerBackend
from langchain_fspo.backends._tgi_routes import route_for
from langchain_fspo.backends.base import Generation, GenerationChunk, GenerationParams
from langchain_fspo.errors import AdapterNotFoundError

if TYPE_CHECKING:
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["TGIBackend", "parse_lora_adapters"]

logger = logging.getLogger("langchain_fspo.backends")

_TOKEN_CACHE_SIZE = 1024


def _hub_token() -> str | None:
    """The token huggingface_hub would send: env `HF_TOKEN`, else the `hf auth login` one."""
    from huggingface_hub import get_token

    return get_token()


def parse_lora_adapters(spec: str | Iterable[str]) -> list[str]:
    """The adapter ids a TGI launched with `LORA_ADAPTERS=spec` answers to.

    Example:
        >>> parse_lora_adapters("org/a,org/b@v2,mine=/data/adapter")
        ['org/a', 'org/b', 'mine']
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    ids = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        name, sep, _path = item.partition("=")
        ids.append(name.strip() if sep else item.split("@", 1)[0])
    return ids


class TGIBackend(ServerBackend):
    """Sends FSPO prompts to a TGI server, with the adapter chosen per call.

    `style="chat"` prompts go to `/v1/chat/completions` with the adapter as `model` (TGI's
    rule: `model` is the adapter id unless it is `"tgi"`); `style="paper"` prompts go as raw
    text to `/generate` / `/generate_stream` with `parameters.adapter_id`. Both with the
    package's own JSON-over-HTTP client (httpx, connections pooled per event loop; native
    async), which sends TGI's request bodies as its OpenAPI spec defines them.

    How `GenerationParams` are sent:

    - chat: `temperature`, `max_tokens`, `top_p`, `seed`, `stop`, `frequency_penalty`,
      `presence_penalty`; `extra` passes through (`tools`, `tool_choice`, `response_format`,
      ...; unknown keys go in the JSON body). TGI's chat API has no `top_k` nor
      `repetition_penalty`: setting them raises `UnsupportedParameterError` (TGI would drop
      them silently); use `style="paper"` for them.
    - paper: `max_tokens` -> `max_new_tokens`; `temperature` 0 -> `do_sample=false` (greedy;
      TGI rejects a zero temperature), > 0 -> sampling; `top_p` (1.0 means no nucleus
      filtering and is not sent: TGI rejects it), `top_k`, `seed`, `stop`,
      `frequency_penalty`, `repetition_penalty`; `response_format` becomes TGI's `grammar`;
      `presence_penalty` and `tools` raise `UnsupportedParameterError`.

    Usage: chat answers and both streams report prompt and completion tokens; a non-streamed
    `/generate` answer reports only the completion tokens (TGI's `details` carry no prompt
    length), so `input_tokens` is None there. Streams ask for usage
    (`stream_options.include_usage` on chat; `details` on `/generate_stream`) and must end
    with their final event (a `finish_reason`, or the `details` event): a stream cut off
    mid-way raises `InferenceServerError`. `timeout` bounds each attempt whole; timeouts,
    connection errors, 429 and 5xx are retried with exponential backoff (`max_retries`;
    docs/serving.md, "Failures"); other errors raise `InferenceServerError` at once.

    Example:
        ```python
        from langchain_fspo.backends.tgi import TGIBackend

        backend = TGIBackend("http://localhost:8080", adapters="org/fspo-reviews,org/fspo-elix")
        backend.check_adapter("org/fspo-reviews")  # AdapterNotFoundError if not launched
        ```
    """

    name: ClassVar[str] = "tgi"

    def __init__(
        self,
        base_url: str,
        *,
        adapters: str | Iterable[str] | None = None,
        api_key: str | SecretStr | None = None,
        timeout: float | None = 120.0,
        stream_timeout: float | None = None,
        max_retries: int = 2,
        backoff_factor: float = 0.5,
        backoff_max: float = 8.0,
        headers: Mapping[str, str] | None = None,
        remote_token_count: bool = True,
    ) -> None:
        """Configure the backend; no request is made until the first call.

        Args:
            base_url: The TGI server, e.g. `http://localhost:8080` (a trailing `/v1` is fine).
            adapters: The adapter ids TGI was launched with (a list, or the `LORA_ADAPTERS`
                string). Calls with other adapter ids then raise `AdapterNotFoundError`.
                None: no check (TGI would silently serve the base model for a wrong id).
            api_key: Bearer token; default: env `HF_TOKEN`, else the token of `hf auth login`
                (what huggingface_hub sends; Inference Endpoints need it). `""`: none.
            timeout: Seconds one attempt may take, whole: connecting, the headers and the
                body; for a stream, opening it and each gap between two chunks. None: no
                limit.
            stream_timeout: Seconds a whole stream may take (None: no total limit).
            max_retries: Retries of a call that failed transiently (timeout, connection
                error, 429, 5xx).
            backoff_factor: Seconds before the first retry, doubled on each retry.
            backoff_max: The longest wait between two attempts.
            headers: Extra HTTP headers for every request.
            remote_token_count: Count tokens with TGI's `POST /tokenize` (the served
                tokenizer), so that `PromptFormat.max_prompt_tokens` is enforced. Counts are
                cached (1024 texts); False: `count_tokens` returns None (no budget).
        """
        key = resolve_api_key(api_key, "HF_TOKEN")
        if api_key is None and key is None:
            key = resolve_api_key(_hub_token(), "HF_TOKEN")
        self._connect(
            base_url,
            key,
            headers,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            timeout=timeout,
            stream_timeout=stream_timeout,
        )
        self.adapters: list[str] | None = (
            parse_lora_adapters(adapters) if adapters is not None else None
        )
        self._warned_unchecked: set[str] = set()
        self.remote_token_count = remote_token_count
        self._token_counts: OrderedDict[str, int | None] = OrderedDict()
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:
        adapters = self.adapters if self.adapters is not None else "unchecked"
        return (
            f"TGIBackend(base_url={safe_url(self.base_url)!r}, adapters={adapters!r}, "
            f"api_key={'**********' if self.api_key else None}, timeout={self.timeout}, "
            f"max_retries={self.retry.max_retries})"
        )

    # ------------------------------------------------------------------ adapters

    def check_adapter(self, adapter: str | None) -> None:
        """Raise `AdapterNotFoundError` if `adapter` is not one TGI was launched with.

        TGI has no route that lists its adapters and answers an unknown adapter id with the
        base model, so the check is against `adapters`. Without that list nothing can be
        checked: a warning says so (once per adapter).
        """
        if adapter is None:
            return
        if self.adapters is None:
            if adapter not in self._warned_unchecked:
                self._warned_unchecked.add(adapter)
                logger.warning(
                    "TGIBackend cannot verify adapter %r: TGI serves the base model for an id "
                    "it did not load. Pass adapters=[...] (the LORA_ADAPTERS ids) to check.",
                    adapter,
                )
            return
        if adapter not in self.adapters:
            msg = (
                f"Adapter {adapter!r} is not served by TGI at {safe_url(self.base_url)} "
                f"(launched with: {', '.join(self.adapters) or 'none'}). TGI would silently "
                "answer with the base model. Add it to LORA_ADAPTERS and to `adapters`, or "
                "fix the adapter id."
            )
            raise AdapterNotFoundError(msg)

    # ------------------------------------------------------------------ tokens

    def count_tokens(self, text: str) -> int | None:
        """Tokens in `text` by the served tokenizer (`POST /tokenize`), cached; None if unknown.

        None when `remote_token_count` is off or the server has no fast tokenizer (HTTP 404);
        other failures raise `InferenceServerError`.
        """
        if not self.remote_token_count:
            return None
        with self._token_lock:
            if text in self._token_counts:
                self._token_counts.move_to_end(text)
                return self._token_counts[text]
        count = self._tokenize(text)
        with self._token_lock:
            self._token_counts[text] = count
            if len(self._token_counts) > _TOKEN_CACHE_SIZE:
                self._token_counts.popitem(last=False)
        return count

    def _tokenize(self, text: str) -> int | None:
        def call() -> int | None:
            try:
                tokens = self._http.post_json("/tokenize", {"inputs": text}, self.timeout)
            except httpx.HTTPStatusError as e:
                if e.response.status_code != 404:  # noqa: PLR2004 - TGI: no fast tokenizer
                    raise
                logger.warning(
                    "TGI at %s cannot tokenize (%s); prompt token budgets are not enforced.",
                    safe_url(self.base_url),
                    e.response.text[:200],
                )
                return None
            if not isinstance(tokens, list):
                msg = f"/tokenize answered {tokens!r:.200}, not a list of tokens"
                raise MalformedResponseError(msg)
            return len(tokens)

        return call_with_retries(call, self._context(None, "/tokenize"), self.retry)

    # ------------------------------------------------------------------ clients

    def _context(self, adapter: str | None, route: str) -> CallContext:
        return CallContext(backend="TGI", url=self.base_url, adapter=adapter, route=route)

    # ------------------------------------------------------------------ parameters

    def chat_body(
        self,
        messages: list[dict[str, Any]],
        adapter: str | None,
        params: GenerationParams,
        *,
        stream: bool,
    ) -> dict[str, Any]:
        """The `/v1/chat/completions` JSON body of one call."""
        return _tgi_params.chat_body(messages, adapter, params, stream=stream)

    def generate_body(
        self, text: str, adapter: str | None, params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        """The `/generate` (`/generate_stream`) JSON body of one call."""
        return _tgi_params.generate_body(text, adapter, params, stream=stream)

    # ------------------------------------------------------------------ Backend API

    def _prepare(self, adapter: str | None) -> None:
        if self.adapters is not None:
            self.check_adapter(adapter)

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Complete `prompt` with `adapter` (None: the base model); see the class docstring."""
        self._prepare(adapter)
        route = route_for(prompt, adapter, params, stream=False)

        def call() -> Generation:
            return route.parse(self._http.post_json(route.path, route.body, self.timeout))

        return call_with_retries(call, self._context(adapter, route.path), self.retry)

    def stream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Iterator[GenerationChunk]:
        """Stream the completion; the last chunk carries `finish_reason` and usage."""
        self._prepare(adapter)
        route = route_for(prompt, adapter, params, stream=True)

        def open_stream() -> Iterator[GenerationChunk]:
            response = self._http.open_stream(route.path, route.body, self.timeout)
            return chunks(response, route.events())

        return stream_with_retries(open_stream, self._context(adapter, route.path), self.retry)

    async def agenerate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Native async `generate` (httpx, pooled per event loop)."""
        self._prepare(adapter)
        route = route_for(prompt, adapter, params, stream=False)

        async def call() -> Generation:
            return route.parse(await self._http.apost_json(route.path, route.body, self.timeout))

        return await acall_with_retries(call, self._context(adapter, route.path), self.retry)

    async def astream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        """Native async `stream`."""
        self._prepare(adapter)
        route = route_for(prompt, adapter, params, stream=True)

        async def open_stream() -> AsyncIterator[GenerationChunk]:
            response = await self._http.aopen_stream(route.path, route.body, self.timeout)
            return achunks(response, route.events())

        ctx = self._context(adapter, route.path)
        async for chunk in astream_with_retries(open_stream, ctx, self.retry):
            yield chunk
