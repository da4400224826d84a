"""In-process backend: one transformers base model, any number of named PEFT LoRA adapters.

This is the embedded default for development, tests and single-machine apps. torch,
transformers and peft are imported inside the functions here only (`import langchain_fspo`
stays light); install them with `pip install "langchain-fspo[local]"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_fspo._quiet import quiet_loading
from langchain_fspo.artifact import adapter_folder, check_base_model_exists, read_adapter_config
from langchain_fspo.backends._local_adapters import attach, check_loadable, peft_name
from langchain_fspo.backends._local_batch import BatchRequest, MicroBatcher, expecting
from langchain_fspo.backends._local_generation import (
    import_stack,
    seeded,
    torch_dtype,
)
from langchain_fspo.backends._local_rows import BatchedGeneration
from langchain_fspo.backends._local_streaming import TokenStreaming
from langchain_fspo.backends.base import Backend, Generation, GenerationParams
from langchain_fspo.errors import AdapterNotFoundError, PromptFormatError

if TYPE_CHECKING:
    from langchain_fspo.prompt_format import RenderedPrompt

__all__ = ["LocalBackend"]

logger = logging.getLogger(__name__)


class LocalBackend(TokenStreaming, BatchedGeneration, Backend):
    """Runs an FSPO adapter in-process with transformers + PEFT.

    One base model is loaded once; LoRA adapters are attached by name and selected per
    call (`adapter=None` runs the base model). PEFT's active adapter is global state, so
    every generation holds a lock from adapter selection to the last token.

    Batching: `generate` / `agenerate` calls that arrive together (threads, coroutines of
    any event loop, `ChatFSPO.batch` / `abatch`) are grouped, up to `max_batch_size`, into
    one left-padded `generate` per adapter and decoding setting; each row keeps its own
    `max_tokens`, stop strings and end of sequence, and greedy results equal one-at-a-time
    calls token for token. A call waits at most `batch_window_s` after the latest arrival
    for others to join (at most 8 times that in all); while a batch runs, new calls queue
    for the next. Seeded sampling runs alone (its seed must reproduce it), and
    `repetition_penalty` or `extra` options (which read the padding) only batch prompts of
    equal length. A cancelled `agenerate` leaves its batch, or stops its row at the next
    token. Streams are not batched.

    How `GenerationParams` reach `model.generate`:

    - `temperature` 0 or None: greedy decoding (`do_sample=False`; `top_p`/`top_k` then
      have no effect and are not passed). Otherwise sampling with `temperature`, `top_p`,
      `top_k`.
    - `seed`: seeds torch's RNG for this call only (`torch.random.fork_rng`).
    - `max_tokens` -> `max_new_tokens` (default: `default_max_tokens`).
    - `stop` -> `stop_strings` (generation stops there) and the text is cut before the
      first stop string, like OpenAI-compatible servers do.
    - `repetition_penalty` -> `repetition_penalty` (transformers' multiplicative penalty).
    - `frequency_penalty` / `presence_penalty`: OpenAI's additive penalties, applied by a
      logits processor over the tokens generated so far (not the prompt, as vLLM does).
    - `extra`: keys that `GenerationConfig` knows (`min_p`, `typical_p`,
      `no_repeat_ngram_size`, ...) are passed to `generate`. `tools`, `tool_choice`,
      `response_format`, `logprobs`, `logit_bias` and `n` cannot be honoured by a plain
      `generate`; they are dropped with a warning.

    Rendering: `style="paper"` prompts are tokenised as raw text with
    `add_special_tokens=False` (no BOS, as the official FSPO code); `style="chat"` prompts go
    through `tokenizer.apply_chat_template(messages, add_generation_prompt=True)`.

    Example:
        ```python
        from langchain_fspo.backends.local import LocalBackend

        backend = LocalBackend.from_adapter_dir("path/to/adapter")  # base from adapter_config
        backend.add_adapter("other", "path/to/other-adapter")
        ```
    """

    name: ClassVar[str] = "local"

    def __init__(
        self,
        base_model: str | Path,
        *,
        adapters: Mapping[str, str | Path] | None = None,
        device: str | None = None,
        dtype: str | None = None,
        revision: str | None = None,
        token: str | None = None,
        default_max_tokens: int = 256,
        model_kwargs: Mapping[str, Any] | None = None,
        max_batch_size: int = 8,
        batch_window_s: float = 0.005,
    ) -> None:
        """Load the base model and tokenizer, then every adapter in `adapters`.

        Args:
            base_model: Hub id or local folder of the base model (and its tokenizer).
            adapters: Adapter name -> folder or Hub repo id of a PEFT LoRA adapter.
            device: torch device; default `cuda` when available, else `cpu`.
            dtype: torch dtype name (`"bfloat16"`, `"float16"`, `"float32"`, `"auto"`);
                default: float32 on CPU, `"auto"` on GPU.
            revision: Revision of `base_model` on the Hub.
            token: Hub token for private base models and adapters.
            default_max_tokens: `max_new_tokens` when a call sets no `max_tokens`.
            model_kwargs: Extra keyword arguments for `AutoModelForCausalLM.from_pretrained`.
            max_batch_size: Most calls run in one batched `generate` (1: no batching).
            batch_window_s: How long a waiting call waits for others to join its batch after
                the latest one arrived (at most 8 times this in all).
        """
        torch, transformers, _ = import_stack()
        self.base_model = str(base_model)
        self.default_max_tokens = default_max_tokens
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = "float32" if self.device == "cpu" else "auto"
        self._lock = threading.RLock()
        self._batcher = MicroBatcher(
            self._run_batch, max_batch_size=max_batch_size, window_s=batch_window_s
        )
        self._adapters: dict[str, str] = {}
        self._peft_names: dict[str, str] = {}
        self._token = token
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            self.base_model, revision=revision, token=token
        )
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        with quiet_loading():
            model = transformers.AutoModelForCausalLM.from_pretrained(
                self.base_model,
                revision=revision,
                token=token,
                dtype=torch_dtype(torch, dtype),
                **dict(model_kwargs or {}),
            )
        model.to(self.device)
        model.eval()
        eos = model.generation_config.eos_token_id
        eos = self.tokenizer.eos_token_id if eos is None else eos
        self._eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
        self._model: Any = model
        self._has_peft = False
        for adapter_name, path in (adapters or {}).items():
            self.add_adapter(adapter_name, path)

    @classmethod
    def from_adapter_dir(
        cls,
        adapter_dir_or_repo: str | Path,
        *,
        name: str | None = None,
        revision: str | None = None,
        **kwargs: Any,
    ) -> LocalBackend:
        """Load the base model named in the adapter's `adapter_config.json`, then the adapter.

        Args:
            adapter_dir_or_repo: Adapter folder or Hub repo id.
            name: Adapter name used in calls; default: the folder or repo name.
            revision: Revision of the adapter repo on the Hub.
            **kwargs: Passed to `LocalBackend(...)` (`device`, `dtype`, ...).
        """
        token = kwargs.get("token")
        config = read_adapter_config(adapter_dir_or_repo, revision, token=token)
        check_base_model_exists(config["base_model_name_or_path"], source=adapter_dir_or_repo)
        folder = adapter_folder(adapter_dir_or_repo, revision, token=token)
        adapter_name = name or Path(str(adapter_dir_or_repo).rstrip("/")).name
        return cls(
            config["base_model_name_or_path"],
            adapters={adapter_name: folder},
            **kwargs,
        )

    # ------------------------------------------------------------------ adapters

    @property
    def adapters(self) -> dict[str, str]:
        """Adapter name -> where it was loaded from."""
        return dict(self._adapters)

    @property
    def max_batch_size(self) -> int:
        """Most calls run in one batched `generate`."""
        return self._batcher.max_batch_size

    @property
    def chat_template(self) -> str | None:
        """The tokenizer's chat template (for `PromptFormat.check_chat_template`)."""
        template = getattr(self.tokenizer, "chat_template", None)
        return template if isinstance(template, str) else None

    def add_adapter(
        self,
        name: str,
        path: str | Path,
        *,
        revision: str | None = None,
        token: str | None = None,
    ) -> None:
        """Attach the LoRA adapter in `path` (folder or Hub repo id) under `name`.

        Any name works (`fspo-v1.2`): PEFT gets a safe internal name for it.

        Raises:
            ValueError: `name` is empty or already used.
            AdapterNotFoundError: The folder lacks a file, holds pickled weights only, or
                PEFT cannot load it (the message names the file and the fix).
        """
        import_stack()
        if not name or not isinstance(name, str):
            msg = f"Adapter names must be non-empty strings, got {name!r}."
            raise ValueError(msg)
        folder = adapter_folder(path, revision, token=token or self._token)
        check_loadable(folder)
        with self._lock:
            if name in self._adapters:
                msg = (
                    f"An adapter named {name!r} is already loaded (from "
                    f"{self._adapters[name]}); pick another name."
                )
                raise ValueError(msg)
            internal = peft_name(name, self._peft_names.values())
            self._model = attach(self._model, folder, internal, first=not self._has_peft)
            self._has_peft = True
            self._model.eval()
            self._adapters[name] = str(folder)
            self._peft_names[name] = internal
        logger.info("Loaded adapter %r from %s", name, folder)

    def expecting(self, calls: int) -> contextlib.AbstractContextManager[None]:
        """Announce `calls` calls made in this context (threads and tasks inherit it).

        The batch they join waits until all of them arrived (at most 0.25 s), instead of the
        short window for unannounced calls. `ChatFSPO.batch` / `abatch` use it.
        """
        return expecting(calls)

    def check_adapter(self, adapter: str | None) -> None:
        """Raise `AdapterNotFoundError` unless `adapter` is None or a loaded adapter."""
        if adapter is not None and adapter not in self._adapters:
            loaded = sorted(self._adapters) or "none"
            msg = (
                f"Adapter {adapter!r} is not loaded in this LocalBackend (loaded: {loaded}). "
                "Load it with backend.add_adapter(name, path), or pass model=None for the "
                "base model."
            )
            raise AdapterNotFoundError(msg)

    # ------------------------------------------------------------------ tokens

    def count_tokens(self, text: str) -> int:
        """Tokens in `text`, without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, prompt: RenderedPrompt) -> list[int]:
        """The token ids the model reads for `prompt` (see the class docstring)."""
        if prompt.style == "paper":
            return list(self.tokenizer(prompt.text, add_special_tokens=False)["input_ids"])
        if self.chat_template is None:
            msg = (
                f"The tokenizer of {self.base_model!r} has no chat template, so a "
                "style='chat' prompt cannot be rendered. Serve a style='paper' adapter, or "
                "load a base model whose tokenizer has the template the adapter was trained "
                "with."
            )
            raise PromptFormatError(msg)
        encoded = self.tokenizer.apply_chat_template(
            prompt.messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"])

    # ------------------------------------------------------------------ generation

    def _run_generate(self, input_ids: Any, attention_mask: Any, kwargs: dict[str, Any]) -> Any:
        """Call `model.generate`; the one place the model runs (tests record it here)."""
        return self._model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def _model_name(self, adapter: str | None) -> str:
        return adapter if adapter is not None else self.base_model

    def _generate_locked(
        self,
        input_ids: Any,
        attention_mask: Any,
        adapter: str | None,
        seed: int | None,
        kwargs: dict[str, Any],
    ) -> Any:
        """Select `adapter` and run `generate` under the lock; returns generate's output."""
        torch, _, _ = import_stack()
        with self._lock, torch.inference_mode(), seeded(torch, self.device, seed):
            if adapter is None and self._has_peft:
                with self._model.disable_adapter():
                    return self._run_generate(input_ids, attention_mask, kwargs)
            if adapter is not None:
                self._model.set_adapter(self._peft_names[adapter])
            return self._run_generate(input_ids, attention_mask, kwargs)

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _max_new(self, params: GenerationParams) -> int:
        return params.max_tokens if params.max_tokens is not None else self.default_max_tokens

    def generate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Complete `prompt` with `adapter` (None: the base model).

        Calls from several threads at once are batched (see the class docstring).
        """
        self.check_adapter(adapter)
        request = BatchRequest(prompt, adapter, params)
        request.prompt_ids = self.encode_prompt(prompt)  # here: threads encode in parallel
        try:
            return self._batcher.submit(request).result()
        finally:
            request.cancel.set()  # a no-op once answered; stops the row if interrupted

    async def agenerate(
        self, prompt: RenderedPrompt, *, adapter: str | None, params: GenerationParams
    ) -> Generation:
        """Async `generate`: concurrent calls (any event loop) are batched together.

        Cancelling the call (e.g. a timeout) drops it from its batch, or, when its batch
        already runs, stops its row at the next token.
        """
        self.check_adapter(adapter)
        request = BatchRequest(prompt, adapter, params)
        try:
            return await asyncio.wrap_future(self._batcher.submit(request))
        finally:
            request.cancel.set()
