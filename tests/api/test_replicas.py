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
