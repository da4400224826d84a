"""Shared pytest fixtures: one tiny Llama + LoRA adapters served by TGI-speaking test servers.

The stack is built once per test session from the root conftest's tiny random Llama and LoRA
adapters (`tiny_model_dir`, `tiny_adapter_dirs`; the adapters really change the outputs):
`LocalBackend` over them, served by one `TGITestServer` per flavor (`tgi`, `vllm`, `sglang`),
all sharing the same engine. Test modules import the
fixtures they use:

```python
from tests.tgi_server.fixtures import tgi, tiny_stack  # noqa: F401
```
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.tgi_server.server import Flavor, TGITestServer

ADAPTERS = ("fspo-alice", "fspo-bob", "fspo-carol")
"""The adapters "loaded at launch" (TGI's LORA_ADAPTERS)."""
BASE_MODEL_ID = "fspo/tiny-llama"


@dataclass
class TinyStack:
    """The tiny model, its adapters, the engine and the servers (one per flavor)."""

    base_dir: Path
    adapter_dirs: dict[str, Path]
    backend: Any
    servers: dict[str, TGITestServer] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def server(self, flavor: Flavor = "tgi") -> TGITestServer:
        """The running server for `flavor` (started on first use)."""
        with self.lock:
            if flavor not in self.servers:
                server = TGITestServer(
                    self.backend, model_id=BASE_MODEL_ID, adapters=ADAPTERS, flavor=flavor
                )
                self.servers[flavor] = server.start()
            return self.servers[flavor]

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


ADAPTER_SOURCES = {"fspo-alice": "alpha", "fspo-bob": "beta", "fspo-carol": "paper"}
"""Served adapter id -> the root conftest's tiny adapter (`tiny_adapter_dirs`) it serves."""


_STACK: TinyStack | None = None


@pytest.fixture(scope="session")
def tiny_stack(tiny_model_dir: Path, tiny_adapter_dirs: dict[str, Path]) -> Iterator[TinyStack]:
    """`LocalBackend` over the session's tiny Llama and three of its adapters, served lazily.

    Test modules import this fixture, which gives each module its own fixture definition;
    the stack itself is cached so that the model is loaded and served once per session.
    """
    global _STACK
    if _STACK is None or _STACK.base_dir != tiny_model_dir:
        from langchain_fspo.backends.local import LocalBackend

        dirs = {name: tiny_adapter_dirs[source] for name, source in ADAPTER_SOURCES.items()}
        backend = LocalBackend(
            tiny_model_dir,
            adapters={name: str(path) for name, path in dirs.items()},
            default_max_tokens=8,
        )
        _STACK = TinyStack(tiny_model_dir, dirs, backend)
    yield _STACK
    _STACK.close()  # session end: every definition tears down then; closing twice is fine


def _clean(server: TGITestServer) -> Iterator[TGITestServer]:
    server.reset()
    yield server
    violations = list(server.spec_violations)
    errors = list(server.handler_errors)
    server.reset()
    assert not violations, f"TGI OpenAPI spec violations: {violations}"
    assert not errors, f"the TGI test server failed while serving: {errors!r}"


@pytest.fixture
def tgi(tiny_stack: TinyStack) -> Iterator[TGITestServer]:
    """The TGI-flavored server, log emptied; fails the test on spec violations or server errors."""
    yield from _clean(tiny_stack.server("tgi"))


@pytest.fixture
def vllm(tiny_stack: TinyStack) -> Iterator[TGITestServer]:
    """The vLLM-flavored server (adapter name in `model`)."""
    yield from _clean(tiny_stack.server("vllm"))


@pytest.fixture
def sglang(tiny_stack: TinyStack) -> Iterator[TGITestServer]:
    """The SGLang-flavored server (`model="<base>:<adapter>"`)."""
    yield from _clean(tiny_stack.server("sglang"))
