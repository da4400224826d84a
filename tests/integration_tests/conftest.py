"""Integration-test fixtures: the TGI test server stack and the real vLLM server.

See tests/tgi_server/fixtures.py and tests/integration_tests/vllm_server.py.
"""

from tests.integration_tests.vllm_server import vllm_server  # noqa: F401 - pytest fixture
from tests.tgi_server.fixtures import (  # noqa: F401 - pytest finds fixtures by name
    sglang,
    tgi,
    tiny_stack,
    vllm,
)
