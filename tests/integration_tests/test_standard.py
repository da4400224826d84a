"""LangChain's standard integration tests for `ChatFSPO` served by TGI (the TGI test server).

The server generates with the tiny random Llama and its LoRA adapters: it speaks TGI's wire
format exactly but cannot produce meaningful tool calls or structured output. Those tests are
marked `xfail` with that reason (`TinyModelXfails` in tests/standard_suite.py: the test server
does not implement TGI's grammar-constrained decoding either);
`tests/integration_tests/test_tgi_chat.py` asserts that `tools`, `tool_choice` and
`response_format` do reach the server.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from tests.standard_suite import TinyModelXfails
from tests.tgi_server import TGITestServer
from tests.tgi_server.fixtures import ADAPTERS

pytestmark = pytest.mark.integration


class TestChatFSPOOverTGI(TinyModelXfails):
    server_url: ClassVar[str] = ""

    @pytest.fixture(autouse=True)
    def _tgi_server(self, tgi: TGITestServer) -> None:
        type(self).server_url = tgi.url

    @property
    def backend_params(self) -> dict[str, Any]:
        return {
            "model": "fspo-alice",
            "base_url": self.server_url,
            "backend": "tgi",
            "adapters": list(ADAPTERS),
            "max_tokens": 4,
        }

    @property
    def model_override_value(self) -> str:
        return "fspo-bob"
