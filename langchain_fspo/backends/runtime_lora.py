"""Load and unload LoRA adapters in a running vLLM server, without a restart.

vLLM exposes `POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter` when it is started
with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`. A new adapter version is deployed by loading it
under a new name (and selecting it with `model=`), or under the same name with
`replace=True` (vLLM's `load_inplace`). `OpenAICompatibleBackend.load_adapter` and
`unload_adapter` call these functions.

vLLM's answers, mapped to typed errors: 404 for a path it cannot find (`AdapterNotFoundError`);
404 for the route itself when runtime loading is off, 400 for a name already loaded, and 500
for an adapter its LoRA manager refuses (rank above `--max-lora-rank`, `modules_to_save`,
DoRA, ...): `AdapterLoadError` with the server's reason and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from langchain_fspo.backends._http import error_detail, safe_url
from langchain_fspo.errors import AdapterLoadError, AdapterNotFoundError

__all__ = ["load_lora_adapter", "unload_lora_adapter"]

_RUNTIME_HINT = "start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True to load adapters at run time"


def _post(
    client: httpx.Client, url: str, body: Mapping[str, Any], headers: Mapping[str, str]
) -> tuple[int, str]:
    try:
        response = client.post(url, json=dict(body), headers=dict(headers))
    except httpx.HTTPError as e:
        msg = f"{safe_url(url)}: {type(e).__name__}: {e}"
        raise AdapterLoadError(msg, url=safe_url(url), retryable=True) from e
    if response.status_code < 400:  # noqa: PLR2004 - HTTP error range
        return response.status_code, response.text
    return response.status_code, error_detail(response)


def load_lora_adapter(
    client: httpx.Client,
    base_url: str,
    name: str,
    path: str,
    *,
    replace: bool = False,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Ask the vLLM server at `base_url` to load the adapter folder `path` as `name`.

    Args:
        client: The HTTP client to send with.
        base_url: The server root (no trailing `/v1`).
        name: The adapter's name in later calls (`model=name`).
        path: The adapter folder or Hub repo id, as the *server* sees it.
        replace: Replace an adapter already loaded under `name` (vLLM's `load_inplace`).
        headers: Extra headers (authorization).

    Raises:
        AdapterNotFoundError: The server found nothing at `path`.
        AdapterLoadError: The server refused (see the module docstring).
    """
    url = f"{base_url}/v1/load_lora_adapter"
    body: dict[str, Any] = {"lora_name": name, "lora_path": path}
    if replace:
        body["load_inplace"] = True
    status, detail = _post(client, url, body, headers or {})
    if status < 400:  # noqa: PLR2004 - HTTP error range
        return
    where = safe_url(base_url)
    if status == 404 and detail == "Not Found":  # noqa: PLR2004 - the route is missing
        msg = f"{where} has no /v1/load_lora_adapter route: {_RUNTIME_HINT}."
        raise AdapterLoadError(msg, url=where, adapter=name, status_code=status, retryable=False)
    if status == 404:  # noqa: PLR2004 - HTTP Not Found
        msg = f"{where} found no adapter at {path!r} to load as {name!r}: {detail}"
        raise AdapterNotFoundError(msg)
    hint = {
        400: "pass replace=True to load a new version under the same name",
        500: "fix the adapter (or the server's --max-lora-rank) and load it again",
    }.get(status, "see the server log")
    msg = f"{where} refused to load {path!r} as {name!r} (HTTP {status}): {detail}; {hint}."
    raise AdapterLoadError(msg, url=where, adapter=name, status_code=status, retryable=False)


def unload_lora_adapter(
    client: httpx.Client, base_url: str, name: str, *, headers: Mapping[str, str] | None = None
) -> None:
    """Ask the vLLM server at `base_url` to unload the adapter `name`.

    Raises:
        AdapterNotFoundError: No adapter `name` is loaded.
        AdapterLoadError: Runtime loading is off, or the server failed.
    """
    url = f"{base_url}/v1/unload_lora_adapter"
    status, detail = _post(client, url, {"lora_name": name}, headers or {})
    if status < 400:  # noqa: PLR2004 - HTTP error range
        return
    where = safe_url(base_url)
    if status == 404 and detail == "Not Found":  # noqa: PLR2004 - the route is missing
        msg = f"{where} has no /v1/unload_lora_adapter route: {_RUNTIME_HINT}."
        raise AdapterLoadError(msg, url=where, adapter=name, status_code=status, retryable=False)
    if status == 404:  # noqa: PLR2004 - HTTP Not Found
        msg = f"{where} has no adapter {name!r} loaded: {detail}"
        raise AdapterNotFoundError(msg)
    msg = f"{where} failed to unload {name!r} (HTTP {status}): {detail}"
    raise AdapterLoadError(msg, url=where, adapter=name, status_code=status, retryable=False)
