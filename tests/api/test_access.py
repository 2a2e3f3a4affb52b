"""Keys, grants, whoami, export/import, bootstrap and revocation across workers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hivemem.api import Settings, bootstrap, create_app
from hivemem.memory import Memory
from hivemem.memory.models import ApiKeyInfo
from tests.api.conftest import make_client
from tests.api.helpers import ADMIN_KEY, bearer
from tests.embedders import HashEmbedder

H = bearer(ADMIN_KEY)


def test_whoami_names_the_key_holder(client: TestClient) -> None:
    assert client.get("/v1/whoami", headers=H).json() == {"principal": "admin"}


def test_key_lifecycle_create_use_list_revoke(client: TestClient) -> None:
    r = client.post("/v1/keys", json={"principal": "planner"}, headers=H)
    assert r.status_code == 201
    created = r.json()
    assert created["secret"].startswith("hm_") and created["principal"] == "planner"
    agent = bearer(created["secret"])
    assert client.get("/v1/whoami", headers=agent).json() == {"principal": "planner"}
    listed = client.get("/v1/keys", params={"principal": "planner"}, headers=H).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "secret" not in listed[0]
    own = client.get("/v1/keys", params={"principal": "planner"}, headers=agent)
    assert own.status_code == 200 and own.json() == listed
    assert client.delete(f"/v1/keys/{created['id']}", headers=H).status_code == 204
    assert client.get("/v1/whoami", headers=agent).status_code == 401
    assert client.delete(f"/v1/keys/{created['id']}", headers=H).status_code == 404


def test_grant_lifecycle_gives_and_takes_access(client: TestClient, store: Memory) -> None:
    store.put("team/a", "k", 1)
    agent = bearer(store.create_key("planner").secret)
    assert client.get("/v1/items/team/a/k", headers=agent).status_code == 404
    grant = {"principal": "planner", "prefix": "team", "permission": "read"}
    r = client.put("/v1/grants", json=grant, headers=H)
    assert r.status_code == 200 and r.json() == grant
    assert client.get("/v1/grants", params={"principal": "planner"}, headers=H).json() == [grant]
    assert client.get("/v1/items/team/a/k", headers=agent).status_code == 200
    assert client.put("/v1/items/team/a/k", json={"value": 2}, headers=agent).status_code == 403
    r = client.delete("/v1/grants", params={"principal": "planner", "prefix": "team"}, headers=H)
    assert r.status_code == 204 and r.content == b""
    assert client.get("/v1/items/team/a/k", headers=agent).status_code == 404


def test_namespace_admin_can_grant_within_its_prefix_only(
    client: TestClient, store: Memory
) -> None:
    store.grant("lead", "team", "admin")
    lead = bearer(store.create_key("lead").secret)
    ok = {"principal": "dev", "prefix": "team/x", "permission": "write"}
    assert client.put("/v1/grants", json=ok, headers=lead).status_code == 200
    outside = {"principal": "dev", "prefix": "ops", "permission": "write"}
    assert client.put("/v1/grants", json=outside, headers=lead).status_code == 403
    assert [g.prefix for g in store.grants("dev")] == ["team/x"]


def test_export_then_import_round_trips_items(client: TestClient, store: Memory) -> None:
    store.put("team/a", "k1", {"x": 1}, text="alpha", metadata={"tag": "t"})
    store.put("team/b", "k2", "beta")
    store.put("ops", "k3", 3)
    r = client.get("/v1/export", params={"prefix": "team"}, headers=H)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in r.text.splitlines()]
    assert [(x["namespace"], x["key"]) for x in records] == [("team/a", "k1"), ("team/b", "k2")]
    assert len(records[0]["vector"]) == 64
    no_vectors = client.get("/v1/export", params={"vectors": "false"}, headers=H).text
    assert "vector" not in no_vectors

    target = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None)
    try:
        with make_client(create_app(Settings(admin_key=ADMIN_KEY), memory=target)) as other:
            r = other.post(
                "/v1/import",
                content=r.content,
                headers={**H, "Content-Type": "application/x-ndjson"},
            )
            assert r.json() == {"imported": 2}
            copy = other.get("/v1/items/team/a/k1", headers=H).json()
            assert (copy["value"], copy["text"], copy["metadata"]) == (
                {"x": 1},
                "alpha",
                {"tag": "t"},
            )
            hits = other.post("/v1/search", json={"query": "beta"}, headers=H).json()
            assert hits[0]["item"]["key"] == "k2"
    finally:
        target.close()


def test_empty_import_imports_nothing(client: TestClient) -> None:
    assert client.post("/v1/import", content=b"\n\n", headers=H).json() == {"imported": 0}


# --- bootstrap --------------------------------------------------------------------------


def test_empty_store_gets_a_printed_admin_key(capsys: pytest.CaptureFixture[str]) -> None:
    mem = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None)
    try:
        app = create_app(Settings(), memory=mem)
        err = capsys.readouterr().err
        secret = next(w for w in err.split() if w.startswith("hm_"))
        with make_client(app) as client:
            assert client.get("/v1/whoami", headers=bearer(secret)).json() == {"principal": "admin"}
        create_app(Settings(), memory=mem)  # not empty any more: no second key
        assert "hm_" not in capsys.readouterr().err
        assert len(mem.keys()) == 1
    finally:
        mem.close()


def test_admin_key_setting_is_registered_and_not_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mem = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None)
    try:
        with make_client(create_app(Settings(admin_key="operator-chosen-key-42"), memory=mem)) as c:
            r = c.put(
                "/v1/items/any/k", json={"value": 1}, headers=bearer("operator-chosen-key-42")
            )
            assert r.status_code == 200
        assert "operator-chosen-key-42" not in capsys.readouterr().err
    finally:
        mem.close()


def test_settings_come_from_hivemem_environment_variables() -> None:
    env = {
        "HIVEMEM_DATA_DIR": "/srv/hive",
        "HIVEMEM_PORT": "9000",
        "HIVEMEM_ADMIN_KEY": "k" * 20,
        "HIVEMEM_MAX_BODY_BYTES": "1024",
        "HIVEMEM_HEARTBEAT": "2.5",
        "HIVEMEM_WATCH_QUEUE": "",
    }
    s = Settings.from_env(env, host="0.0.0.0")
    assert (s.data_dir, s.port, s.admin_key, s.max_body_bytes, s.heartbeat, s.host) == (
        "/srv/hive", 9000, "k" * 20, 1024, 2.5, "0.0.0.0",
    )  # fmt: skip
    assert s.watch_queue == Settings().watch_queue
    with pytest.raises(ValueError, match="HIVEMEM_PORT"):
        Settings.from_env({"HIVEMEM_PORT": "eighty"})


def test_app_opens_and_closes_its_own_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hivemem.memory import engine

    monkeypatch.setattr(engine, "default_embedder", lambda: HashEmbedder())
    settings = Settings(data_dir=str(tmp_path / "data"), admin_key=ADMIN_KEY, durability="normal")
    app = create_app(settings)
    with make_client(app) as client:
        assert client.put("/v1/items/a/k", json={"value": 1}, headers=H).status_code == 200
    assert app.state.memory._core.closed
    reopened = create_app(settings)
    with make_client(reopened) as client:
        assert client.get("/v1/items/a/k", headers=H).json()["value"] == 1


# --- several workers on one data directory --------------------------------------------


@pytest.mark.slow
def test_key_revoked_on_one_worker_is_refused_by_another_within_a_second(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    one = Memory.open(data, embedder=HashEmbedder(), reaper_interval=None, durability="normal")
    two = Memory.open(data, embedder=HashEmbedder(), reaper_interval=None, durability="normal")
    try:
        settings = Settings(admin_key=ADMIN_KEY)
        with (
            make_client(create_app(settings, memory=one)) as first,
            make_client(create_app(settings, memory=two)) as second,
        ):
            created = first.post("/v1/keys", json={"principal": "agent"}, headers=H).json()
            agent = bearer(created["secret"])
            assert second.get("/v1/whoami", headers=agent).status_code == 200  # now cached
            assert first.delete(f"/v1/keys/{created['id']}", headers=H).status_code == 204
            revoked_at = time.monotonic()
            while second.get("/v1/whoami", headers=agent).status_code != 401:
                assert time.monotonic() - revoked_at < 1.0, "still accepted after a second"
                time.sleep(0.02)
            assert first.get("/v1/whoami", headers=agent).status_code == 401
    finally:
        two.close()
        one.close()


def test_a_worker_losing_the_bootstrap_race_still_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = str(tmp_path / "data")
    one = Memory.open(data, embedder=HashEmbedder(), reaper_interval=None, durability="normal")
    two = Memory.open(data, embedder=HashEmbedder(), reaper_interval=None, durability="normal")
    try:
        settings = Settings(admin_key=ADMIN_KEY)
        bootstrap(two, settings)  # the other worker wins
        real_keys = one.keys
        calls: list[int] = []

        def stale_keys(principal: str | None = None) -> list[ApiKeyInfo]:
            calls.append(1)  # the first look happened before the winner's write
            return [] if len(calls) == 1 else real_keys(principal)

        monkeypatch.setattr(one, "keys", stale_keys)
        with make_client(create_app(settings, memory=one)) as client:
            assert client.get("/v1/whoami", headers=H).json() == {"principal": "admin"}
        assert len(calls) == 2
    finally:
        two.close()
        one.close()
