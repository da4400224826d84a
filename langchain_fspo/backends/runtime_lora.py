"""LoRA adapters in a running vLLM server: load and unload without a restart, typed errors.

vLLM exposes `POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter` when it is started
with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`. A new adapter version is deployed by loading it
under a new name (and selecting it with `model=`), or under the same name with
`replace=True` (vLLM's `load_inplace`). `OpenAICompatibleBackend.load_adapter` and
`unload_adapter` call these functions.

vLLM's answers, mapped to typed errors (one mapping, `_raise_for`, for both routes): 404 for a
path or name it cannot find (`AdapterNotFoundError`); 404 for the route itself when runtime
loading is off, 400 for a name already loaded, and 500 for an adapter its LoRA manager refuses
(rank above `--max-lora-rank`, `modules_to_save`, DoRA, ...): `AdapterLoadError` with the
server's reason and the fix. A completion asking for an adapter the server does not serve
also gets a 404; `missing_adapter_is_typed` turns that one into `AdapterNotFoundError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from langchain_fspo.backends._http import error_detail, join_url, safe_url, scrub_chain, shorten
from langchain_fspo.errors import AdapterLoadError, AdapterNotFoundError, InferenceServerError

__all__ = ["load_lora_adapter", "missing_adapter_is_typed", "unload_lora_adapter"]

_RUNTIME_HINT = "start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True to load adapters at run time"
_HTTP_NOT_FOUND = 404
_HTTP_ERRORS = 400
_LOAD_HINTS = {
    400: "pass replace=True to load a new version under the same name",
    500: "fix the adapter (or the server's --max-lora-rank) and load it again",
}


def _post(
    client: httpx.Client,
    base_url: str,
    route: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None,
    *,
    adapter: str,
    not_found: str,
    failed: str,
    hints: Mapping[int, str],
) -> None:
    """POST `body` to `route`; raise the typed error for any answer but success.

    Args:
        client: The HTTP client to send with.
        base_url: The server root (no trailing `/v1`).
        route: `/v1/load_lora_adapter` or `/v1/unload_lora_adapter`.
        body: The JSON body.
        headers: Extra headers (authorization).
        adapter: The adapter's name, for the error.
        not_found: What was not found, for a 404 from vLLM's handler.
        failed: What failed, for any other error status.
        hints: The fix to suggest, per HTTP status.
    """
    where = safe_url(base_url)
    try:
        response = client.post(
            join_url(base_url, route), json=dict(body), headers=dict(headers or {})
        )
    except httpx.HTTPError as e:
        scrub_chain(e)
        msg = f"{where}{route}: {type(e).__name__}: {e}"
        raise AdapterLoadError(msg, url=where, adapter=adapter, retryable=True) from e
    status = response.status_code
    if status < _HTTP_ERRORS:
        return
    detail, full_body = error_detail(response)
    detail = shorten(detail)
    if status == _HTTP_NOT_FOUND and detail == "Not Found":  # the route itself is missing
        msg = f"{where} has no {route} route: {_RUNTIME_HINT}."
    elif status == _HTTP_NOT_FOUND:
        msg = f"{where} {not_found}: {detail}"
        raise AdapterNotFoundError(msg)
    else:
        hint = hints.get(status, "see the server log")
        msg = f"{where} {failed} (HTTP {status}): {detail}; {hint}."
    raise AdapterLoadError(
        msg, url=where, adapter=adapter, status_code=status, retryable=False, body=full_body
    )


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
    body: dict[str, Any] = {"lora_name": name, "lora_path": path}
    if replace:
        body["load_inplace"] = True
    _post(
        client,
        base_url,
        "/v1/load_lora_adapter",
        body,
        headers,
        adapter=name,
        not_found=f"found no adapter at {path!r} to load as {name!r}",
        failed=f"refused to load {path!r} as {name!r}",
        hints=_LOAD_HINTS,
    )


def unload_lora_adapter(
    client: httpx.Client, base_url: str, name: str, *, headers: Mapping[str, str] | None = None
) -> None:
    """Ask the vLLM server at `base_url` to unload the adapter `name`.

    Raises:
        AdapterNotFoundError: No adapter `name` is loaded.
        AdapterLoadError: Runtime loading is off, or the server failed.
    """
    _post(
        client,
        base_url,
        "/v1/unload_lora_adapter",
        {"lora_name": name},
        headers,
        adapter=name,
        not_found=f"has no adapter {name!r} loaded",
        failed=f"failed to unload {name!r}",
        hints={},
    )


@contextlib.contextmanager
def missing_adapter_is_typed(adapter: str | None, url: str) -> Iterator[None]:
    """Turn the server's 404 for an adapter it does not serve into `AdapterNotFoundError`.

    Wraps a completion call; vLLM answers 404 ("The model ... does not exist") when `model`
    names no loaded adapter.
    """
    try:
        yield
    except InferenceServerError as e:
        if adapter is None or e.status_code != _HTTP_NOT_FOUND:
            raise
        msg = (
            f"Adapter {adapter!r} is not served by {safe_url(url)} ({e}). Load it "
            "(`load_adapter`, vLLM's --lora-modules) or fix the adapter name."
        )
        raise AdapterNotFoundError(msg) from e
