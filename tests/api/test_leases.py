"""Lease routes: grant (201), keepalive, read, revoke (204), and the WebSocket keepalive."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hivemem.memory import Memory
from tests.api.helpers import ADMIN_KEY, bearer
from tests.conftest import Clock

H = bearer(ADMIN_KEY)


def test_lease_routes_grant_renew_read_and_revoke(client: TestClient, store: Memory) -> None:
    r = client.post("/v1/leases", json={"ttl": 30}, headers=H)
    assert r.status_code == 201
    lease = r.json()
    assert lease["ttl"] == 30 and lease["alive"] and lease["holder"] == "admin"
    put = client.put("/v1/items/team/p/a1", json={"value": 1, "lease": lease["id"]}, headers=H)
    assert put.status_code == 200 and put.json()["lease"] == lease["id"]
    revision = store.revision
    r = client.post(f"/v1/leases/{lease['id']}/keepalive", headers=H)
    assert r.status_code == 200 and r.json()["items"] == 1
    assert store.revision == revision  # keepalives take no revision
    assert client.get(f"/v1/leases/{lease['id']}", headers=H).json()["items"] == 1
    assert client.delete(f"/v1/leases/{lease['id']}", headers=H).status_code == 204
    assert client.get("/v1/items/team/p/a1", headers=H).status_code == 404
    for method in ("get", "delete"):
        r = getattr(client, method)(f"/v1/leases/{lease['id']}", headers=H)
        assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"


def test_lease_routes_name_bad_input(client: TestClient) -> None:
    r = client.post("/v1/leases", json={"ttl": -1}, headers=H)
    assert r.status_code == 422 and r.json()["field"] == "ttl"
    r = client.post("/v1/leases/not-a-lease/keepalive", headers=H)
    assert r.status_code == 422 and r.json()["field"] == "lease_id"
    r = client.put("/v1/items/team/p/a", json={"value": 1, "lease": "x"}, headers=H)
    assert r.status_code == 422 and r.json()["field"] == "lease"
    assert client.post("/v1/leases", json={"ttl": 5}).status_code == 401


def test_websocket_keepalive_renews_per_message_and_closing_does_not_revoke(
    client: TestClient, store: Memory, clock: Clock
) -> None:
    lease = client.post("/v1/leases", json={"ttl": 5}, headers=H).json()
    store.put("team/p", "a", 1, lease=lease["id"])
    url = f"/v1/leases/{lease['id']}/keepalive/ws"
    with client.websocket_connect(url, headers=H) as ws:
        deadlines = []
        for _ in range(4):
            clock.advance(3)
            ws.send_text("{}")
            deadlines.append(ws.receive_json()["expires_at"])
        assert deadlines == sorted(deadlines) and len(set(deadlines)) == 4
    assert store.get("team/p", "a").value == 1  # 12 s > ttl: renewing kept it alive
    assert store.get_lease(lease["id"]).alive  # closed, not revoked
    clock.advance(6)
    with client.websocket_connect(url, headers=H) as ws:
        ws.send_text("{}")
        assert ws.receive_json()["error"]["status"] == 404
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 4404


def test_websocket_keepalive_needs_a_key(client: TestClient) -> None:
    with client.websocket_connect("/v1/leases/0123456789abcdef/keepalive/ws") as ws:
        assert ws.receive_json()["error"]["status"] == 401
