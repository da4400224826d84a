"""Integration-test fixtures: the TGI test server stack (see tests/tgi_server/fixtures.py)."""

from tests.tgi_server.fixtures import (  # noqa: F401 - pytest finds fixtures by name
    sglang,
    tgi,
    tiny_stack,
    vllm,
)
