"""Watch over SSE and WebSocket: ordered, whole revisions, resumable, bounded."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hivemem.api import Settings, create_app
from hivemem.memory import Memory
from hivemem.memory.watch import Subscription
from tests.api.conftest import Keys, make_client
from tests.api.helpers import ADMIN_KEY, Event, bearer, drive_stream, live_server, sse_events
from tests.embedders import HashEmbedder

H = bearer(ADMIN_KEY)


def changes_of(events: list[Event]) -> dict[int, list[tuple[str, str]]]:
    """revision -> [(namespace, key)] of every ``changes`` event, checking each is whole."""
    out: dict[int, list[tuple[str, str]]] = {}
    for ev in events:
        if ev.event != "changes":
            continue
        assert ev.id is not None
        revision = int(ev.id)
        assert revision not in out, f"revision {revision} delivered twice"
        data = ev.json()
        assert data and all(c["revision"] == revision for c in data)
        out[revision] = [(c["namespace"], c["key"]) for c in data]
    return out


class Writer(threading.Thread):
    """Commits transactions of 1-4 items, some partly outside the watched prefix."""

    def __init__(self, mem: Memory, revisions: int) -> None:
        super().__init__(daemon=True)
        self.mem = mem
        self.revisions = revisions
        self.visible: dict[int, list[tuple[str, str]]] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(7)
        try:
            for n in range(self.revisions):
                ops = [
                    {"namespace": rng.choice(["w", "w/sub", "x"]), "key": f"k{n}-{i}", "value": n}
                    for i in range(rng.randint(1, 4))
                ]
                items = self.mem.put_many(ops)
                seen = [(i.namespace, i.key) for i in items if i.namespace.startswith("w")]
                if seen:
                    self.visible[items[0].revision] = seen
                time.sleep(rng.random() * 0.004)
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def read_some(http: httpx.Client, last: int | None, count: int) -> tuple[list[Event], bool]:
    """Connect (resuming after ``last``), read up to ``count`` events, disconnect."""
    headers = {"Last-Event-ID": str(last)} if last is not None else {}
    events: list[Event] = []
    idle = False
    with http.stream("GET", "/v1/watch", params={"namespaces": "w"}, headers=headers) as r:
        assert r.status_code == 200
        for ev in sse_events(r.iter_lines()):
            if ev.comment == "ping":
                idle = True
                break
            events.append(ev)
            if len(events) >= count:
                break
    return events, idle


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_sse_resumed_100_times_delivers_every_revision_once_and_whole(
    app: FastAPI, store: Memory
) -> None:
    writer = Writer(store, revisions=400)
    rng = random.Random(3)
    received: list[Event] = []
    last: int | None = None
    with live_server(app) as url, httpx.Client(base_url=url, headers=H, timeout=10) as http:
        writer.start()
        for _ in range(100):
            events, _ = read_some(http, last, rng.randint(1, 6))
            received += events
            if events:
                last = int(events[-1].id or 0)
        writer.join(30)
        assert writer.error is None and not writer.is_alive()
        while True:  # drain what is left after the writer stopped
            events, idle = read_some(http, last, 50)
            received += events
            if events:
                last = int(events[-1].id or 0)
            if idle and not events:
                break
    got = changes_of(received)
    assert list(got) == sorted(got), "out of order"
    assert got == writer.visible  # no gaps, no duplicates, each revision whole
    assert len(got) > 300


def test_sse_heartbeat_is_sent_when_idle(app: FastAPI) -> None:
    result = drive_stream(app, "/v1/watch", H, until=lambda r: b": ping" in r.body, timeout=5)
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    assert any(ev.comment == "ping" for ev in result.events())


def test_sse_replays_then_streams_live_and_frees_the_subscription(
    live_url: str, store: Memory
) -> None:
    store.put_many([{"namespace": "a", "key": f"k{i}", "value": i} for i in range(3)])
    with httpx.Client(base_url=live_url, headers=H, timeout=10) as http:
        with http.stream("GET", "/v1/watch", params={"since": 0}) as r:
            events = sse_events(r.iter_lines())
            first = next(events)
            assert (first.id, first.event, len(first.json())) == ("1", "changes", 3)
            metrics = http.get("/metrics").text
            assert "hivemem_watch_subscribers 1" in metrics
            store.put("a", "live", 1)
            live = next(e for e in events if e.event == "changes")
            assert live.id == "2" and live.json()[0]["key"] == "live"
        deadline = time.monotonic() + 5
        while "hivemem_watch_subscribers 0" not in http.get("/metrics").text:
            assert time.monotonic() < deadline, "the subscription was not closed"
            time.sleep(0.05)
    assert store.status()["subscribers"] == 0


def test_last_event_id_wins_over_since(app: FastAPI, store: Memory) -> None:
    for i in range(4):
        store.put("a", "k", i)
    result = drive_stream(
        app,
        "/v1/watch?since=0",
        {**H, "Last-Event-ID": "2"},
        until=lambda r: b"id: 4" in r.body,
    )
    assert [e.id for e in result.events() if e.event == "changes"] == ["3", "4"]


def test_bad_last_event_id_is_422(client: TestClient) -> None:
    r = client.get("/v1/watch", headers={**H, "Last-Event-ID": "yesterday"})
    assert r.status_code == 422 and r.json()["field"] == "Last-Event-ID"


def test_sse_since_below_compaction_is_410_before_streaming(
    client: TestClient, store: Memory
) -> None:
    for i in range(5):
        store.put("a", "k", i)
    store.compact(4)
    r = client.get("/v1/watch", params={"since": 1}, headers=H)
    assert r.status_code == 410
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["compacted_revision"] == 4


@pytest.fixture
def lag_store() -> Iterator[Memory]:
    mem = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None, watch_queue=4)
    yield mem
    mem.close()


def test_lagged_subscriber_gets_an_error_event_then_resumes(lag_store: Memory) -> None:
    app = create_app(Settings(admin_key=ADMIN_KEY, heartbeat=0.1), memory=lag_store)
    lag_store.put("a", "start", 0)

    def burst() -> None:  # the reader is stuck while 20 revisions commit
        for i in range(20):
            lag_store.put("a", f"k{i}", i)

    result = drive_stream(
        app,
        "/v1/watch?since=1",
        H,
        gate=lambda r: b": ping" in r.body,
        during_gate=burst,
    )
    assert result.complete, "the stream should end after the error event"
    events = [e for e in result.events() if e.comment is None]
    assert events[-1].event == "error"
    err = events[-1].json()
    assert err["type"] == "/problems/watch-lagged" and err["status"] == 503
    delivered = [int(e.id or 0) for e in events if e.event == "changes"]
    resume = err["resume_revision"]
    assert resume == (delivered[-1] if delivered else 1)
    again = drive_stream(
        app, "/v1/watch", {**H, "Last-Event-ID": str(resume)}, until=lambda r: b"id: 21" in r.body
    )
    resumed = [int(e.id or 0) for e in again.events() if e.event == "changes"]
    assert delivered + resumed == list(range(2, 22))


# --- WebSocket ------------------------------------------------------------------------


def test_websocket_streams_whole_revisions_and_resumes(client: TestClient, store: Memory) -> None:
    store.put_many([{"namespace": "a", "key": f"k{i}", "value": i} for i in range(3)])
    store.put("a", "k9", 9)
    with client.websocket_connect("/v1/watch/ws?since=0", headers=H) as ws:
        first = ws.receive_json()
        assert first["revision"] == 1 and len(first["changes"]) == 3
        assert ws.receive_json()["revision"] == 2
        store.put("a", "live", 1)
        assert ws.receive_json()["changes"][0]["key"] == "live"
    store.put("b", "after", 1)
    url = f"/v1/watch/ws?since=3&namespaces=b&api_key={ADMIN_KEY}"
    with client.websocket_connect(url) as ws:
        msg = ws.receive_json()
        assert msg["revision"] == 4 and msg["changes"][0]["key"] == "after"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("since=0", 401),
        ("since=x&api_key=" + ADMIN_KEY, 422),
        ("since=1&api_key=" + ADMIN_KEY, 410),
    ],
)
def test_websocket_errors_are_problem_messages_then_close(
    client: TestClient, store: Memory, query: str, status: int
) -> None:
    for i in range(4):
        store.put("a", "k", i)
    store.compact(3)
    with client.websocket_connect(f"/v1/watch/ws?{query}") as ws:
        msg = ws.receive_json()
        assert msg["error"]["status"] == status
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4000 + status


def test_websocket_revoked_key_is_refused(client: TestClient, keys: Keys) -> None:
    with client.websocket_connect("/v1/watch/ws", headers=bearer(keys.revoked)) as ws:
        assert ws.receive_json()["error"]["type"] == "/problems/unauthenticated"


def test_websocket_lagged_subscriber_gets_an_error(
    lag_store: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(Settings(admin_key=ADMIN_KEY), memory=lag_store)
    with make_client(app) as client, client.websocket_connect("/v1/watch/ws", headers=H) as ws:
        lag_store.put("a", "first", 0)
        assert ws.receive_json()["revision"] == 1
        # The test client queues messages without limit, so lag must happen server-side:
        # a consumer that takes 20 ms per revision while 200 are committed at once.
        emit = Subscription._emit

        def slow_emit(self: Subscription, batch: Any) -> Any:
            time.sleep(0.02)
            return emit(self, batch)

        monkeypatch.setattr(Subscription, "_emit", slow_emit)
        lag_store.put_many([{"namespace": "a", "key": "warm", "value": 0}])
        for i in range(200):
            lag_store.put("a", f"k{i}", i)
        messages = []
        while True:
            msg = ws.receive_json()
            messages.append(msg)
            if "error" in msg:
                break
            assert msg["revision"] < 202, "200 revisions went through a queue of 4"
        err = messages[-1]["error"]
        revisions = [m["revision"] for m in messages[:-1]]
        assert revisions == list(range(2, 2 + len(revisions)))
        assert err["resume_revision"] == (revisions[-1] if revisions else 1)


def test_websocket_and_sse_take_semantic_and_metadata_subscriptions(
    client: TestClient, store: Memory
) -> None:
    store.put("a", "hit", "deploy incident payments", metadata={"kind": "incident"})
    store.put("a", "miss", "lunch menu", metadata={"kind": "chat"})
    url = '/v1/watch/ws?since=0&filter={"kind":"incident"}&query=deploy%20incident&threshold=0.2'
    with client.websocket_connect(url, headers=H) as ws:
        msg = ws.receive_json()
        assert [c["key"] for c in msg["changes"]] == ["hit"] and msg["changes"][0]["score"] > 0.2
        store.put("a", "later", "payments deploy incident", metadata={"kind": "incident"})
        assert ws.receive_json()["changes"][0]["key"] == "later"
    with client.websocket_connect("/v1/watch/ws?since=0&threshold=9&query=x", headers=H) as ws:
        assert ws.receive_json()["error"]["field"] == "threshold"
    r = client.get("/v1/watch", params={"since": 0, "vector": "[1, 2"}, headers=H)
    assert r.status_code == 422 and r.json()["field"] == "vector"
