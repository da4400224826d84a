"""The threaded HTTP server under every test double (TGI, vLLM/SGLang, the Hub, the synth API).

Its handler threads never format a traceback. `socketserver`'s default `handle_error` prints
one from the handler thread, and on Python 3.11 before 3.11.8 that is unsafe next to pytest:
formatting a traceback builds ASTs (`traceback` parses each line for its caret anchors, pytest
parses each frame's module), and the AST constructor keeps its recursion counter per
interpreter instead of per call (CPython gh-106905, fixed by python/cpython#113035). When two
threads build ASTs at once and a garbage-collection pass in one of them hands the GIL over,
the counter ends wrong and `ast.parse` raises `SystemError: AST constructor recursion depth
mismatch`. pytest formats the traceback of every failed or xfailed test, so a handler
thread printing one at the same moment stopped the whole session with an INTERNALERROR.

Clients routinely reset keep-alive connections (an HTTP/1.1 client that stops reading a
chunked stream at `data: [DONE]` closes with the terminating chunk unread, so the kernel
sends RST), which made the handler's next `readline` raise `ConnectionResetError`. Here:

- a client that goes away (`ConnectionError`: reset, broken pipe, aborted) is a normal event
  for a server and is dropped silently;
- any other error in a handler is kept in `handler_errors`, unformatted, for the test's own
  thread to assert on (the double's fixtures do).
"""

from __future__ import annotations

import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` on daemon threads that records handler errors instead of printing.

    Attributes:
        handler_errors: Exceptions raised in handlers, other than a client going away.
    """

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Bind and listen as `ThreadingHTTPServer` does."""
        super().__init__(*args, **kwargs)
        self.handler_errors: list[BaseException] = []
        self._errors_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep the handler's exception for the test thread; never format it here."""
        error = sys.exc_info()[1]
        if error is None or isinstance(error, ConnectionError):
            return
        with self._errors_lock:
            self.handler_errors.append(error)
