"""Helpers for the REST tests: a live uvicorn server, an ASGI stream driver, SSE parsing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import uvicorn

ADMIN_KEY = "test-admin-key-0123456789"


def bearer(key: str | None) -> dict[str, str]:
    """Authorization headers for ``key`` (none for None)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def item_path(namespace: str, key: str, op: str = "items") -> str:
    """``/v1/<op>/<namespace>/<key>`` with the key percent-encoded."""
    return f"/v1/{op}/{namespace}/{quote(key, safe='')}"


@dataclass
class Event:
    """One server-sent event (or a comment, with ``comment`` set)."""

    id: str | None = None
    event: str | None = None
    data: str = ""
    comment: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEParser:
    """Incremental text/event-stream parser."""

    buffer: str = ""
    current: dict[str, Any] = field(default_factory=dict)

    def feed_line(self, line: str) -> Event | None:
        if line == "":
            if not self.current:
                return None
            ev = Event(
                id=self.current.get("id"),
                event=self.current.get("event"),
                data="\n".join(self.current.get("data", [])),
            )
            self.current = {}
            return ev
        if line.startswith(":"):
            return Event(comment=line[1:].strip())
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self.current.setdefault("data", []).append(value)
        else:
            self.current[name] = value
        return None

    def feed(self, chunk: str) -> list[Event]:
        self.buffer += chunk
        out = []
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            ev = self.feed_line(line.rstrip("\r"))
            if ev is not None:
                out.append(ev)
        return out


def sse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from an iterator of lines (``httpx.Response.iter_lines``)."""
    parser = SSEParser()
    for line in lines:
        ev = parser.feed_line(line)
        if ev is not None:
            yield ev


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class StreamResult:
    """What an ASGI app sent on one HTTP request."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False

    def events(self) -> list[Event]:
        return SSEParser().feed(self.body.decode())


def drive_stream(
    app: Any,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    until: Callable[[StreamResult], bool] | None = None,
    gate: Callable[[StreamResult], bool] | None = None,
    during_gate: Callable[[], None] | None = None,
    timeout: float = 10.0,
) -> StreamResult:
    """Run one GET against ``app`` in its own event loop and collect the response.

    Stops (sending ``http.disconnect``) when ``until(result)`` holds or the response
    completes. With ``gate``, the app's ``send`` blocks once ``gate(result)`` holds
    until ``during_gate()`` (run in a thread) has returned: a reader that stopped reading.
    """
    target, _, query = path.partition("?")
    raw_headers = [(b"host", b"testserver")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    result = StreamResult()

    async def run() -> None:
        disconnect = asyncio.Event()
        changed = asyncio.Event()
        gated = False
        sent_request = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal gated
            if message["type"] == "http.response.start":
                result.status = message["status"]
                result.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                result.body += message.get("body", b"")
                if not message.get("more_body", False):
                    result.complete = True
            changed.set()
            if gate is not None and not gated and gate(result):
                gated = True
                if during_gate is not None:
                    await asyncio.to_thread(during_gate)

        task = asyncio.ensure_future(app(scope, receive, send))
        deadline = asyncio.get_running_loop().time() + timeout
        while not task.done():
            if result.complete or (until is not None and result.status and until(result)):
                break
            changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.5))
        disconnect.set()
        try:
            await asyncio.wait_for(task, 5)
        except TimeoutError:
            task.cancel()
            raise

    asyncio.run(run())
    return result
