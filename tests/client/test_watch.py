"""Remote watch: event parsing, and resuming without gaps or duplicates.

A scripted transport checks the resume protocol exactly; a live server checks it end to
end, with the stream cut off by ``Lagged`` (a tiny watch queue) and by a TCP proxy that
drops every connection mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from hivemem.memory.client import AsyncClient, Client
from hivemem.memory.client._watch import EventParser
from hivemem.memory.errors import Compacted, NotFound, Unavailable
from hivemem.memory.models import Change
from tests.client.conftest import ADMIN_KEY, LiveServer, TcpProxy, open_memory

pytestmark = pytest.mark.timeout(30)


def change(revision: int, key: str = "k") -> dict[str, Any]:
    return {
        "revision": revision,
        "op": "put",
        "namespace": "team",
        "key": key,
        "version": revision,
        "author": "admin",
        "time": "2026-01-01T00:00:00Z",
    }


def event(revision: int, n: int = 1) -> bytes:
    data = json.dumps([change(revision, f"k{i}") for i in range(n)])
    return f"id: {revision}\nevent: changes\ndata: {data}\n\n".encode()


def error_event(slug: str, **extras: Any) -> bytes:
    body = json.dumps({"type": f"/problems/{slug}", "title": slug, "status": 503, **extras})
    return f"event: error\ndata: {body}\n\n".encode()


class Script(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body of chunks; an exception among them is raised when reached."""

    def __init__(self, chunks: list[bytes | Exception]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.__iter__():
            yield chunk


class Server:
    """Answers each watch request with the next scripted stream; records the requests."""

    def __init__(self, *streams: list[bytes | Exception] | httpx.Response) -> None:
        self.streams = list(streams)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.streams:
            return httpx.Response(200, stream=Script([b": ping\n\n"] * 3))
        script = self.streams.pop(0)
        if isinstance(script, httpx.Response):
            return script
        return httpx.Response(
            200, stream=Script(script), headers={"Content-Type": "text/event-stream"}
        )

    def resumed_from(self) -> list[tuple[str | None, str]]:
        return [(r.headers.get("Last-Event-ID"), r.url.params["since"]) for r in self.requests]


def sync_client(server: Server) -> Client:
    c = Client("http://hivemem.test", "k", transport=httpx.MockTransport(server))
    c._backoff_base = 0.0
    return c


# -- parsing -------------------------------------------------------------------------


def test_parser_joins_data_lines_and_skips_comments() -> None:
    parser = EventParser()
    lines = [": ping", "", "id: 7", "event: changes", "data: [1,", "data: 2]", "retry: 5", ""]
    events = [e for e in map(parser.feed, lines) if e is not None]
    assert len(events) == 1
    assert (events[0].id, events[0].event, "\n".join(events[0].data)) == ("7", "changes", "[1,\n2]")


# -- the resume protocol, scripted -----------------------------------------------------


def test_lagged_resumes_after_the_last_revision_seen_and_drops_duplicates() -> None:
    server = Server(
        [event(1), event(2, n=2), error_event("watch-lagged", resume_revision=2)],
        [event(2, n=2), event(3)],  # the server replays revision 2: it must not repeat
        [event(4), httpx.ReadError("connection reset"), event(99)],
        [event(3), event(4), event(5)],
    )
    with sync_client(server).watch(["team"], since=0) as stream:
        got = [next(stream) for _ in range(6)]
        assert stream.reconnects == 3
    assert [c.revision for c in got] == [1, 2, 2, 3, 4, 5]
    assert [c.key for c in got[1:3]] == ["k0", "k1"]
    assert server.resumed_from() == [(None, "0"), ("2", "2"), ("3", "3"), ("4", "4")]


def test_a_stream_that_ends_cleanly_is_resumed() -> None:
    server = Server([event(5)], [event(6)])
    with sync_client(server).watch("team", since=4) as stream:
        assert [next(stream).revision, next(stream).revision] == [5, 6]
    assert server.resumed_from() == [(None, "4"), ("5", "5")]


def test_other_error_events_are_raised() -> None:
    server = Server([event(1), error_event("compacted", compacted_revision=5)])
    stream = sync_client(server).watch(["team"])
    assert next(stream).revision == 1
    with pytest.raises(Compacted) as info:
        next(stream)
    assert info.value.compacted_revision == 5
    assert list(stream) == []  # the stream is over, not resumed
    assert len(server.requests) == 1


def test_an_error_response_on_connect_is_raised() -> None:
    body = {"type": "/problems/not-found", "title": "x", "status": 404, "detail": "gone"}
    server = Server(httpx.Response(404, json=body))
    with pytest.raises(NotFound):
        next(sync_client(server).watch(["team"]))


def test_a_server_that_stays_down_is_unavailable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    c = Client("http://hivemem.test", "k", transport=httpx.MockTransport(down), retries=1)
    c._backoff_base = 0.0
    with pytest.raises(Unavailable):
        next(c.watch(["team"]))


def test_a_stream_that_keeps_ending_empty_gives_up() -> None:
    server = Server(*[[]] * 10)
    c = sync_client(server)
    with pytest.raises(Unavailable):
        next(c.watch(["team"]))
    assert len(server.requests) == c.retries + 1


def test_async_watch_resumes_the_same_way() -> None:
    server = Server(
        [event(1), error_event("watch-lagged", resume_revision=0)],
        [event(1), event(2), httpx.RemoteProtocolError("peer closed")],
        [event(2), event(3)],
    )

    async def run() -> list[int]:
        c = AsyncClient("http://hivemem.test", "k", transport=httpx.MockTransport(server))
        c._backoff_base = 0.0
        async with c, c.watch(["team"]) as stream:
            out = []
            async for ch in stream:
                out.append(ch.revision)
                if len(out) == 3:
                    break
            return out

    assert asyncio.run(run()) == [1, 2, 3]
    assert server.resumed_from() == [(None, "0"), ("1", "1"), ("2", "2")]


# -- end to end ------------------------------------------------------------------------


def collect(stream: Any, n: int, into: list[Change]) -> threading.Thread:
    def run() -> None:
        for ch in stream:
            into.append(ch)
            if len(into) >= n:
                break

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def assert_exactly_once(changes: list[Change], first: int, last: int) -> None:
    revisions = [c.revision for c in changes]
    assert revisions == list(range(first, last + 1)), "gaps or duplicates"


def test_watch_survives_lagged_cutoffs_without_gaps_or_duplicates(
    make_server: Callable[..., LiveServer],
) -> None:
    memory = open_memory(watch_queue=1)
    server = make_server(memory)
    n = 400
    with server.client() as client:
        stream = client.watch(["team"])
        got: list[Change] = []
        reader = collect(stream, n, got)
        while not memory.status()["subscribers"]:
            time.sleep(0.01)
        for i in range(n):  # straight into the engine: faster than the stream drains
            memory.put("team/w", f"k{i}", i)
        reader.join(timeout=20)
        stream.close()
    assert_exactly_once(got, 1, n)
    assert stream._cursor.lagged >= 1, "the tiny queue never lagged: nothing was tested"


def test_watch_survives_dropped_connections_without_gaps_or_duplicates(
    make_server: Callable[..., LiveServer], make_proxy: Callable[[int], TcpProxy]
) -> None:
    server = make_server()
    proxy = make_proxy(server.port)
    got: list[Change] = []
    with Client(proxy.url, ADMIN_KEY) as client, server.client() as writer:
        stream = client.watch(["team"])
        reader = collect(stream, 60, got)
        for i in range(60):
            writer.put("team/w", f"k{i}", i)
            if i % 15 == 7:
                time.sleep(0.1)  # let the reader get this far, then pull the plug
                proxy.cut()
        reader.join(timeout=20)
        stream.close()
    assert_exactly_once(got, 1, 60)
    assert stream.reconnects >= 3
    assert proxy.accepted >= 4


def test_async_watch_survives_dropped_connections(
    make_server: Callable[..., LiveServer], make_proxy: Callable[[int], TcpProxy]
) -> None:
    server = make_server()
    proxy = make_proxy(server.port)

    async def run() -> tuple[list[Change], int]:
        got: list[Change] = []
        async with (
            AsyncClient(proxy.url, ADMIN_KEY) as client,
            AsyncClient(server.url, ADMIN_KEY) as writer,
        ):
            stream = client.watch("team")
            for rnd in range(3):
                for i in range(10):
                    await writer.put("team/w", f"k{rnd}-{i}", i)
                got += [await stream.__anext__() for _ in range(10)]
                proxy.cut()
            await stream.close()
        return got, stream.reconnects

    got, reconnects = asyncio.run(run())
    assert_exactly_once(got, 1, 30)
    assert reconnects == 2


def test_close_from_another_thread_ends_a_blocked_iteration(server: LiveServer) -> None:
    with server.client() as client:
        stream = client.watch(["team"])
        got: list[Change] = []
        reader = collect(stream, 10, got)
        client.put("team/a", "k", 1)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        stream.close()
        reader.join(timeout=5)
        assert not reader.is_alive()
    assert [c.revision for c in got] == [1]
