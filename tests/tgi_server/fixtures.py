"""Shared pytest fixtures: one tiny Llama + LoRA adapters served by TGI-speaking test servers.

The stack is built once per test process (a tiny random Llama, three LoRA adapters that
really change the outputs, `LocalBackend` over them) and served by one `TGITestServer` per
flavor (`tgi`, `vllm`, `sglang`), all sharing the same engine. Test modules import the
fixtures they use:

```python
from tests.tgi_server.fixtures import tgi, tiny_stack  # noqa: F401
```
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
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

    root: Path
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
        shutil.rmtree(self.root, ignore_errors=True)


_STACK: TinyStack | None = None
_STACK_LOCK = threading.Lock()


def get_tiny_stack() -> TinyStack:
    """Build (once per process) the tiny model, adapters and `LocalBackend`."""
    global _STACK
    with _STACK_LOCK:
        if _STACK is None:
            from fspo_train.tiny import build_tiny_adapter, build_tiny_base_model
            from langchain_fspo.backends.local import LocalBackend

            root = Path(tempfile.mkdtemp(prefix="fspo-tgi-"))
            base = build_tiny_base_model(root / "base")
            adapter_dirs = {
                name: build_tiny_adapter(base, root / name, seed=seed)
                for seed, name in enumerate(ADAPTERS, start=1)
            }
            backend = LocalBackend(
                base, adapters={k: str(v) for k, v in adapter_dirs.items()}, default_max_tokens=8
            )
            _STACK = TinyStack(root, base, adapter_dirs, backend)
            atexit.register(_STACK.close)
        return _STACK


@pytest.fixture(scope="session")
def tiny_stack() -> TinyStack:
    """The shared tiny model stack (built once)."""
    return get_tiny_stack()


def _clean(server: TGITestServer) -> Iterator[TGITestServer]:
    server.reset()
    yield server
    violations = list(server.spec_violations)
    server.reset()
    assert not violations, f"TGI OpenAPI spec violations: {violations}"


@pytest.fixture
def tgi(tiny_stack: TinyStack) -> Iterator[TGITestServer]:
    """The TGI-flavored server, with an empty log; fails the test on any spec violation."""
    yield from _clean(tiny_stack.server("tgi"))


@pytest.fixture
def vllm(tiny_stack: TinyStack) -> Iterator[TGITestServer]:
    """The vLLM-flavored server (adapter name in `model`)."""
    yield from _clean(tiny_stack.server("vllm"))


@pytest.fixture
def sglang(tiny_stack: TinyStack) -> Iterator[TGITestServer]:
    """The SGLang-flavored server (`model="<base>:<adapter>"`)."""
    yield from _clean(tiny_stack.server("sglang"))
