"""Stateless API replicas over one PostgreSQL log: each keeps its own vector index in
its own data directory and catches it up from the shared log."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hivemem.api import Settings, create_app
from hivemem.api.app import open_memory
from hivemem.memory import Memory
from tests.api.helpers import ADMIN_KEY, bearer
from tests.conftest import _postgres_url
from tests.embedders import HashEmbedder


@pytest.fixture
def replicas(tmp_path) -> Iterator[tuple[Memory, Memory, str]]:  # type: ignore[no-untyped-def]
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server (set HIVEMEM_TEST_POSTGRES)")
    schema = f"r_{uuid.uuid4().hex[:10]}"
    log_url = f"{url}?schema={schema}"
    mems = [
        open_memory(
            Settings(data_dir=str(tmp_path / name), log_url=log_url, durability="normal"),
            embedder=HashEmbedder(),
            reaper_interval=0.1,
        )
        for name in ("a", "b")
    ]
    yield mems[0], mems[1], log_url
    for m in mems:
        m.close()
    from hivemem.memory.log.postgres import PostgresLog

    PostgresLog(url, schema=schema).drop()


def test_a_write_on_one_replica_is_read_and_searched_on_the_other(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = replicas
    settings = Settings(admin_key=ADMIN_KEY)
    with (
        TestClient(create_app(settings, memory=a)) as ca,
        TestClient(create_app(settings, memory=b)) as cb,
    ):
        h = bearer(ADMIN_KEY)
        put = ca.put("/v1/items/team/notes/plan", json={"value": "deploy friday"}, headers=h)
        assert put.status_code == 200
        assert cb.get("/v1/items/team/notes/plan", headers=h).json()["value"] == "deploy friday"
        for mode in ("vector", "keyword", "hybrid"):
            hits = cb.post(
                "/v1/search", json={"query": "deploy friday", "mode": mode}, headers=h
            ).json()
            assert [x["item"]["key"] for x in hits] == ["plan"], mode
        key = ca.post("/v1/keys", json={"principal": "agent"}, headers=h).json()
        ca.put(
            "/v1/grants",
            json={"principal": "agent", "prefix": "team", "permission": "read"},
            headers=h,
        )
        deadline = time.monotonic() + 1.0  # grants are cached for half a second
        while cb.get("/v1/items/team/notes/plan", headers=bearer(key["secret"])).status_code != 200:
            assert time.monotonic() < deadline, "the grant did not reach the other replica"
            time.sleep(0.05)
        assert ca.delete(f"/v1/keys/{key['id']}", headers=h).status_code == 204
        deadline = time.monotonic() + 1.0
        while cb.get("/v1/whoami", headers=bearer(key["secret"])).status_code != 401:
            assert time.monotonic() < deadline, "revocation did not reach the other replica"
            time.sleep(0.05)


def test_a_watcher_on_one_replica_sees_writes_made_on_the_other(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = replicas
    sub = b.watch(["team"], since=0)
    for i in range(5):
        a.put("team", f"k{i}", i)
    got = []
    for change in sub.iter(timeout=3.0):
        got.append((change.revision, change.key))
        if len(got) == 5:
            break
    sub.close()
    assert got == [(i + 1, f"k{i}") for i in range(5)]
    b.put("team", "from-b", "written on replica b")
    assert a.get("team", "from-b").revision == 6
    assert [h.item.key for h in a.search("replica b", mode="keyword")] == ["from-b"]


@pytest.fixture
def quiet_replicas(tmp_path) -> Iterator[tuple[Memory, Memory]]:  # type: ignore[no-untyped-def]
    """Two replicas with no reaper: only LISTEN/NOTIFY wakes the other one up."""
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server (set HIVEMEM_TEST_POSTGRES)")
    schema = f"q_{uuid.uuid4().hex[:10]}"
    log_url = f"{url}?schema={schema}"
    mems = [
        open_memory(
            Settings(data_dir=str(tmp_path / name), log_url=log_url, durability="normal"),
            embedder=HashEmbedder(),
            reaper_interval=None,
        )
        for name in ("a", "b")
    ]
    yield mems[0], mems[1]
    for m in mems:
        m.close()
    from hivemem.memory.log.postgres import PostgresLog

    PostgresLog(url, schema=schema).drop()


def _listener(mem: Memory):  # type: ignore[no-untyped-def]
    return mem._core.log


def test_notify_wakes_the_other_replicas_watchers_and_index(quiet_replicas) -> None:  # type: ignore[no-untyped-def]
    a, b = quiet_replicas
    sub = b.watch(["team"], since=0)
    a.put("team", "k", "deploy friday")
    # no reaper polls on b: without the NOTIFY the stream would stay idle and end
    change = next(iter(sub.iter(timeout=5.0)))
    assert (change.revision, change.key) == (1, "k")
    sub.close()
    deadline = time.monotonic() + 2.0
    while b._core.index.applied_revision < 1:
        assert time.monotonic() < deadline, "the index did not follow the NOTIFY"
        time.sleep(0.01)


def test_killing_the_listening_connection_loses_and_repeats_nothing(quiet_replicas) -> None:  # type: ignore[no-untyped-def]
    import threading

    import psycopg

    a, b = quiet_replicas
    url = _postgres_url()
    assert url is not None
    log = _listener(b)
    deadline = time.monotonic() + 5.0
    while log.listener_pid is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sub = b.watch(["team"], since=0)
    got: list[tuple[int, str]] = []
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            a.put("team", f"k{i}", i)
            i += 1
            time.sleep(0.002)

    writer = threading.Thread(target=write)
    writer.start()
    kills = 0
    with psycopg.connect(url, autocommit=True) as admin:
        while kills < 50:
            pid = log.listener_pid
            connects = log.listen_connects
            if pid is None:
                time.sleep(0.005)
                continue
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            kills += 1
            deadline = time.monotonic() + 10.0
            while log.listen_connects == connects:  # wait for the reconnect
                assert time.monotonic() < deadline, "the listener never reconnected"
                time.sleep(0.005)
            time.sleep(0.01)
    stop.set()
    writer.join()
    head = a.revision
    for change in sub.iter(timeout=5.0):
        got.append((change.revision, change.key))
        if change.revision == head:
            break
    sub.close()
    assert [r for r, _ in got] == list(range(1, head + 1))  # none missed, none twice
    assert head > 50


def test_min_revision_waits_for_this_replica_then_refuses_a_future_one(  # type: ignore[no-untyped-def]
    quiet_replicas, monkeypatch
) -> None:
    from hivemem.memory import engine
    from hivemem.memory.errors import InvalidInput

    a, b = quiet_replicas
    item = a.put("team", "plan", "deploy friday")
    hits = b.search("deploy friday", mode="vector", min_revision=item.revision)
    assert [h.item.key for h in hits] == ["plan"]
    assert b._core.index.applied_revision >= item.revision
    assert b.get("team", "plan", min_revision=item.revision).version == 1
    monkeypatch.setattr(engine, "MIN_REVISION_WAIT", 0.2)
    start = time.monotonic()
    with pytest.raises(InvalidInput, match="min_revision"):
        b.get("team", "plan", min_revision=item.revision + 5)
    assert time.monotonic() - start >= 0.2
    with pytest.raises(InvalidInput, match="min_revision"):
        b.search("x", min_revision=-1)


def test_replicas_share_one_qdrant_collection(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two replicas over one log and one Qdrant (qdrant-client's local mode standing in
    for the server): each applies every change to the same points, idempotently."""
    from qdrant_client import QdrantClient

    from hivemem.memory.index.qdrant import QdrantIndex
    from hivemem.memory.log.postgres import PostgresLog

    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server (set HIVEMEM_TEST_POSTGRES)")
    schema = f"qd_{uuid.uuid4().hex[:10]}"
    server = QdrantClient(":memory:")  # one "server", reached by both replicas

    def replica(name: str) -> Memory:
        index = QdrantIndex(server, collection="shared")
        index.close = lambda: None  # type: ignore[method-assign]  # the server outlives replicas
        log = PostgresLog(url, schema=schema)
        return Memory.open(
            str(tmp_path / name),
            embedder=HashEmbedder(),
            log=log,
            index=index,
            reaper_interval=None,
        )

    a, b = replica("a"), replica("b")
    try:
        a.put("team", "plan", "deploy friday")
        b.put("team", "other", "lunch at noon")
        a.put("team", "plan", "deploy monday")  # overwrite: the old point goes
        for mem in (a, b):
            hits = mem.search("deploy monday", namespaces=["team"], mode="vector", k=5)
            assert {h.item.key for h in hits} == {"plan", "other"}
            assert hits[0].item.value == "deploy monday"
        b.delete("team", "other")
        assert [h.item.key for h in a.search("lunch", mode="vector", k=5)] == ["plan"]
        count = server.count("shared", exact=True).count
        assert count == 1  # one live point, whoever applied what
        a.checkpoint()
        a.close()
        again = replica("a2")  # a restart catches up from the recorded revision
        assert again._core.index.applied_revision == again.revision
        assert server.count("shared", exact=True).count == 1
        again.close()
    finally:
        b.close()
        PostgresLog(url, schema=schema).drop()
