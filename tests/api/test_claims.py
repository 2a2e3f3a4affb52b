"""Claim routes: 200 with a Claim or 204 when nothing is open; fenced writes over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hivemem.memory import Memory
from tests.api.helpers import ADMIN_KEY, bearer

H = bearer(ADMIN_KEY)


def test_claim_complete_and_fenced_writes_over_http(client: TestClient, store: Memory) -> None:
    store.put("team/tasks", "t0", {"n": 0})
    r = client.post("/v1/claims", json={"namespace": "team/tasks", "ttl": 30}, headers=H)
    assert r.status_code == 200
    claim = r.json()
    assert claim["item"]["claim"]["state"] == "claimed" and claim["token"].startswith("hmf1.")
    assert client.post("/v1/claims", json={"namespace": "team/tasks"}, headers=H).status_code == 204
    put = client.put(
        "/v1/items/team/out/t0", json={"value": "ok", "fence": claim["token"]}, headers=H
    )
    assert put.status_code == 200
    r = client.post("/v1/claims/complete", json={"token": claim["token"], "value": 7}, headers=H)
    assert r.status_code == 200 and r.json()["claim"]["state"] == "done" and r.json()["value"] == 7
    r = client.post("/v1/claims/complete", json={"token": claim["token"]}, headers=H)
    assert r.status_code == 409 and r.json()["current"]["claim"]["state"] == "done"
    r = client.delete(f"/v1/items/team/out/t0?fence={claim['token']}", headers=H)
    assert r.status_code == 409
    batch = {
        "ops": [
            {"op": "put", "namespace": "team/out", "key": "t0", "value": 1, "fence": claim["token"]}
        ]
    }
    assert client.post("/v1/batch", json=batch, headers=H).status_code == 409
    assert store.get("team/out", "t0").value == "ok"


def test_claim_routes_name_bad_input(client: TestClient) -> None:
    r = client.post("/v1/claims", json={"namespace": "team/tasks", "ttl": -1}, headers=H)
    assert r.status_code == 422 and r.json()["field"] == "ttl"
    r = client.post("/v1/claims/release", json={"token": "nope"}, headers=H)
    assert r.status_code == 422 and r.json()["field"] == "token"
    r = client.put("/v1/items/team/x/k", json={"value": 1, "fence": "nope"}, headers=H)
    assert r.status_code == 422 and r.json()["field"] == "fence"
