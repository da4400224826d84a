"""What an OpenAI-compatible server serves: its model list, adapter names and runtime LoRA.

The part of `OpenAICompatibleBackend` that asks `/v1/models` and loads or unloads adapters
(vLLM's runtime LoRA endpoints, `runtime_lora`); the requests themselves are in
`openai_compat`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from langchain_fspo.backends._http import MalformedResponseError, join_url, safe_url
from langchain_fspo.backends._retry import call_with_retries
from langchain_fspo.backends.runtime_lora import load_lora_adapter, unload_lora_adapter
from langchain_fspo.errors import AdapterNotFoundError, InferenceServerError

if TYPE_CHECKING:
    import httpx

    from langchain_fspo.backends._http import CallContext
    from langchain_fspo.backends._retry import RetryPolicy

__all__ = ["Flavor", "ServedModels"]

Flavor = Literal["vllm", "sglang"]


class ServedModels:
    """Model listing and adapter management, mixed into `OpenAICompatibleBackend`."""

    base_url: str
    model: str | None
    flavor: Flavor
    adapters: list[str] | None
    retry: RetryPolicy
    _served: list[str] | None

    if TYPE_CHECKING:

        @property
        def timeout(self) -> float | None: ...

        def _client(self) -> httpx.Client: ...

        def _request_headers(self) -> dict[str, str]: ...

        def _context(self, adapter: str | None, route: str) -> CallContext: ...

        @staticmethod
        def _raise_for_status(response: httpx.Response) -> None: ...

    def served_models(self, *, refresh: bool = False) -> list[str]:
        """The model ids `/v1/models` lists (base model and, on vLLM, LoRA adapters)."""
        if self._served is not None and not refresh:
            return self._served
        ctx = self._context(None, "/v1/models")

        def fetch() -> list[str]:
            response = self._client().get(
                join_url(self.base_url, "/v1/models"),
                headers=self._request_headers(),
                timeout=self.timeout,
            )
            self._raise_for_status(response)
            payload = response.json()
            try:
                return [str(item["id"]) for item in payload["data"]]
            except (KeyError, TypeError) as e:
                msg = f"/v1/models did not answer with a model list: {payload!r:.200}"
                raise MalformedResponseError(msg) from e

        self._served = call_with_retries(fetch, ctx, self.retry)
        return self._served

    def _base_model(self) -> str:
        if self.model is None:
            served = self.served_models()
            if not served:
                msg = f"{safe_url(self.base_url)}/v1/models lists no model; pass model=..."
                raise InferenceServerError(msg, url=safe_url(self.base_url), retryable=False)
            self.model = served[0]
        return self.model

    def model_for(self, adapter: str | None) -> str:
        """The `model` value that selects `adapter` on this server."""
        if adapter is None:
            return self._base_model()
        if self.flavor == "sglang":
            return f"{self._base_model()}:{adapter}"
        return adapter

    def check_adapter(self, adapter: str | None) -> None:
        """Raise `AdapterNotFoundError` unless the server (or the allow-list) has `adapter`."""
        if adapter is None:
            return
        if self.adapters is not None:
            known = self.adapters
        else:
            served = self.served_models(refresh=True)
            known = [m.split(":", 1)[1] if ":" in m else m for m in served]
        if adapter not in known:
            hint = "--lora-modules name=path" if self.flavor == "vllm" else "--lora-paths name=path"
            msg = (
                f"Adapter {adapter!r} is not served by {self.flavor} at "
                f"{safe_url(self.base_url)} (serving: {', '.join(known) or 'none'}). "
                f"Launch the server with {hint}, or fix the adapter name."
            )
            raise AdapterNotFoundError(msg)

    def load_adapter(self, name: str, path: str, *, replace: bool = False) -> None:
        """Load the adapter at `path` (as the server sees it) into the running server as `name`.

        vLLM only, started with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`; `replace=True`
        swaps a new version in under a name already loaded. See `runtime_lora`.

        Raises:
            AdapterNotFoundError: The server found nothing at `path`.
            AdapterLoadError: The server refused, with its reason.
        """
        client, headers = self._client(), self._request_headers()
        load_lora_adapter(client, self.base_url, name, path, replace=replace, headers=headers)
        self._served = None
        if self.adapters is not None and name not in self.adapters:
            self.adapters.append(name)

    def unload_adapter(self, name: str) -> None:
        """Unload the adapter `name` from the running server (see `load_adapter`)."""
        unload_lora_adapter(self._client(), self.base_url, name, headers=self._request_headers())
        self._served = None
        if self.adapters is not None and name in self.adapters:
            self.adapters.remove(name)
