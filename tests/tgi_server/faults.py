"""Fault injection for the TGI test server: misbehaviours scheduled for the next requests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["status", "delay", "cut", "truncate", "malformed", "tool_call"]


@dataclass
class Fault:
    """A misbehaviour applied to the next `remaining` matching requests."""

    kind: FaultKind
    remaining: int
    status: int = 503
    seconds: float = 0.0
    after_events: int = 1
    path: str | None = None
    message: str | None = None
    tool_name: str = ""
    tool_arguments: dict[str, Any] = field(default_factory=dict)


class FaultSchedule:
    """The server's fault controls: each schedules a `Fault` for the next matching requests."""

    _faults: list[Fault]
    _lock: threading.Lock

    def fail_next(
        self, n: int = 1, *, status: int = 503, path: str | None = None, message: str | None = None
    ) -> None:
        """Answer the next `n` requests (to `path`, if given) with `status` and a TGI error."""
        self._add(Fault("status", n, status=status, path=path, message=message))

    def delay_next(self, n: int = 1, *, seconds: float, path: str | None = None) -> None:
        """Wait `seconds` before answering the next `n` requests."""
        self._add(Fault("delay", n, seconds=seconds, path=path))

    def cut_stream_next(
        self, n: int = 1, *, after_events: int = 1, path: str | None = None
    ) -> None:
        """Close the socket mid-body after `after_events` SSE events (or mid-JSON)."""
        self._add(Fault("cut", n, after_events=after_events, path=path))

    def truncate_stream_next(
        self, n: int = 1, *, after_events: int = 1, path: str | None = None
    ) -> None:
        """End the body cleanly after `after_events` SSE events, without the final one."""
        self._add(Fault("truncate", n, after_events=after_events, path=path))

    def tool_call_next(self, name: str, arguments: dict[str, Any], n: int = 1) -> None:
        """Answer the next `n` chat requests with a tool call, as TGI's tool grammar forces.

        The engine still runs (for usage); its text is replaced by the call. Non-streamed, the
        arguments are a JSON object (TGI's shape); streamed, JSON text in pieces.
        """
        fault = Fault("tool_call", n, path="/v1/chat/completions")
        fault.tool_name, fault.tool_arguments = name, dict(arguments)
        self._add(fault)

    def malformed_next(self, n: int = 1, *, path: str | None = None) -> None:
        """Answer the next `n` requests with status 200 and a body that is not valid JSON."""
        self._add(Fault("malformed", n, path=path))

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path is None or fault.path == path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
