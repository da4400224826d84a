"""`ChatFSPO`: a LangChain chat model that answers each user the way they prefer.

It reads the user's stored preference examples from a memory, renders them with the
adapter's `PromptFormat` (the contract saved beside the adapter), and sends the prompt to a
`Backend` (in-process transformers + PEFT, TGI, an OpenAI-compatible server) with the FSPO
LoRA adapter selected per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ToolCall,
    ToolCallChunk,
    UsageMetadata,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, SecretStr, model_validator

from langchain_fspo._messages import split_messages, to_chat_turn
from langchain_fspo._streaming import CompletionStreamParser
from langchain_fspo.backends.base import Backend, Generation, GenerationChunk, GenerationParams
from langchain_fspo.errors import InferenceServerError, PromptFormatError
from langchain_fspo.examples import PreferenceExample
from langchain_fspo.prompt_format import ParsedCompletion, PromptFormat, RenderedPrompt, neutralize

if TYPE_CHECKING:
    from langchain_fspo.collect import Comparison

__all__ = ["ChatFSPO", "ShotSource"]

logger = logging.getLogger(__name__)

_GENERATION_FIELDS = (
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
)
_CONTROL_KWARGS = frozenset({"user_id", "model", "model_name", "stream"})


_SERVER_FIELDS = ("base_url", "api_key", "adapters", "timeout", "max_retries")
"""`ChatFSPO` fields that configure a server backend built from `base_url`."""


def _server_backend(kind: str, values: Mapping[str, Any]) -> Backend:
    """Build the `kind` server backend from `ChatFSPO` constructor values."""
    from langchain_fspo.backends.factory import make_backend

    if not values.get("base_url"):
        msg = (
            f"backend={kind!r} needs `base_url`, the server's URL "
            "(e.g. ChatFSPO(backend='tgi', base_url='http://localhost:8080', ...))."
        )
        raise ValueError(msg)
    kwargs = {k: values[k] for k in _SERVER_FIELDS if values.get(k) is not None}
    if isinstance(kwargs.get("api_key"), SecretStr):
        kwargs["api_key"] = kwargs["api_key"].get_secret_value()
    return make_backend(kind, **kwargs)


def _missing_backend() -> Backend:
    msg = (
        "ChatFSPO needs a backend: `backend=` (e.g. LocalBackend(...)), or `base_url=` of a "
        "TGI server (add backend='openai' for vLLM/SGLang), or ChatFSPO.from_pretrained(...)."
    )
    raise ValueError(msg)


def _own_timeout(backend: Backend) -> bool:
    """Whether the backend applies a timeout per HTTP attempt itself (TGI, OpenAI-compatible)."""
    return isinstance(getattr(backend, "timeout", None), int | float)


def _same_model(a: str, b: str) -> bool:
    """Same Hub id or same local folder (paths compared after resolving)."""
    if a.rstrip("/") == b.rstrip("/"):
        return True
    path_a, path_b = Path(a).expanduser(), Path(b).expanduser()
    return path_a.exists() and path_b.exists() and path_a.resolve() == path_b.resolve()


@runtime_checkable
class ShotSource(Protocol):
    """Where `ChatFSPO` reads a user's examples: `PreferenceMemory`, or anything alike."""

    def select(
        self, user_id: str, query: str | None = None, k: int = 8, strategy: Any = "recent"
    ) -> list[PreferenceExample]:
        """Up to `k` of the user's examples, oldest first ([] for an unknown user)."""
        ...

    async def aselect(
        self, user_id: str, query: str | None = None, k: int = 8, strategy: Any = "recent"
    ) -> list[PreferenceExample]:
        """Async `select`."""
        ...


@dataclass(frozen=True)
class _Call:
    """Everything one model call needs, resolved from fields, kwargs and config."""

    user_id: str | None
    adapter: str | None
    params: GenerationParams
    prompt: RenderedPrompt


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

        from fspo_train.tiny import build_tiny_adapter, build_tiny_base_model

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
        timeout, max_retries: per-attempt timeout and retries of failed backend calls.

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

    backend: Backend = Field(default_factory=_missing_backend)
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
    timeout: float | None = None
    """Seconds one `invoke`/`ainvoke` backend attempt may take (None: no limit). Streams are
    not cut by it; configure the server backend's own client timeout for those."""
    max_retries: int = Field(default=2, ge=0)
    """Retries, with exponential backoff, of a backend call that failed with
    `InferenceServerError` (a stream is retried only before its first chunk)."""
    streaming: bool = False
    """Whether `invoke` streams under the hood (for callbacks)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra parameters for the backend (`GenerationParams.extra`)."""
    base_url: str | None = None
    """URL of a TGI or OpenAI-compatible server. Given without a `backend` (or with a backend
    kind such as `"tgi"` or `"openai"`), the server backend is built from it (TGI by default)
    with `api_key`, `adapters`, `timeout` and `max_retries`."""
    api_key: SecretStr | None = None
    """Bearer token for a server backend built from `base_url` (default: the backend's own
    environment variable, `HF_TOKEN` for TGI, `OPENAI_API_KEY` for OpenAI-compatible)."""
    adapters: list[str] | None = None
    """Adapter ids the server serves (TGI's `LORA_ADAPTERS`) for a backend built from
    `base_url`: others raise `AdapterNotFoundError` instead of silently getting the base
    model (TGI's behaviour for an unknown adapter id)."""

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
        return {**values, "backend": _server_backend(kind, values)}

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
        from langchain_fspo.backends.factory import backend_for_adapter
        from langchain_fspo.backends.local import adapter_folder, read_adapter_config

        fmt = PromptFormat.from_pretrained(adapter_dir_or_repo, revision=revision, token=token)
        adapter_config = read_adapter_config(adapter_dir_or_repo, revision, token=token)
        base_model = str(adapter_config["base_model_name_or_path"])
        if fmt.base_model_id is not None and not _same_model(fmt.base_model_id, base_model):
            msg = (
                f"{adapter_dir_or_repo}: fspo_format.json says the adapter was trained on "
                f"{fmt.base_model_id!r}, but adapter_config.json names {base_model!r} as its "
                "base model. Republish the adapter with matching files."
            )
            raise PromptFormatError(msg)
        if kwargs.get("base_url") is not None and isinstance(backend, str):
            backend = "tgi" if backend == "local" else backend
            server = {k: kwargs[k] for k in _SERVER_FIELDS if kwargs.get(k) is not None}
            backend_kwargs = {**server, **(backend_kwargs or {})}
            if isinstance(backend_kwargs.get("api_key"), SecretStr):
                backend_kwargs["api_key"] = backend_kwargs["api_key"].get_secret_value()
        local = Path(adapter_dir_or_repo).expanduser()
        name = (
            adapter_name
            or kwargs.pop("model", None)
            or kwargs.pop("model_name", None)
            or (local.resolve().name if local.is_dir() else str(adapter_dir_or_repo))
        )
        if isinstance(backend, Backend):
            built = backend
            add = getattr(built, "add_adapter", None)
            loaded = getattr(built, "adapters", None)
            if callable(add) and isinstance(loaded, dict) and name not in loaded:
                add(name, adapter_folder(adapter_dir_or_repo, revision, token=token))
        elif backend == "local":
            # The weights at the same revision as the format, with the same token.
            built = backend_for_adapter(
                backend,
                adapter_folder(adapter_dir_or_repo, revision, token=token),
                adapter_name=name,
                base_model=base_model,
                **({"token": token} if token else {}),
                **(backend_kwargs or {}),
            )
        else:
            built = backend_for_adapter(
                backend,
                adapter_dir_or_repo,
                adapter_name=name,
                base_model=base_model,
                **(backend_kwargs or {}),
            )
        built.check_adapter(name)
        template = getattr(built, "chat_template", None)
        if check_chat_template and isinstance(template, str):
            fmt.check_chat_template(template)
        return cls(backend=built, prompt_format=fmt, model=name, memory=memory, **kwargs)

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
        params = {name: getattr(self, name) for name in _GENERATION_FIELDS}
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

    # The user id in `config["configurable"]` does not reach `_generate` on its own (LangChain
    # passes only callbacks, tags and metadata down), so the entry points that receive the
    # config turn it into the `user_id` keyword. `batch`/`abatch` go through these too.

    @staticmethod
    def _user_kwargs(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("user_id") is not None:
            return kwargs
        configured = (ensure_config(config).get("configurable") or {}).get("user_id")
        return {**kwargs, "user_id": configured} if configured is not None else kwargs

    def invoke(
        self,
        input: LanguageModelInput,  # noqa: A002 - LangChain's signature
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Answer `input` for the resolved user (see the class docstring)."""
        return super().invoke(input, config, stop=stop, **self._user_kwargs(config, kwargs))

    async def ainvoke(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Async `invoke`."""
        return await super().ainvoke(input, config, stop=stop, **self._user_kwargs(config, kwargs))

    def stream(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the answer token by token; the last chunk carries metadata and usage."""
        yield from super().stream(input, config, stop=stop, **self._user_kwargs(config, kwargs))

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
            input, config, stop=stop, **self._user_kwargs(config, kwargs)
        ):
            yield chunk

    # ------------------------------------------------------------------ prompt building

    def _resolve_user(
        self, user_id: str | None, config: RunnableConfig | None = None
    ) -> str | None:
        """The call's user: the keyword, then `config` (or the ambient config), then the field."""
        if user_id is not None:
            return user_id
        configured = (ensure_config(config).get("configurable") or {}).get("user_id")
        if configured is not None:
            return str(configured)
        return self.user_id

    def _to_messages(
        self, messages: LanguageModelInput | Sequence[BaseMessage]
    ) -> list[BaseMessage]:
        if isinstance(messages, list) and all(isinstance(m, BaseMessage) for m in messages):
            return messages
        return self._convert_input(messages).to_messages()

    def _select(self, user_id: str | None, query: str) -> list[PreferenceExample]:
        k = self.prompt_format.num_shots
        if self.memory is None or user_id is None or k == 0:
            return []
        return list(self.memory.select(user_id, query=query, k=k, strategy=self.shot_strategy))

    async def _aselect(self, user_id: str | None, query: str) -> list[PreferenceExample]:
        k = self.prompt_format.num_shots
        if self.memory is None or user_id is None or k == 0:
            return []
        shots = await self.memory.aselect(user_id, query=query, k=k, strategy=self.shot_strategy)
        return list(shots)

    def _render(
        self, messages: list[BaseMessage], shots: list[PreferenceExample]
    ) -> RenderedPrompt:
        """Render the FSPO prompt for `messages` with `shots` (see `_messages` for the rules)."""
        fmt = self.prompt_format
        split = split_messages(messages)
        turns: list[dict[str, Any]] = []
        systems: list[str] = []
        if fmt.style == "chat":
            systems = [neutralize(s, fmt.special_tokens) for s in split.systems]
            turns = [to_chat_turn(m, fmt.special_tokens) for m in split.before]
            after = [to_chat_turn(m, fmt.special_tokens) for m in split.after]
        else:
            after = []
            if split.systems or split.before or split.after:
                logger.debug(
                    "style='paper' uses only the last human message; %d other message(s) "
                    "were left out.",
                    len(split.systems) + len(split.before) + len(split.after),
                )
        count_tokens = self._token_counter(systems, [*turns, *after])
        rendered = fmt.render(shots, split.query, count_tokens=count_tokens)
        if fmt.style == "paper":
            return rendered
        system_texts = ([fmt.system_prompt] if fmt.system_prompt else []) + systems
        head = [{"role": "system", "content": "\n\n".join(system_texts)}] if system_texts else []
        fspo_message = {"role": "user", "content": rendered.text}
        return replace(rendered, messages=[*head, *turns, fspo_message, *after])

    def _token_counter(
        self, systems: list[str], turns: list[dict[str, Any]]
    ) -> Callable[[str], int] | None:
        """A counter for the token budget that also counts the kept turns and system text."""
        if self.prompt_format.max_prompt_tokens is None:
            return None
        count = self.backend.count_tokens
        if count("") is None:
            logger.warning(
                "`max_prompt_tokens` is set but the %s backend cannot count tokens; the "
                "budget is not enforced.",
                self.backend.name,
            )
            return None
        others = [*systems, *(str(t["content"]) for t in turns)]
        fixed = sum(count(text) or 0 for text in others)

        def counter(text: str) -> int:
            return (count(text) or 0) + fixed

        return counter

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
        msgs = self._to_messages(messages)
        user = self._resolve_user(user_id, config)
        query = split_messages(msgs).query
        return self._render(msgs, self._select(user, query))

    async def abuild_prompt(
        self,
        messages: LanguageModelInput | Sequence[BaseMessage],
        *,
        user_id: str | None = None,
        config: RunnableConfig | None = None,
    ) -> RenderedPrompt:
        """Async `build_prompt` (the memory is read with `aselect`)."""
        msgs = self._to_messages(messages)
        user = self._resolve_user(user_id, config)
        query = split_messages(msgs).query
        return self._render(msgs, await self._aselect(user, query))

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

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> GenerationParams:
        """Fields, overridden by the call's kwargs; unknown kwargs go to `extra`."""
        values = {name: kwargs.get(name, getattr(self, name)) for name in _GENERATION_FIELDS}
        stop_sequences = stop if stop is not None else kwargs.get("stop", self.stop)
        extra = dict(self.model_kwargs)
        extra.update(
            {
                k: v
                for k, v in kwargs.items()
                if k not in _GENERATION_FIELDS and k not in _CONTROL_KWARGS and k != "stop"
            }
        )
        return GenerationParams(
            stop=list(stop_sequences) if stop_sequences else None, extra=extra, **values
        )

    def _call_parts(
        self, stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[str | None, str | None, GenerationParams]:
        user = self._resolve_user(kwargs.get("user_id"))
        adapter = kwargs.get("model", kwargs.get("model_name", self.model_name))
        return user, adapter, self._params(stop, kwargs)

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _Call:
        user, adapter, params = self._call_parts(stop, kwargs)
        query = split_messages(messages).query
        return _Call(user, adapter, params, self._render(messages, self._select(user, query)))

    async def _aprepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _Call:
        user, adapter, params = self._call_parts(stop, kwargs)
        query = split_messages(messages).query
        shots = await self._aselect(user, query)
        return _Call(user, adapter, params, self._render(messages, shots))

    def _metadata(
        self,
        call: _Call,
        parsed: ParsedCompletion,
        finish_reason: str | None,
        model_name: str | None,
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "model_name": call.adapter or model_name or self.prompt_format.base_model_id,
            "adapter": call.adapter,
            "user_id": call.user_id,
            "example_ids": call.prompt.example_ids,
            "num_shots": len(call.prompt.shots),
            "dropped_shots": call.prompt.dropped,
            "prompt_style": call.prompt.style,
            "finish_reason": finish_reason,
            "backend": self.backend.name,
        }
        if parsed.user_description is not None:
            metadata["user_description"] = parsed.user_description
        return metadata

    @staticmethod
    def _usage(
        input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None = None
    ) -> UsageMetadata | None:
        if input_tokens is None or output_tokens is None:
            return None
        usage = UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
        if cached_tokens is not None:
            usage["input_token_details"] = {"cache_read": cached_tokens}
        return usage

    def _result(self, call: _Call, generation: Generation) -> ChatResult:
        parsed = self.prompt_format.parse_completion(generation.text)
        metadata = self._metadata(call, parsed, generation.finish_reason, generation.model_name)
        if generation.token_ids is not None:
            metadata["token_ids"] = generation.token_ids
        message = AIMessage(
            content=parsed.response,
            response_metadata=metadata,
            usage_metadata=self._usage(
                generation.input_tokens, generation.output_tokens, generation.cached_tokens
            ),
            tool_calls=[
                ToolCall(name=c["name"], args=c["args"], id=c.get("id"))
                for c in generation.tool_calls
            ],
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _backoff(self, attempt: int, error: Exception) -> float:
        delay = min(0.5 * 2.0**attempt, 8.0)
        logger.warning(
            "Backend %s failed (%s); retry %d/%d in %.1fs.",
            self.backend.name,
            error,
            attempt + 1,
            self.max_retries,
            delay,
        )
        return delay

    def _backend_generate(self, call: _Call) -> Generation:
        for attempt in range(self.max_retries + 1):
            try:
                if self.timeout is None or _own_timeout(self.backend):
                    return self.backend.generate(
                        call.prompt, adapter=call.adapter, params=call.params
                    )
                return self._generate_with_timeout(call, self.timeout)
            except InferenceServerError as e:
                if attempt == self.max_retries or e.retryable is False:
                    raise
                time.sleep(self._backoff(attempt, e))
        msg = "unreachable"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover

    def _generate_with_timeout(self, call: _Call, timeout: float) -> Generation:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fspo-timeout")
        try:
            future = pool.submit(
                self.backend.generate, call.prompt, adapter=call.adapter, params=call.params
            )
            return future.result(timeout=timeout)
        except FutureTimeoutError as e:
            msg = (
                f"The {self.backend.name} backend did not answer within {timeout}s for adapter "
                f"{call.adapter!r}; raise `timeout` or check the server."
            )
            raise InferenceServerError(msg) from e
        finally:
            pool.shutdown(wait=False)

    async def _abackend_generate(self, call: _Call) -> Generation:
        for attempt in range(self.max_retries + 1):
            try:
                request = self.backend.agenerate(
                    call.prompt, adapter=call.adapter, params=call.params
                )
                if self.timeout is None or _own_timeout(self.backend):
                    return await request
                return await asyncio.wait_for(request, self.timeout)
            except TimeoutError as e:
                msg = (
                    f"The {self.backend.name} backend did not answer within {self.timeout}s for "
                    f"adapter {call.adapter!r}; raise `timeout` or check the server."
                )
                error = InferenceServerError(msg)
                if attempt == self.max_retries:
                    raise error from e
                await asyncio.sleep(self._backoff(attempt, error))
            except InferenceServerError as e:
                if attempt == self.max_retries or e.retryable is False:
                    raise
                await asyncio.sleep(self._backoff(attempt, e))
        msg = "unreachable"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,  # noqa: ARG002 - core streams tokens
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs)
        return self._result(call, self._backend_generate(call))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,  # noqa: ARG002
        **kwargs: Any,
    ) -> ChatResult:
        call = await self._aprepare(messages, stop, kwargs)
        return self._result(call, await self._abackend_generate(call))

    @staticmethod
    def _chunks(
        parser: CompletionStreamParser,
        chunk: GenerationChunk,
        state: dict[str, Any],
    ) -> ChatGenerationChunk | None:
        for key in (
            "finish_reason",
            "input_tokens",
            "output_tokens",
            "model_name",
            "cached_tokens",
        ):
            value = getattr(chunk, key)
            if value is not None:
                state[key] = value
        piece = parser.feed(chunk.text)
        tool_chunks = [
            ToolCallChunk(
                name=c.get("name"), args=c.get("args"), id=c.get("id"), index=c.get("index")
            )
            for c in chunk.tool_call_chunks
        ]
        if not piece and not tool_chunks:
            return None
        return ChatGenerationChunk(
            message=AIMessageChunk(content=piece, tool_call_chunks=tool_chunks)
        )

    def _last_chunk(
        self, call: _Call, parser: CompletionStreamParser, state: dict[str, Any]
    ) -> ChatGenerationChunk:
        tail, parsed = parser.finish()
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=tail,
                response_metadata=self._metadata(
                    call, parsed, state.get("finish_reason"), state.get("model_name")
                ),
                usage_metadata=self._usage(
                    state.get("input_tokens"),
                    state.get("output_tokens"),
                    state.get("cached_tokens"),
                ),
                chunk_position="last",
            )
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,  # noqa: ARG002 - core calls it
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs)
        parser = CompletionStreamParser(self.prompt_format)
        state: dict[str, Any] = {}
        for attempt in range(self.max_retries + 1):
            started = False
            try:
                for chunk in self.backend.stream(
                    call.prompt, adapter=call.adapter, params=call.params
                ):
                    started = True
                    out = self._chunks(parser, chunk, state)
                    if out is not None:
                        yield out
                break
            except InferenceServerError as e:
                if started or attempt == self.max_retries or e.retryable is False:
                    raise
                time.sleep(self._backoff(attempt, e))
        yield self._last_chunk(call, parser, state)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,  # noqa: ARG002
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = await self._aprepare(messages, stop, kwargs)
        parser = CompletionStreamParser(self.prompt_format)
        state: dict[str, Any] = {}
        for attempt in range(self.max_retries + 1):
            started = False
            try:
                async for chunk in self.backend.astream(
                    call.prompt, adapter=call.adapter, params=call.params
                ):
                    started = True
                    out = self._chunks(parser, chunk, state)
                    if out is not None:
                        yield out
                break
            except InferenceServerError as e:
                if started or attempt == self.max_retries or e.retryable is False:
                    raise
                await asyncio.sleep(self._backoff(attempt, e))
        yield self._last_chunk(call, parser, state)
