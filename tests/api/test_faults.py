"""Faults are visible: repairs are logged and counted, readiness waits for the model,
every route has its metrics label, a 500 keeps the connection, and parameters a route
does not have are refused by name."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hivemem.api.app import create_app
from hivemem.api.settings import Settings
from hivemem.memory import Memory, MiniLMEmbedder
from hivemem.memory.client import Client
from tests.api.helpers import ADMIN_KEY, bearer, live_server

H = bearer(ADMIN_KEY)


def _local_port(response: httpx.Response) -> int:
    return int(response.extensions["network_stream"].get_extra_info("socket").getsockname()[1])


def test_a_rebuild_on_open_is_logged_once_with_its_reason_and_counted_in_metrics(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mem = Memory.open(str(tmp_path), embedder=None, reaper_interval=None)
    for i in range(3):
        mem.put("team", f"k{i}", i, vector=[1.0, float(i), 0.0])
    mem.close()
    with open(tmp_path / "vectors.faiss", "wb") as f:
        f.write(b"not an index")  # damaged on disk
    with caplog.at_level(logging.INFO, logger="hivemem.index"):
        mem = Memory.open(str(tmp_path), embedder=None, reaper_interval=None)
    try:
        lines = [r.getMessage() for r in caplog.records if r.name == "hivemem.index"]
        verify = [m for m in lines if m.startswith("event=index_verify_failed")]
        rebuild = [m for m in lines if m.startswith("event=index_rebuild")]
        assert len(verify) == 1 and "reason=load_failed" in verify[0]
        assert len(rebuild) == 1 and "reason=load_failed" in rebuild[0]
        assert "vectors=3" in rebuild[0]
        assert mem.index_events()[("index_rebuild", "load_failed")] == 1
        app = create_app(Settings(admin_key=ADMIN_KEY), memory=mem)
        with TestClient(app) as c:
            text = c.get("/metrics").text
        assert 'hivemem_index_rebuilds_total{reason="load_failed"} 1' in text
        assert 'hivemem_index_verify_failures_total{reason="load_failed"} 1' in text
        assert "# TYPE hivemem_index_catch_ups_total counter" in text
        assert len(mem.search(vector=[1.0, 0.0, 0.0], namespaces=["team"], k=3)) == 3
    finally:
        mem.close()


def test_a_catch_up_on_open_is_logged_and_counted(tmp_path: Any) -> None:
    mem = Memory.open(str(tmp_path), embedder=None, reaper_interval=None)
    mem.put("team", "a", 1, vector=[1.0, 0.0])
    mem.checkpoint()
    saved = (tmp_path / "vectors.faiss").read_bytes()
    mem.put("team", "b", 2, vector=[0.0, 1.0])
    mem.close()
    (tmp_path / "vectors.faiss").write_bytes(saved)  # as if the process died before a save
    mem = Memory.open(str(tmp_path), embedder=None, reaper_interval=None)
    try:
        assert mem.index_events().get(("index_catch_up", "open")) == 1
        assert mem.status()["index_revision"] == mem.status()["revision"] == 2
    finally:
        mem.close()


def test_readyz_is_503_until_the_embedding_model_has_loaded() -> None:
    model = MiniLMEmbedder()  # a fresh one: nothing loaded yet
    mem = Memory.open(":memory:", embedder=model, reaper_interval=None)
    try:
        app = create_app(Settings(admin_key=ADMIN_KEY), memory=mem)
        with TestClient(app) as c:
            r = c.get("/readyz")
            assert r.status_code == 503
            assert r.json()["type"] == "/problems/unavailable"
            assert "embedding model" in r.json()["detail"]
            mem.warm_up()
            r = c.get("/readyz")
            assert r.status_code == 200 and r.json()["status"] == "ready"
    finally:
        mem.close()


def test_readyz_starts_the_model_loading_for_a_store_the_app_opened(tmp_path: Any) -> None:
    app = create_app(Settings(admin_key=ADMIN_KEY, data_dir=str(tmp_path)))
    with TestClient(app) as c:  # the lifespan warms the model up in a thread
        deadline = time.monotonic() + 300
        while c.get("/readyz").status_code == 503:
            assert time.monotonic() < deadline, "the model never loaded"
            time.sleep(0.1)
        assert app.state.memory.ready()


def test_a_store_without_an_embedder_is_ready_at_once(store_without_model: Memory) -> None:
    app = create_app(Settings(admin_key=ADMIN_KEY), memory=store_without_model)
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200


@pytest.fixture
def store_without_model() -> Any:
    mem = Memory.open(":memory:", embedder=None, reaper_interval=None)
    yield mem
    mem.close()


def test_framework_routes_have_their_own_metrics_label(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/console/").status_code == 200
    client.get("/no/such/route")
    text = client.get("/metrics").text
    assert 'route="/openapi.json",method="GET",status="200"' in text
    assert 'route="/docs",method="GET",status="200"' in text
    assert 'route="/console/…",method="GET",status="200"' in text
    unmatched = [line for line in text.splitlines() if 'route="unmatched"' in line]
    assert unmatched and all('status="404"' in line for line in unmatched if "_total" in line)


def test_a_500_keeps_the_keep_alive_connection(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Memory, "get", broken)
    ports = []
    with live_server(app) as url, httpx.Client(base_url=url, headers=H) as http:
        answers = []
        for path in ("/v1/items/team/doc", "/v1/items", "/v1/items/team/doc"):
            answers.append(http.get(path))
            ports.append(_local_port(answers[-1]))
    first, second, third = answers
    assert first.status_code == 500 and first.json()["type"] == "/problems/internal"
    assert first.headers.get("connection", "").lower() != "close"
    assert second.status_code == 200 and third.status_code == 500
    assert len(set(ports)) == 1  # one connection throughout


@pytest.mark.parametrize(
    ("method", "path", "param"),
    [
        ("PUT", "/v1/items/team/a?if_versoin=3", "if_versoin"),
        ("GET", "/v1/items/team/a?at_revison=1", "at_revison"),
        ("GET", "/v1/items?prefix=team&bogus=", "bogus"),
        ("DELETE", "/v1/items/team/a?ifversion=1", "ifversion"),
        ("POST", "/v1/search?k=3", "k"),  # k belongs in the body
        ("GET", "/v1/watch?since=0&namespace=team", "namespace"),
    ],
)
def test_a_query_parameter_the_route_does_not_have_is_422_naming_it(
    client: TestClient, store: Memory, method: str, path: str, param: str
) -> None:
    body = {"value": 1} if method == "PUT" else {"query": "x"} if method == "POST" else None
    before = store.status()["revision"]
    r = client.request(method, path, headers=H, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == param and param in r.json()["detail"]
    assert store.status()["revision"] == before


def test_the_clients_send_only_parameters_the_routes_declare(app: FastAPI, store: Memory) -> None:
    """Every client call that takes options still works under the strict check."""
    with live_server(app) as url, Client(url, ADMIN_KEY) as c:
        item = c.put("team", "a", {"n": 1}, text="hello", if_version=0)
        c.get("team", "a", at_revision=item.revision)
        c.history("team", "a")
        c.list("team", limit=5, filter={"x": 1})
        c.namespaces("", depth=1)
        c.update("team", "a", [{"op": "increment", "path": "/n"}], if_version=1)
        c.delete("team", "a", if_version=2)
        list(c.export("team"))
        c.activity("")
        c.proposals("")


def test_watch_since_beyond_the_head_waits_for_those_revisions(app: FastAPI, store: Memory) -> None:
    """As in etcd: a watch from a revision not reached yet is a 200 stream that delivers
    the revisions after it once they are committed (a value beyond 64 bits is a 422)."""
    store.put("team", "a", 0)  # head 1
    with live_server(app) as url, Client(url, ADMIN_KEY) as c:
        stream = c.watch("team", since=3)
        for i in range(1, 6):  # revisions 2..6
            store.put("team", f"k{i}", i)
        got = [next(stream).revision for _ in range(3)]
        stream.close()
        r = httpx.get(f"{url}/v1/watch?since={2**63}", headers=H)
    assert got == [4, 5, 6]
    assert r.status_code == 422 and r.json()["field"] == "since"
