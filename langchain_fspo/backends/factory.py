"""Build a `Backend` from a short name (`"local"`, `"tgi"`, `"openai"`), lazily.

Backends are registered as `"module:Class"` strings so that naming one imports nothing until
it is built (the local backend's torch stays unimported for apps that use a server).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_fspo.backends.base import Backend

__all__ = ["available_backends", "backend_for_adapter", "make_backend", "register_backend"]

_BACKENDS: dict[str, str | Callable[..., Backend]] = {
    "local": "langchain_fspo.backends.local:LocalBackend",
    "tgi": "langchain_fspo.backends.tgi:TGIBackend",
    "openai": "langchain_fspo.backends.openai_compat:OpenAICompatibleBackend",
}


def register_backend(kind: str, factory: str | Callable[..., Backend]) -> None:
    """Make `make_backend(kind, ...)` call `factory(...)`.

    Args:
        kind: Short name, e.g. `"my-server"`.
        factory: A callable returning a `Backend`, or a `"module:attribute"` string naming one
            (imported on first use).
    """
    _BACKENDS[kind] = factory


def available_backends() -> list[str]:
    """Names accepted by `make_backend`."""
    return sorted(_BACKENDS)


def _resolve(kind: str) -> Callable[..., Backend]:
    try:
        target = _BACKENDS[kind]
    except KeyError:
        msg = f"Unknown backend {kind!r}; choose one of {available_backends()}."
        raise ValueError(msg) from None
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    factory: Callable[..., Backend] = getattr(importlib.import_module(module_name), attribute)
    return factory


def make_backend(kind: str, /, **kwargs: Any) -> Backend:
    """Build the backend registered as `kind` with `kwargs`.

    Example:
        ```python
        backend = make_backend("local", base_model="path/to/base", adapters={"a": "path/to/a"})
        ```

    Raises:
        ValueError: `kind` is not registered.
    """
    backend: object = _resolve(kind)(**kwargs)
    if not isinstance(backend, Backend):
        msg = f"The {kind!r} backend factory returned {type(backend).__name__}, not a Backend."
        raise TypeError(msg)
    return backend


def backend_for_adapter(
    kind: str,
    adapter_dir: str | Path,
    *,
    adapter_name: str,
    base_model: str,
    **kwargs: Any,
) -> Backend:
    """Build a backend that serves the adapter in `adapter_dir` under `adapter_name`.

    The in-process `"local"` backend loads `base_model` and attaches the adapter. Server
    backends (`"tgi"`, `"openai"`) get only `kwargs` (URL, timeouts, ...): the server loaded
    the adapter at startup, and `Backend.check_adapter` verifies it is served.
    """
    if kind == "local":
        return make_backend(
            "local", base_model=base_model, adapters={adapter_name: adapter_dir}, **kwargs
        )
    return make_backend(kind, **kwargs)
