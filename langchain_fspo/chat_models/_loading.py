"""How `ChatFSPO` gets its backend: from `base_url=` fields, or from a published adapter.

`ChatFSPO.from_pretrained` reads the adapter's contract through `langchain_fspo.artifact`
(`fspo_format.json`, the base model in `adapter_config.json`, the base-model check), builds
or completes the backend, checks that it serves the adapter, and checks the chat template.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from langchain_fspo.artifact import (
    adapter_folder,
    check_base_model,
    check_base_model_exists,
    read_adapter_config,
)
from langchain_fspo.backends.base import Backend
from langchain_fspo.prompt_format import PromptFormat

__all__ = ["SERVER_FIELDS", "load_pretrained", "missing_backend", "server_backend"]

SERVER_FIELDS = ("base_url", "api_key", "adapters", "timeout", "max_retries")
"""`ChatFSPO` fields that configure a server backend built from `base_url`."""


def _server_kwargs(values: Mapping[str, Any]) -> dict[str, Any]:
    """The server backend's keyword arguments among `ChatFSPO` values (secrets unwrapped)."""
    kwargs = {k: values[k] for k in SERVER_FIELDS if values.get(k) is not None}
    if isinstance(kwargs.get("api_key"), SecretStr):
        kwargs["api_key"] = kwargs["api_key"].get_secret_value()
    return kwargs


def server_backend(kind: str, values: Mapping[str, Any]) -> Backend:
    """Build the `kind` server backend from `ChatFSPO` constructor values."""
    from langchain_fspo.backends.factory import make_backend

    if not values.get("base_url"):
        msg = (
            f"backend={kind!r} needs `base_url`, the server's URL "
            "(e.g. ChatFSPO(backend='tgi', base_url='http://localhost:8080', ...))."
        )
        raise ValueError(msg)
    return make_backend(kind, **_server_kwargs(values))


def missing_backend() -> Backend:
    """`ChatFSPO.backend`'s default: raise, saying how to give one."""
    msg = (
        "ChatFSPO needs a backend: `backend=` (e.g. LocalBackend(...)), or `base_url=` of a "
        "TGI server (add backend='openai' for vLLM/SGLang), or ChatFSPO.from_pretrained(...)."
    )
    raise ValueError(msg)


def load_pretrained(
    adapter_dir_or_repo: str | Path,
    *,
    backend: str | Backend,
    adapter_name: str | None,
    revision: str | None,
    token: str | None,
    backend_kwargs: dict[str, Any] | None,
    check_chat_template: bool,
    fields: dict[str, Any],
) -> tuple[Backend, PromptFormat, str]:
    """The backend, prompt format and adapter name of `ChatFSPO.from_pretrained`.

    `fields` are the other `ChatFSPO` fields given; `model` / `model_name` are taken out of
    them when they name the adapter.
    """
    from langchain_fspo.backends.factory import backend_for_adapter

    fmt = PromptFormat.from_pretrained(adapter_dir_or_repo, revision=revision, token=token)
    adapter_config = read_adapter_config(adapter_dir_or_repo, revision, token=token)
    base_model = str(adapter_config["base_model_name_or_path"])
    check_base_model(fmt.base_model_id, base_model, source=adapter_dir_or_repo)
    if fields.get("base_url") is not None and isinstance(backend, str):
        backend = "tgi" if backend == "local" else backend
        backend_kwargs = {**_server_kwargs(fields), **(backend_kwargs or {})}
        if isinstance(backend_kwargs.get("api_key"), SecretStr):
            backend_kwargs["api_key"] = backend_kwargs["api_key"].get_secret_value()
    local = Path(adapter_dir_or_repo).expanduser()
    name = (
        adapter_name
        or fields.pop("model", None)
        or fields.pop("model_name", None)
        or (local.resolve().name if local.is_dir() else str(adapter_dir_or_repo))
    )
    if isinstance(backend, Backend):
        built = backend
        add = getattr(built, "add_adapter", None)
        loaded = getattr(built, "adapters", None)
        if callable(add) and isinstance(loaded, dict) and name not in loaded:
            add(name, adapter_folder(adapter_dir_or_repo, revision, token=token))
    elif backend == "local":
        check_base_model_exists(base_model, source=adapter_dir_or_repo)
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
    return built, fmt, name
