"""Integration-test fixtures: the TGI test server stack and the real vLLM server.

See tests/tgi_server/fixtures.py and tests/integration_tests/vllm_server.py. A test class
may list the inherited tests it expects to fail in `expected_failures` (test name -> reason):
they are marked `xfail` with that reason, without overriding each one.
"""

import pytest

from tests.integration_tests.vllm_server import vllm_server  # noqa: F401 - pytest fixture
from tests.tgi_server.fixtures import (  # noqa: F401 - pytest finds fixtures by name
    sglang,
    tgi,
    tiny_stack,
    vllm,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark as `xfail` the tests their class lists in `expected_failures`."""
    for item in items:
        reasons = getattr(getattr(item, "cls", None), "expected_failures", None) or {}
        reason = reasons.get(getattr(item, "originalname", item.name))
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason))
