"""A TGI-speaking HTTP test server (a test double for text-generation-inference).

See `server.py` for what it reproduces and how to inject faults, `spec.py` for the OpenAPI
checks, and `scripted_backend.py` for the deterministic engine used by protocol-only tests.
"""

from tests.tgi_server.scripted_backend import ScriptedBackend
from tests.tgi_server.server import Fault, LoggedRequest, TGITestServer
from tests.tgi_server.spec import SpecViolationError, check, schema_errors

__all__ = [
    "Fault",
    "LoggedRequest",
    "ScriptedBackend",
    "SpecViolationError",
    "TGITestServer",
    "check",
    "schema_errors",
]
