r"""`TGIBackend`: FSPO adapters served by Text Generation Inference, through `huggingface_hub`.

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

import asyncio
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr

from langchain_fspo.backends._http import (
    CallContext,
    MalformedResponseError,
    RetryPolicy,
    acall_with_retries,
    astream_with_retries,
    call_with_retries,
    normalize_base_url,
    resolve_api_key,
    safe_url,
    stream_with_retries,
)
from langchain_fspo.backends._openai_wire import CompletionStream, parse_completion
from langchain_fspo.backends._tgi_wire import (
    GenerateStream,
    parse_text_generation,
    plain_data,
    tgi_grammar,
)
from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.errors import AdapterNotFoundError, UnsupportedParameterError

if TYPE_CHECKING:
    from huggingface_hub import AsyncInferenceClient, InferenceClient

    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["TGIBackend", "parse_lora_adapters"]

logger = logging.getLogger("langchain_fspo.backends")

_CHAT_ARGS = frozenset(
    {
        "tools",
        "tool_choice",
        "tool_prompt",
        "response_format",
        "logprobs",
        "top_logprobs",
        "n",
        "logit_bias",
    }
)
"""`extra` keys that `InferenceClient.chat_completion` takes by name; the rest go in the body."""

_GENERATE_ARGS = frozenset(
    {
        "grammar",
        "truncate",
        "typical_p",
        "watermark",
        "top_n_tokens",
        "best_of",
        "do_sample",
        "decoder_input_details",
        "return_full_text",
    }
)
"""`extra` keys TGI's `/generate` understands (`GenerateParameters`)."""

_TOKEN_CACHE_SIZE = 1024


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


class TGIBackend(Backend):
    """Sends FSPO prompts to a TGI server, with the adapter chosen per call.

    `style="chat"` prompts go to `/v1/chat/completions` with the adapter as `model` (TGI's
    rule: `model` is the adapter id unless it is `"tgi"`); `style="paper"` prompts go as raw
    text to `/generate` / `/generate_stream` with `parameters.adapter_id`. Both through
    `huggingface_hub.InferenceClient` / `AsyncInferenceClient` (native async).

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
    with their final event: a stream cut off mid-way raises
    `InferenceServerError`. Timeouts, connection errors, 429 and 5xx are retried with
    exponential backoff (`max_retries`); other errors raise `InferenceServerError` at once.

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
            api_key: Bearer token; default: env `HF_TOKEN` (Inference Endpoints need it).
            timeout: Seconds to wait for the server, per attempt.
            max_retries: Retries of a call that failed transiently (timeout, connection
                error, 429, 5xx).
            backoff_factor: Seconds before the first retry, doubled on each retry.
            backoff_max: The longest wait between two attempts.
            headers: Extra HTTP headers for every request.
            remote_token_count: Count tokens with TGI's `POST /tokenize` (the served
                tokenizer), so that `PromptFormat.max_prompt_tokens` is enforced. Counts are
                cached (1024 texts); False: `count_tokens` returns None (no budget).
        """
        self.base_url = normalize_base_url(base_url)
        self.adapters: list[str] | None = (
            parse_lora_adapters(adapters) if adapters is not None else None
        )
        self.api_key = resolve_api_key(api_key, "HF_TOKEN")
        self.timeout = timeout
        self.retry = RetryPolicy(
            max_retries=max_retries, backoff_factor=backoff_factor, backoff_max=backoff_max
        )
        self.headers = dict(headers or {})
        self._warned_unchecked: set[str] = set()
        self.remote_token_count = remote_token_count
        self._token_counts: OrderedDict[str, int | None] = OrderedDict()
        self._token_lock = threading.Lock()
        self._async_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        adapters = self.adapters if self.adapters is not None else "unchecked"
        return (
            f"TGIBackend(base_url={safe_url(self.base_url)!r}, adapters={adapters!r}, "
            f"api_key={'**********' if self.api_key else None}, timeout={self.timeout}, "
            f"max_retries={self.retry.max_retries})"
        )

    @property
    def supports_tools(self) -> bool:
        """`tools` / `tool_choice` reach TGI on the chat route (TGI turns them into a grammar)."""
        return True

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
        from huggingface_hub import get_session

        headers = dict(self.headers)
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key.get_secret_value()}"

        def call() -> int | None:
            response = get_session().post(
                f"{self.base_url}/tokenize",
                json={"inputs": text},
                headers=headers,
                timeout=self.timeout,
            )
            if response.status_code == 404:  # noqa: PLR2004 - TGI: no fast tokenizer
                logger.warning(
                    "TGI at %s cannot tokenize (%s); prompt token budgets are not enforced.",
                    safe_url(self.base_url),
                    response.text[:200],
                )
                return None
            response.raise_for_status()
            tokens = response.json()
            if not isinstance(tokens, list):
                msg = f"/tokenize answered {tokens!r:.200}, not a list of tokens"
                raise MalformedResponseError(msg)
            return len(tokens)

        return call_with_retries(call, self._context(None, "/tokenize"), self.retry)

    # ------------------------------------------------------------------ clients

    def _token(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None

    def _client(self, url: str) -> InferenceClient:
        from huggingface_hub import InferenceClient

        return InferenceClient(
            model=url, token=self._token(), timeout=self.timeout, headers=self.headers
        )

    def _aclient(self, url: str) -> AsyncInferenceClient:
        """A fresh client (its exit stack holds one call's response) on a pooled session.

        `AsyncInferenceClient` opens a new `httpx.AsyncClient` (TLS context, connection pool)
        per client; one per call costs tens of milliseconds and a new connection each time
        (bench/tgi_async_session.py). The session is shared per event loop instead.
        """
        from huggingface_hub import AsyncInferenceClient, get_async_session

        client = AsyncInferenceClient(
            model=url, token=self._token(), timeout=self.timeout, headers=self.headers
        )
        if hasattr(client, "_async_client"):  # hub 1.x/2.x: the session it would create
            loop = asyncio.get_running_loop()
            session = self._async_sessions.get(loop)
            if session is None:
                session = get_async_session()
                self._async_sessions[loop] = session
            client._async_client = session  # noqa: SLF001 - not closed with the client
        return client

    async def aclose(self) -> None:
        """Close the pooled async HTTP session of the running event loop (reopened on use)."""
        session = self._async_sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.aclose()

    def _context(self, adapter: str | None, route: str) -> CallContext:
        return CallContext(backend="TGI", url=self.base_url, adapter=adapter, route=route)

    # ------------------------------------------------------------------ parameters

    def chat_arguments(
        self, adapter: str | None, params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        """Keyword arguments of `InferenceClient.chat_completion` for one call (no messages)."""
        unsupported = [
            name for name in ("top_k", "repetition_penalty") if getattr(params, name) is not None
        ]
        if unsupported:
            msg = (
                f"TGI's /v1/chat/completions has no {', '.join(unsupported)} and would ignore "
                "it silently. Remove it, or use a prompt format with style='paper' (sent to "
                "/generate, which takes top_k and repetition_penalty)."
            )
            raise UnsupportedParameterError(msg)
        args: dict[str, Any] = {
            "model": adapter if adapter is not None else "tgi",
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "top_p": params.top_p,
            "seed": params.seed,
            "stop": params.stop,
            "frequency_penalty": params.frequency_penalty,
            "presence_penalty": params.presence_penalty,
        }
        extra_body: dict[str, Any] = {}
        for key, value in params.extra.items():
            if key in _CHAT_ARGS:
                args[key] = value
            else:
                extra_body[key] = value
        if isinstance(args.get("response_format"), Mapping):
            args["response_format"] = tgi_grammar(args["response_format"])
        if extra_body:
            args["extra_body"] = extra_body
        if stream:
            args["stream"] = True
            args["stream_options"] = {"include_usage": True}
        return args

    def generate_arguments(
        self, adapter: str | None, params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        """Keyword arguments of `InferenceClient.text_generation` for one call (no prompt)."""
        if params.presence_penalty is not None:
            msg = (
                "TGI's /generate has no presence_penalty. Remove it, use frequency_penalty or "
                "repetition_penalty, or a prompt format with style='chat' (sent to "
                "/v1/chat/completions, which takes it)."
            )
            raise UnsupportedParameterError(msg)
        args: dict[str, Any] = {
            "adapter_id": adapter,
            "details": True,
            "stream": stream,
            "max_new_tokens": params.max_tokens,
            "top_k": params.top_k,
            "seed": params.seed,
            "stop": params.stop,
            "frequency_penalty": params.frequency_penalty,
            "repetition_penalty": params.repetition_penalty,
        }
        if params.temperature is not None:
            if params.temperature == 0:
                args["do_sample"] = False
            else:
                args["do_sample"] = True
                args["temperature"] = params.temperature
        if params.top_p is not None and params.top_p < 1.0:
            args["top_p"] = params.top_p
        for key, value in params.extra.items():
            if key == "response_format":
                args.setdefault("grammar", tgi_grammar(value))
            elif key in _GENERATE_ARGS:
                args[key] = value
            else:
                msg = f"TGI's /generate has no parameter {key!r}. " + (
                    "Tools need a prompt format with style='chat' (/v1/chat/completions)."
                    if key in {"tools", "tool_choice", "tool_prompt"}
                    else f"It takes: {', '.join(sorted(_GENERATE_ARGS | {'response_format'}))}."
                )
                raise UnsupportedParameterError(msg)
        return args

    # ------------------------------------------------------------------ chat route

    def _chat_generation(self, response: Any, adapter: str | None) -> Generation:
        return parse_completion(plain_data(response), adapter, chat=True, naming="server")

    def _chat_chunks(self, events: Iterable[Any], adapter: str | None) -> Iterator[GenerationChunk]:
        state = CompletionStream(adapter, chat=True, naming="server")
        for event in events:
            yield from state.feed(plain_data(event))
        state.done = True  # huggingface_hub's iterator stops at `data: [DONE]`
        yield state.final()

    async def _achat_chunks(
        self, events: AsyncIterator[Any], adapter: str | None
    ) -> AsyncIterator[GenerationChunk]:
        state = CompletionStream(adapter, chat=True, naming="server")
        async for event in events:
            for chunk in state.feed(plain_data(event)):
                yield chunk
        state.done = True
        yield state.final()

    # ------------------------------------------------------------------ paper route

    def _text_generation(self, response: Any, adapter: str | None) -> Generation:
        return parse_text_generation(plain_data(response), adapter)

    def _paper_chunks(
        self, events: Iterable[Any], adapter: str | None
    ) -> Iterator[GenerationChunk]:
        state = GenerateStream(adapter)
        for event in events:
            yield from state.feed(plain_data(event))
        yield state.final()

    async def _apaper_chunks(
        self, events: AsyncIterator[Any], adapter: str | None
    ) -> AsyncIterator[GenerationChunk]:
        state = GenerateStream(adapter)
        async for event in events:
            for chunk in state.feed(plain_data(event)):
                yield chunk
        yield state.final()

    # ------------------------------------------------------------------ Backend API

    def _prepare(self, adapter: str | None) -> None:
        if self.adapters is not None:
            self.check_adapter(adapter)

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Complete `prompt` with `adapter` (None: the base model); see the class docstring."""
        self._prepare(adapter)
        if prompt.style == "chat":
            args = self.chat_arguments(adapter, params, stream=False)

            def chat() -> Generation:
                with self._client(self.base_url) as client:
                    response = client.chat_completion(list(prompt.messages), **args)
                return self._chat_generation(response, adapter)

            return call_with_retries(
                chat, self._context(adapter, "/v1/chat/completions"), self.retry
            )
        args = self.generate_arguments(adapter, params, stream=False)

        def paper() -> Generation:
            with self._client(f"{self.base_url}/generate") as client:
                response = client.text_generation(prompt.text, **args)
            return self._text_generation(response, adapter)

        return call_with_retries(paper, self._context(adapter, "/generate"), self.retry)

    def stream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Iterator[GenerationChunk]:
        """Stream the completion; the last chunk carries `finish_reason` and usage."""
        self._prepare(adapter)
        if prompt.style == "chat":
            args = self.chat_arguments(adapter, params, stream=True)

            def open_chat() -> Iterator[GenerationChunk]:
                client = self._client(self.base_url)
                try:
                    events = client.chat_completion(list(prompt.messages), **args)
                except BaseException:
                    _close(client)
                    raise
                return _closing(self._chat_chunks(events, adapter), client)

            ctx = self._context(adapter, "/v1/chat/completions")
            return stream_with_retries(open_chat, ctx, self.retry)
        args = self.generate_arguments(adapter, params, stream=True)

        def open_paper() -> Iterator[GenerationChunk]:
            client = self._client(f"{self.base_url}/generate_stream")
            try:
                events = client.text_generation(prompt.text, **args)
            except BaseException:
                _close(client)
                raise
            return _closing(self._paper_chunks(events, adapter), client)

        return stream_with_retries(
            open_paper, self._context(adapter, "/generate_stream"), self.retry
        )

    async def agenerate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Native async `generate` (`AsyncInferenceClient`)."""
        self._prepare(adapter)
        if prompt.style == "chat":
            args = self.chat_arguments(adapter, params, stream=False)

            async def chat() -> Generation:
                async with self._aclient(self.base_url) as client:
                    response = await client.chat_completion(list(prompt.messages), **args)
                return self._chat_generation(response, adapter)

            ctx = self._context(adapter, "/v1/chat/completions")
            return await acall_with_retries(chat, ctx, self.retry)
        args = self.generate_arguments(adapter, params, stream=False)

        async def paper() -> Generation:
            async with self._aclient(f"{self.base_url}/generate") as client:
                response = await client.text_generation(prompt.text, **args)
            return self._text_generation(response, adapter)

        return await acall_with_retries(paper, self._context(adapter, "/generate"), self.retry)

    async def astream(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        """Native async `stream`."""
        self._prepare(adapter)
        if prompt.style == "chat":
            args = self.chat_arguments(adapter, params, stream=True)

            async def open_chat() -> AsyncIterator[GenerationChunk]:
                client = self._aclient(self.base_url)
                try:
                    events = await client.chat_completion(list(prompt.messages), **args)
                except BaseException:
                    await _aclose(client)
                    raise
                return _aclosing(self._achat_chunks(events, adapter), client)

            ctx = self._context(adapter, "/v1/chat/completions")
            opener = open_chat
        else:
            args = self.generate_arguments(adapter, params, stream=True)

            async def open_paper() -> AsyncIterator[GenerationChunk]:
                client = self._aclient(f"{self.base_url}/generate_stream")
                try:
                    events = await client.text_generation(prompt.text, **args)
                except BaseException:
                    await _aclose(client)
                    raise
                return _aclosing(self._apaper_chunks(events, adapter), client)

            ctx = self._context(adapter, "/generate_stream")
            opener = open_paper
        async for chunk in astream_with_retries(opener, ctx, self.retry):
            yield chunk


def _close(client: Any) -> None:
    client.close()


async def _aclose(client: Any) -> None:
    await client.close()


def _closing(chunks: Iterator[GenerationChunk], client: Any) -> Iterator[GenerationChunk]:
    """Yield `chunks`, then close the client whose exit stack holds the HTTP response."""
    try:
        yield from chunks
    finally:
        client.close()


async def _aclosing(
    chunks: AsyncIterator[GenerationChunk], client: Any
) -> AsyncIterator[GenerationChunk]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await client.close()
