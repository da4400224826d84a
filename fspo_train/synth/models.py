"""Model specs: any LangChain chat model can be generator, labeller or refiner.

A spec is one of:

- an `init_chat_model` string, `provider:model` (`openai:gpt-4o-mini`,
  `anthropic:claude-sonnet-4-5`, `huggingface:...`); credentials come from the provider's usual
  environment variables;
- `provider:model@http://host:port/v1`: the same, pointed at an OpenAI-compatible server (vLLM,
  SGLang, TGI's `/v1`, llama.cpp); the API key is `OPENAI_API_KEY` if set, otherwise `EMPTY`;
- `factory:package.module:callable`: a function returning a `BaseChatModel`, called with
  `temperature=` when one is given (for providers `init_chat_model` does not know);
- `offline`: `fspo_train.synth.offline.OfflineChatModel`, rule-based placeholder answers with
  no model and no network, to try the pipeline.

The Python API also accepts `BaseChatModel` instances directly.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from langchain_core.language_models import BaseChatModel

from fspo_train.synth.errors import SynthConfigError
from fspo_train.synth.offline import OFFLINE_SPEC, OfflineChatModel

__all__ = ["ModelLike", "load_chat_model", "model_name"]

ModelLike = BaseChatModel | str

_CLIENT_RETRIES = frozenset({"openai", "azure_openai", "anthropic"})
"""Providers whose LangChain class retries requests itself (`max_retries`, default 2)."""


def model_name(model: ModelLike) -> str:
    """A stable, secret-free name for provenance: the spec, or the instance's model name."""
    if isinstance(model, str):
        return model
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return f"{model._llm_type}:{value}"  # noqa: SLF001 - LangChain's public-by-convention id
    return model._llm_type  # noqa: SLF001


def load_chat_model(spec: ModelLike, *, temperature: float | None = None) -> BaseChatModel:
    """Build a chat model from a spec (see the module docstring); instances pass through.

    Example:
        >>> m = load_chat_model("openai:my-model@http://127.0.0.1:8000/v1", temperature=1.0)
        >>> type(m).__name__, m.openai_api_base  # doctest: +SKIP
        ('ChatOpenAI', 'http://127.0.0.1:8000/v1')

    Raises:
        SynthConfigError: a malformed spec, an unknown provider or a missing integration package.
    """
    if isinstance(spec, BaseChatModel):
        return spec
    kwargs: dict[str, Any] = {}
    if temperature is not None:
        kwargs["temperature"] = temperature
    if spec == OFFLINE_SPEC:
        return OfflineChatModel(**kwargs)
    if spec.startswith("factory:"):
        return _from_factory(spec, kwargs)
    model, sep, base_url = spec.partition("@")
    if ":" not in model:
        msg = (
            f"Model spec {spec!r} needs a provider prefix, e.g. 'openai:gpt-4o-mini', "
            "'openai:<served-name>@http://127.0.0.1:8000/v1', 'factory:pkg.module:function' "
            "or 'offline'."
        )
        raise SynthConfigError(msg)
    if sep:
        if not base_url.startswith(("http://", "https://")):
            msg = f"Model spec {spec!r}: the part after '@' must be an http(s) base URL."
            raise SynthConfigError(msg)
        kwargs["base_url"] = base_url
        kwargs["api_key"] = os.environ.get("OPENAI_API_KEY", "EMPTY")
        if model.startswith("openai:"):
            kwargs["http_async_client"] = _fresh_async_client()
    if model.split(":", 1)[0] in _CLIENT_RETRIES:
        # The runner retries with backoff (`--max-retries`); the client must not retry too,
        # or a failed request is sent 3x more often than the count says.
        kwargs.setdefault("max_retries", 0)
    from langchain.chat_models import init_chat_model

    try:
        built = init_chat_model(model, **kwargs)
    except (ImportError, ValueError) as e:
        msg = f"Cannot build chat model {spec!r}: {e}"
        raise SynthConfigError(msg) from e
    except Exception as e:  # a provider client's own error, e.g. no API key in the environment
        msg = (
            f"Cannot build chat model {spec!r}: {type(e).__name__}: {e} Set the provider's API "
            "key (e.g. OPENAI_API_KEY), point the spec at a local OpenAI-compatible server "
            "('openai:NAME@http://127.0.0.1:8000/v1'), or use 'offline' to try the pipeline."
        )
        raise SynthConfigError(msg) from e
    if not isinstance(built, BaseChatModel):  # pragma: no cover - only without a model name
        msg = f"Model spec {spec!r} did not give a chat model."
        raise SynthConfigError(msg)
    return built


def _fresh_async_client() -> Any:
    """A new async HTTP client for `ChatOpenAI`.

    `langchain-openai` caches one default async client per base URL for the whole process; its
    pooled connections belong to the event loop that opened them, so a second `run_synth` (a new
    `asyncio.run`) in the same process would reuse dead connections and fail requests.
    """
    import openai

    return openai.DefaultAsyncHttpxClient()


def _from_factory(spec: str, kwargs: dict[str, Any]) -> BaseChatModel:
    target = spec.removeprefix("factory:")
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        msg = f"Factory spec {spec!r} must look like 'factory:package.module:callable'."
        raise SynthConfigError(msg)
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        msg = f"Cannot import {attr!r} from {module_name!r} for model spec {spec!r}: {e}"
        raise SynthConfigError(msg) from e
    built = factory(**kwargs)
    if not isinstance(built, BaseChatModel):
        msg = f"Factory {target!r} returned {type(built).__name__}, not a BaseChatModel."
        raise SynthConfigError(msg)
    return built
