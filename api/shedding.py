"""Load shedding: a bounded number of writes in flight, and a prompt 503 beyond it.

A write that waits behind hundreds of others is answered seconds later, and every one
behind it later still: past the rate the store sustains, queueing only adds latency.
``WriteLimitMiddleware`` always lets ``limit`` write requests run at once in this
process. Beyond that, up to ``BURST`` times the limit, a write is let in only while the
writes are finishing quickly: while the moving average of their time in the server is
under ``latency`` (0.15 s). Cheap writes that share commits (32 agents incrementing one
counter take about 20 ms each) are then not refused for their number alone, and writes
that queue for the model still are. Every other write is answered at once with ``503``,
``Retry-After`` and an ``/problems/overloaded`` problem, before its body is parsed or
anything is written, so every client may send it again (the hivemem clients do, a
bounded number of times).

Writes are the non-GET ``/v1`` routes except the two POST reads (``/v1/search``,
``/v1/recall``) and the admin control plane (``/v1/grants``, ``/v1/keys``), which stays
reachable so an operator can act while the store is busy. Reads are not shed: they do
not take the write lock and are answered from the views.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hivemem.api.problems import problem_response
from hivemem.memory.errors import Overloaded

__all__ = ["WriteLimitMiddleware", "is_shed_route", "document_shedding", "WriteGate"]

_READ_POSTS = frozenset({"/v1/search", "/v1/recall"})
_UNSHED_PREFIXES = ("/v1/grants", "/v1/keys")
_DRAIN_BYTES = 1 << 20


def is_shed_route(method: str, path: str) -> bool:
    """True for a request the write limit applies to (by method and path or template)."""
    if method in ("GET", "HEAD", "OPTIONS") or not path.startswith("/v1/"):
        return False
    return path not in _READ_POSTS and not path.startswith(_UNSHED_PREFIXES)


#: Writes beyond the limit are let in up to this many times the limit, while fast.
BURST = 4
#: The weight of each finished write in the moving average of write latency: about the
#: last hundred writes count, so one stall of a few hundred milliseconds does not shed.
_ALPHA = 0.01


class WriteGate:
    """A counter of writes in flight, with a ceiling; ``limit`` 0 means unbounded.

    ``limit`` places are always open; the next ``(BURST - 1) * limit`` open only while
    the moving average of the writes' latency (seconds in the server, updated as each
    one finishes) is under ``latency``.
    """

    def __init__(self, limit: int, retry_after: float = 1.0, latency: float = 0.15) -> None:
        self.limit = limit
        self.ceiling = limit * BURST
        self.retry_after = retry_after
        self.latency = latency
        self.average = 0.0
        self.in_flight = 0
        self.shed = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        """Take a place; False (and one more shed) when none is open."""
        with self._lock:
            if self.limit and self.in_flight >= self.limit:
                if self.in_flight >= self.ceiling or self.average >= self.latency:
                    self.shed += 1
                    return False
            self.in_flight += 1
            return True

    def leave(self, seconds: float | None = None) -> None:
        """Give the place back; ``seconds``: how long that write took."""
        with self._lock:
            self.in_flight -= 1
            if seconds is not None:
                self.average += _ALPHA * (seconds - self.average)


class WriteLimitMiddleware:
    """Answers 503 + ``Retry-After`` to a write when the gate has no place open for it."""

    def __init__(self, app: ASGIApp, gate: WriteGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_shed_route(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        if not self.gate.enter():
            await self._reject(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.leave(time.perf_counter() - start)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Read (and drop) a small body: the server then keeps the connection, and the
        # client's retry does not pay for a new one. A big one is not read: close.
        more, size = True, 0
        while more and size <= _DRAIN_BYTES:
            message: Message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            more = message.get("more_body", False)
            size += len(message.get("body", b""))
        seconds = max(1, math.ceil(self.gate.retry_after))
        err = Overloaded(
            f"{self.gate.in_flight} writes are in flight, the most this server runs at "
            f"once now; retry after {seconds} s",
            retry_after=seconds,
        )
        response = problem_response(err)
        response.headers["Retry-After"] = str(seconds)
        if more:
            response.headers["Connection"] = "close"
        await response(scope, receive, send)


_SHED_RESPONSE: dict[str, Any] = {
    "description": "Overloaded: too many writes in flight; nothing was done, send it again "
    "after `Retry-After` seconds",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before sending the request again",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    "content": {
        "application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"},
            "example": {
                "type": "/problems/overloaded",
                "title": "Overloaded",
                "status": 503,
                "detail": "16 writes are in flight, the most this server runs at once "
                "now; retry after 1 s",
                "retry_after": 1,
            },
        }
    },
}


def document_shedding(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add the shed 503 to the responses of every route the write limit applies to."""
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            if is_shed_route(method.upper(), path):
                responses = operation.setdefault("responses", {})
                existing = responses.get("503")
                if existing is None:
                    responses["503"] = _SHED_RESPONSE
                else:
                    existing["description"] += "; or " + _SHED_RESPONSE["description"]
                    existing.setdefault("headers", {}).update(_SHED_RESPONSE["headers"])
    return openapi
