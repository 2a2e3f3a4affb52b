"""Proposal routes: a proposer's write answers 202 with the proposal; review over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hivemem.memory import Memory
from tests.api.helpers import ADMIN_KEY, bearer

H = bearer(ADMIN_KEY)


def test_a_proposers_write_is_202_and_writers_review_it(client: TestClient, store: Memory) -> None:
    store.grant("intern", "team", "propose")
    intern = bearer(store.create_key("intern").secret)
    store.put("team/plan", "launch", {"date": "mon"})
    r = client.put("/v1/items/team/plan/launch", json={"value": {"date": "tue"}}, headers=intern)
    assert r.status_code == 202
    proposal = r.json()
    assert proposal["status"] == "pending" and proposal["base_version"] == 1
    assert client.get("/v1/items/team/plan/launch", headers=H).json()["value"] == {"date": "mon"}
    listed = client.get("/v1/proposals", params={"prefix": "team"}, headers=H).json()
    assert [p["id"] for p in listed] == [proposal["id"]]
    r = client.post(f"/v1/proposals/{proposal['id']}/approve", json={}, headers=intern)
    assert r.status_code == 403
    r = client.post(f"/v1/proposals/{proposal['id']}/approve", json={"reason": "ok"}, headers=H)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert client.get("/v1/items/team/plan/launch", headers=H).json()["value"] == {"date": "tue"}
    r = client.delete("/v1/items/team/plan/launch", headers=intern)
    assert r.status_code == 202 and r.json()["op"] == "delete"
    r = client.post(f"/v1/proposals/{r.json()['id']}/reject", headers=H)
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    every = client.get("/v1/proposals", params={"status": "any"}, headers=intern).json()
    assert [p["status"] for p in every] == ["approved", "rejected"]
    assert client.get("/v1/proposals/0123456789abcdef", headers=H).status_code == 404
