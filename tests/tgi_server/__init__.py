"""A TGI-speaking HTTP test server (a test double for text-generation-inference).

- `server.py`: `TGITestServer`, what it reproduces, its lifecycle and request dispatch;
- `tgi_routes.py` / `openai_routes.py`: TGI's own routes and the `/v1` ones;
- `engine.py`: running the backend; `wire.py`: the request log and response writing;
- `faults.py`: the faults a test schedules; `spec.py`: the OpenAPI checks;
- `scripted_backend.py`: the deterministic engine of protocol-only tests.
"""

from tests.tgi_server.faults import Fault
from tests.tgi_server.scripted_backend import ScriptedBackend
from tests.tgi_server.server import TGITestServer
from tests.tgi_server.spec import SpecViolationError, check, schema_errors
from tests.tgi_server.wire import LoggedRequest

__all__ = [
    "Fault",
    "LoggedRequest",
    "ScriptedBackend",
    "SpecViolationError",
    "TGITestServer",
    "check",
    "schema_errors",
]
