"""`ChatFSPO`: a LangChain chat model that answers each user the way they prefer.

It reads the user's stored preference examples from a memory, renders them with the
adapter's `PromptFormat` (the contract saved beside the adapter), and sends the prompt to a
`Backend` (in-process transformers + PEFT, TGI, an OpenAI-compatible server) with the FSPO
LoRA adapter selected per call.

The class holds the fields, validators and LangChain hooks; the work is done by small modules
beside it: `_prompting` (the one rendering step), `_call` (what a call sends), `_convert`
(backend results to LangChain messages), `_streaming` (the completion parser) and `_loading`
(`from_pretrained`). Retries and timeouts are the backends' one layer (`backends._retry`),
which `timeout` and `max_retries` configure. This file is over the house's
~400 lines because the docstrings (LangChain's template for the class, one per documented field
and hook) take about 240 of them; the code is the LangChain hooks only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from langchain_fspo._conversation import resolve_user, to_messages, with_configured_user
from langchain_fspo.backends import _retry
from langchain_fspo.backends._http import redact_url
from langchain_fspo.backends.base import Backend, GenerationParams
from langchain_fspo.chat_models._call import (
    GENERATION_FIELDS,
    PreparedCall,
    announced_calls,
    batch_config,
    generation_params,
)
from langchain_fspo.chat_models._convert import StreamConverter, chat_result
from langchain_fspo.chat_models._loading import load_pretrained, missing_backend, server_backend
from langchain_fspo.chat_models._prompting import PromptBuilder, ShotSource
from langchain_fspo.prompt_format import PromptFormat, RenderedPrompt

if TYPE_CHECKING:
    from langchain_fspo.collect import Comparison

__all__ = ["ChatFSPO", "ShotSource"]

logger = logging.getLogger(__name__)


class ChatFSPO(BaseChatModel):
    r"""Chat model personalised per user by Few-Shot Preference Optimization (FSPO).

    One FSPO-trained LoRA adapter serves every user: for each call, the user's stored
    preference examples (question, preferred and dispreferred answers) are put in the prompt,
    and the adapter answers the way that user prefers. No examples, or no user: a zero-shot
    prompt.

    The user of a call is its `user_id=` keyword, else `config["configurable"]["user_id"]`,
    else the `user_id` field. The query is the last human message. `style="chat"` formats
    keep the other messages around the FSPO user message (system messages merged into one
    leading system message after the format's own `system_prompt`); `style="paper"` formats
    are raw text and use the last human message only. The answer is parsed with
    `PromptFormat.parse_completion` (format headers removed; under RAT the user description
    goes to `response_metadata["user_description"]`), also while streaming.

    Setup:
        Install the package, with the in-process backend's torch/transformers/peft:

        ```bash
        pip install "langchain-fspo[local]"
        ```

        The examples below build a tiny random adapter offline (its answers are gibberish;
        point `from_pretrained` at a real FSPO adapter folder or Hub repo instead):

        ```python
        import tempfile
        from pathlib import Path

        from fspo_train.testing import build_tiny_adapter, build_tiny_base_model

        root = Path(tempfile.mkdtemp())
        adapter_dir = build_tiny_adapter(build_tiny_base_model(root / "base"), root / "adapter")
        ```

    Key init args — completion params:
        model: str | None
            Name of the LoRA adapter (None: the base model).
        temperature, max_tokens, top_p, top_k, seed, stop, frequency_penalty,
        presence_penalty, repetition_penalty: sampling parameters, all sent to the backend.
        model_kwargs: dict
            Extra backend parameters (`GenerationParams.extra`).

    Key init args — client params:
        backend: Backend
            Where the model runs (`LocalBackend`, TGI, OpenAI-compatible).
        prompt_format: PromptFormat
            The adapter's `fspo_format.json`.
        memory: PreferenceMemory | None
            Where users' examples live.
        user_id: str | None
            Default user (a call's `user_id=` or `config["configurable"]["user_id"]` wins).
        timeout, max_retries: configure the backend's one retry layer: seconds one attempt
            may take, whole (a stream: its opening and each gap between chunks), and retries
            of transient failures (timeouts, connection errors, HTTP 429 / 5xx).

    Instantiate:
        ```python
        from langchain_fspo import ChatFSPO, PreferenceMemory

        memory = PreferenceMemory()
        memory.add(
            "ada",
            prompt="Recommend a film.",
            chosen="Arrival: quiet, clever science fiction.",
            rejected="Any superhero blockbuster.",
        )
        llm = ChatFSPO.from_pretrained(adapter_dir, memory=memory, max_tokens=16, seed=0)
        ```

    Invoke:
        ```python
        msg = llm.invoke("Recommend a book.", user_id="ada")
        # or: llm.invoke("...", config={"configurable": {"user_id": "ada"}})
        print(msg.content)
        ```

    Stream:
        ```python
        for chunk in llm.stream("Recommend a book.", user_id="ada"):
            print(chunk.content, end="", flush=True)
        ```

    Async:
        ```python
        import asyncio

        msg = asyncio.run(llm.ainvoke("Recommend a book.", user_id="ada"))
        msgs = asyncio.run(
            llm.abatch(["Hi!", "Hello!"], config={"configurable": {"user_id": "ada"}})
        )
        ```

    Inspect the prompt:
        ```python
        prompt = llm.build_prompt("Recommend a book.", user_id="ada")
        print(prompt.messages[-1]["content"])  # exactly what the backend receives
        ```

    Token usage:
        ```python
        print(msg.usage_metadata)  # {'input_tokens': ..., 'output_tokens': 16, ...}
        ```

    Response metadata:
        ```python
        print(msg.response_metadata)
        # {'model_name': 'adapter', 'adapter': 'adapter', 'user_id': 'ada',
        #  'example_ids': ['...'], 'num_shots': 1, 'dropped_shots': 0,
        #  'prompt_style': 'chat', 'finish_reason': 'length', 'backend': 'local'}
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    backend: Backend = Field(default_factory=missing_backend)
    """Where the model runs; the adapter is selected per call. A server backend can also be
    given as `base_url=` (TGI) or `backend="tgi"`/`"openai"` with `base_url=`."""
    prompt_format: PromptFormat
    """The adapter's prompt contract (`fspo_format.json`); must be the one it was trained with."""
    model_name: str | None = Field(default=None, alias="model")
    """Name of the FSPO LoRA adapter as the backend knows it (None: the base model)."""
    memory: ShotSource | None = None
    """Where users' preference examples are read (`PreferenceMemory`). None: zero-shot."""
    user_id: str | None = None
    """Default user, when a call names none."""
    shot_strategy: str | Callable[..., Any] = "recent"
    """How the memory picks the K examples: `recent` (default), `relevant`, `diverse`, ..."""
    temperature: float | None = None
    """Sampling temperature; 0 or None: greedy (the backend's default)."""
    max_tokens: int | None = None
    """Most tokens to generate."""
    top_p: float | None = None
    """Nucleus sampling probability mass."""
    top_k: int | None = None
    """Sample from the k most likely tokens."""
    seed: int | None = None
    """Random seed for sampling."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences (a call's `stop=` wins)."""
    frequency_penalty: float | None = None
    """OpenAI-style frequency penalty."""
    presence_penalty: float | None = None
    """OpenAI-style presence penalty."""
    repetition_penalty: float | None = None
    """transformers/TGI multiplicative repetition penalty."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds one backend attempt may take, whole: connecting, the headers and the body;
    for a stream, its opening and each gap between two chunks. An attempt past it fails
    with `InferenceTimeoutError` (retried like any transient failure). Given, it sets the
    backend's `retry.timeout`; not given, the backend's own applies (server backends: 120 s,
    in-process: none). A total limit for streams: the server backend's `stream_timeout`."""
    max_retries: int = Field(default=2, ge=0)
    """Retries of a backend attempt that failed transiently (timeouts, connection errors,
    HTTP 429 and 5xx; not out-of-memory), with exponential backoff, jitter and the server's
    `Retry-After`; a stream is retried only before its first chunk. Given, it sets the
    backend's `retry.max_retries`; not given, the backend's own applies (2 by default)."""
    streaming: bool = False
    """Whether `invoke` streams under the hood (for callbacks)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra parameters for the backend (`GenerationParams.extra`)."""
    base_url: str | None = None
    """URL of a TGI or OpenAI-compatible server. Given without a `backend` (or with a backend
    kind such as `"tgi"` or `"openai"`), the server backend is built from it (TGI by default)
    with `api_key`, `adapters`, `timeout` and `max_retries`. A user:password in it is used
    by the backend and shown nowhere: the field keeps the URL with `***` in its place."""
    api_key: SecretStr | None = None
    """Bearer token for a server backend built from `base_url` (default: the backend's own
    environment variable, `HF_TOKEN` for TGI, `OPENAI_API_KEY` for OpenAI-compatible)."""
    adapters: list[str] | None = None
    """Adapter ids the server serves (TGI's `LORA_ADAPTERS`) for a backend built from
    `base_url`: others raise `AdapterNotFoundError` instead of silently getting the base
    model (TGI's behaviour for an unknown adapter id)."""

    _configured: tuple[Backend, dict[str, Any], Backend] | None = PrivateAttr(default=None)

    @field_validator("base_url")
    @classmethod
    def _redact_base_url(cls, value: str | None) -> str | None:
        """Credentials in the URL go to the backend only (built before fields are checked)."""
        return redact_url(value) if value is not None else None

    @model_validator(mode="before")
    @classmethod
    def _backend_from_url(cls, values: Any) -> Any:
        """`base_url=...` (and optionally `backend="tgi"`/`"openai"`): build the backend."""
        if not isinstance(values, dict):
            return values
        kind = values.get("backend")
        if kind is None and values.get("base_url") is not None:
            kind = "tgi"
        if not isinstance(kind, str) or kind == "local":
            return values
        return {**values, "backend": server_backend(kind, values)}

    @model_validator(mode="before")
    @classmethod
    def _build_extra(cls, values: Any) -> Any:
        """Fold unknown constructor arguments into `model_kwargs` (as LangChain models do)."""
        if not isinstance(values, dict):
            return values
        known = set(cls.model_fields)
        known |= {f.alias for f in cls.model_fields.values() if f.alias}
        extra = {k: v for k, v in values.items() if k not in known}
        if not extra:
            return values
        logger.warning(
            "ChatFSPO got unknown parameters %s; they are sent to the backend as model_kwargs.",
            sorted(extra),
        )
        kept = {k: v for k, v in values.items() if k in known}
        kept["model_kwargs"] = {**extra, **(values.get("model_kwargs") or {})}
        return kept

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(
        cls,
        adapter_dir_or_repo: str | Path,
        *,
        memory: ShotSource | None = None,
        backend: str | Backend = "local",
        adapter_name: str | None = None,
        revision: str | None = None,
        token: str | None = None,
        backend_kwargs: dict[str, Any] | None = None,
        check_chat_template: bool = True,
        **kwargs: Any,
    ) -> ChatFSPO:
        """Build a `ChatFSPO` for a published FSPO adapter (folder or Hub repo).

        Reads `fspo_format.json` and `adapter_config.json` (for the base model), then builds
        the backend: `"local"` loads the base model and the adapter in-process; server kinds
        (`"tgi"`, `"openai"`) connect with `backend_kwargs` (URL, ...) to a server that
        already serves the adapter. An existing `Backend` is used as it is (a
        `LocalBackend` missing the adapter gets it attached).

        Args:
            adapter_dir_or_repo: Adapter folder or Hub repo id.
            memory: Where users' examples live.
            backend: Backend kind (see `langchain_fspo.backends.factory`) or an instance.
            adapter_name: The adapter's name in calls; default: the folder name, or the
                repo id for a Hub repo (TGI's adapter id).
            revision: Hub revision of the adapter repo.
            token: Hub token.
            backend_kwargs: Arguments for the backend factory.
            check_chat_template: For `style="chat"`, check that the served tokenizer's chat
                template is the one trained with (when the backend exposes it).
            **kwargs: `ChatFSPO` fields (`user_id`, `temperature`, `max_tokens`, ...).

        Raises:
            AdapterNotFoundError: Missing files, or the backend does not serve the adapter.
            PromptFormatError: Invalid `fspo_format.json`, or chat template drift.
        """
        backend, fmt, name = load_pretrained(
            adapter_dir_or_repo,
            backend=backend,
            adapter_name=adapter_name,
            revision=revision,
            token=token,
            backend_kwargs=backend_kwargs,
            check_chat_template=check_chat_template,
            fields=kwargs,
        )
        return cls(backend=backend, prompt_format=fmt, model=name, memory=memory, **kwargs)

    # ------------------------------------------------------------------ LangChain hooks

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Send `tools` (OpenAI format) and `tool_choice` with every call.

        They reach servers that take them (TGI and OpenAI-compatible chat routes, which turn
        them into a grammar); the in-process backend cannot honour them and warns. An FSPO
        adapter is trained to answer, not to call tools: use this with adapters trained for it.

        Args:
            tools: LangChain tools, pydantic models, functions or OpenAI tool dicts.
            tool_choice: `"auto"`, `"none"`, `"required"` (or `"any"`, `True`), a tool name,
                or an OpenAI `tool_choice` dict.
            **kwargs: More call parameters to bind.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None and tool_choice is not False:
            if tool_choice is True or tool_choice == "any":
                tool_choice = "required"
            if isinstance(tool_choice, str) and tool_choice not in {"auto", "none", "required"}:
                tool_choice = {"type": "function", "function": {"name": tool_choice}}
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    @property
    def _llm_type(self) -> str:
        return "fspo"

    @property
    def _default_params(self) -> dict[str, Any]:
        """The generation parameters set on the model (None ones left out)."""
        params = {name: getattr(self, name) for name in GENERATION_FIELDS}
        params["stop"] = self.stop
        return {k: v for k, v in params.items() if v is not None} | dict(self.model_kwargs)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "backend": self.backend.name,
            "prompt_style": self.prompt_format.style,
            "num_shots": self.prompt_format.num_shots,
            "user_id": self.user_id,
            "shot_strategy": self.shot_strategy
            if isinstance(self.shot_strategy, str)
            else getattr(self.shot_strategy, "__name__", "custom"),
            **self._default_params,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="fspo", ls_model_type="chat")
        model = kwargs.get("model", self.model_name)
        if isinstance(model, str):
            params["ls_model_name"] = model
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, (int, float)):
            params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        stop_sequences = stop or kwargs.get("stop") or self.stop
        if stop_sequences:
            params["ls_stop"] = list(stop_sequences)
        return params

    def invoke(
        self,
        input: LanguageModelInput,  # noqa: A002 - LangChain's signature
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Answer `input` for the resolved user (see the class docstring)."""
        return super().invoke(input, config, stop=stop, **with_configured_user(config, kwargs))

    async def ainvoke(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Async `invoke`."""
        return await super().ainvoke(
            input, config, stop=stop, **with_configured_user(config, kwargs)
        )

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """`invoke` every input; a batching backend (`LocalBackend`) runs them together.

        Without `max_concurrency` in the config, as many inputs run at once as the backend
        batches (`langchain_fspo.chat_models._call.batch_config`), and the backend is told how
        many calls start together (`Backend.expecting`: the inputs, or `max_concurrency` when
        lower; none when `streaming`, as streams are not batched).
        """
        config = batch_config(self.backend, config, len(inputs))
        announced = 0 if self.streaming else announced_calls(config, len(inputs))
        with self.backend.expecting(announced):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Async `batch`: the backend is told how many calls come, as in `batch`."""
        announced = 0 if self.streaming else announced_calls(config, len(inputs))
        with self.backend.expecting(announced):
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )

    def stream(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the answer token by token; the last chunk carries metadata and usage."""
        yield from super().stream(input, config, stop=stop, **with_configured_user(config, kwargs))

    async def astream(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Async `stream`."""
        async for chunk in super().astream(
            input, config, stop=stop, **with_configured_user(config, kwargs)
        ):
            yield chunk

    # ------------------------------------------------------------------ prompts

    def build_prompt(
        self,
        messages: LanguageModelInput | Sequence[BaseMessage],
        *,
        user_id: str | None = None,
        config: RunnableConfig | None = None,
    ) -> RenderedPrompt:
        """Return exactly the prompt the backend would receive for `messages`.

        `style="paper"` backends send `.text`; `style="chat"` backends send `.messages`.
        `.shots` / `.example_ids` are the user's examples that made it in.

        Args:
            messages: A string, messages, or a prompt value, as for `invoke`.
            user_id: The user; default: `config["configurable"]["user_id"]`, then the field.
            config: A runnable config to read the user from.
        """
        user = resolve_user(user_id, config, self.user_id)
        return self._prompts().build(to_messages(messages), user)

    async def abuild_prompt(
        self,
        messages: LanguageModelInput | Sequence[BaseMessage],
        *,
        user_id: str | None = None,
        config: RunnableConfig | None = None,
    ) -> RenderedPrompt:
        """Async `build_prompt` (the memory is read with `aselect`)."""
        user = resolve_user(user_id, config, self.user_id)
        return await self._prompts().abuild(to_messages(messages), user)

    def compare(
        self,
        input: LanguageModelInput,  # noqa: A002 - LangChain's signature
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Comparison:
        """Two different answers to `input` for the user, to ask which they prefer.

        `cmp = llm.compare("Recommend a book.", user_id="ada")`, show `cmp.a.text` and
        `cmp.b.text`, then `cmp.record(memory, "a")`. Keywords (`user_id`, `model`, `mode`,
        `temperature`, `seed`, `max_attempts`, call parameters): see
        `langchain_fspo.collect.compare`.
        """
        from langchain_fspo.collect import compare

        return compare(self, input, config, **kwargs)

    async def acompare(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Comparison:
        """Async `compare`."""
        from langchain_fspo.collect import acompare

        return await acompare(self, input, config, **kwargs)

    # ------------------------------------------------------------------ calls

    def _prompts(self) -> PromptBuilder:
        return PromptBuilder(
            prompt_format=self.prompt_format,
            memory=self.memory,
            strategy=self.shot_strategy,
            count_tokens=self.backend.count_tokens,
            backend_name=self.backend.name,
        )

    def _call_parts(
        self, stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[str | None, str | None, GenerationParams]:
        user = resolve_user(kwargs.get("user_id"), None, self.user_id)
        adapter = kwargs.get("model", kwargs.get("model_name", self.model_name))
        defaults = {name: getattr(self, name) for name in GENERATION_FIELDS}
        defaults["stop"] = self.stop
        return user, adapter, generation_params(defaults, self.model_kwargs, stop, kwargs)

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> PreparedCall:
        user, adapter, params = self._call_parts(stop, kwargs)
        return PreparedCall(user, adapter, params, self._prompts().build(messages, user))

    async def _aprepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> PreparedCall:
        user, adapter, params = self._call_parts(stop, kwargs)
        return PreparedCall(user, adapter, params, await self._prompts().abuild(messages, user))

    def _backend(self) -> Backend:
        """The backend with `timeout` / `max_retries` applied, when they were given."""
        changes: dict[str, Any] = {}
        if "timeout" in self.model_fields_set:
            changes["timeout"] = self.timeout
        if "max_retries" in self.model_fields_set:
            changes["max_retries"] = self.max_retries
        cached = self._configured
        if cached is not None and cached[0] is self.backend and cached[1] == changes:
            return cached[2]
        configured = self.backend.configured(**changes)
        self._configured = (self.backend, changes, configured)
        return configured

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,  # noqa: ARG002 - core streams tokens
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs)
        generation = _retry.generate(
            self._backend(), call.prompt, adapter=call.adapter, params=call.params
        )
        return chat_result(call, generation, self.prompt_format, self.backend.name)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,  # noqa: ARG002
        **kwargs: Any,
    ) -> ChatResult:
        call = await self._aprepare(messages, stop, kwargs)
        generation = await _retry.agenerate(
            self._backend(), call.prompt, adapter=call.adapter, params=call.params
        )
        return chat_result(call, generation, self.prompt_format, self.backend.name)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,  # noqa: ARG002 - core calls it
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs)
        converter = StreamConverter(call, self.prompt_format, self.backend.name)
        chunks = _retry.stream(
            self._backend(), call.prompt, adapter=call.adapter, params=call.params
        )
        for chunk in chunks:
            out = converter.feed(chunk)
            if out is not None:
                yield out
        yield converter.last()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,  # noqa: ARG002
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = await self._aprepare(messages, stop, kwargs)
        converter = StreamConverter(call, self.prompt_format, self.backend.name)
        chunks = _retry.astream(
            self._backend(), call.prompt, adapter=call.adapter, params=call.params
        )
        async for chunk in chunks:
            out = converter.feed(chunk)
            if out is not None:
                yield out
        yield converter.last()
