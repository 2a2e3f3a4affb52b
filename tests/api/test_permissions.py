"""Who may do what: every route × every kind of caller × own or another's namespace.

``reader``, ``writer`` and ``nsadmin`` hold read, write and admin on ``own``; ``root`` is
admin of everything; ``none``, ``bad`` and ``revoked`` have no usable key. Nothing of a
namespace the caller cannot read may show up anywhere: items, history, hits, events,
counts or error bodies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hivemem.memory import Memory
from tests.api.conftest import Keys
from tests.api.helpers import bearer, drive_stream

ROLES = ["none", "bad", "revoked", "reader", "writer", "nsadmin", "root"]
NAMESPACES = ["own", "other"]
SECRET = "zebra migration plans"


@dataclass
class Case:
    """One request, built for a namespace, and the status each role gets (own, other)."""

    method: str
    path: str
    body: Any = None
    params: dict[str, Any] | None = None
    raw: bytes | None = None
    reader: tuple[int, int] = (200, 200)
    writer: tuple[int, int] = (200, 200)
    nsadmin: tuple[int, int] = (200, 200)
    root: tuple[int, int] = (200, 200)
    public: bool = False


def cases(ns: str, key_id: str, principal: str) -> dict[str, Case]:
    read_only: dict[str, Any] = {"reader": (200, 404), "writer": (200, 404), "nsadmin": (200, 404)}
    write: dict[str, Any] = {"reader": (403, 403), "writer": (200, 403), "nsadmin": (200, 403)}
    admin: dict[str, Any] = {"reader": (403, 403), "writer": (403, 403), "nsadmin": (200, 403)}
    store_admin: dict[str, Any] = {
        "reader": (403, 403),
        "writer": (403, 403),
        "nsadmin": (403, 403),
    }
    put_op = {"op": "put", "namespace": f"{ns}/x", "key": "new", "value": 1}
    return {
        "get": Case("GET", f"/v1/items/{ns}/x/k", **read_only),
        "history": Case("GET", f"/v1/history/{ns}/x/k", **read_only),
        "put": Case("PUT", f"/v1/items/{ns}/x/new", body={"value": 1}, **write),
        "delete": Case("DELETE", f"/v1/items/{ns}/x/k", **write),
        "list": Case("GET", "/v1/items", params={"prefix": ns}),
        "search": Case("POST", "/v1/search", body={"query": SECRET, "namespaces": [ns]}),
        "batch": Case("POST", "/v1/batch", body={"ops": [put_op]}, **write),
        "txn-put": Case("POST", "/v1/txn", body={"success": [put_op]}, **write),
        "txn-get": Case(
            "POST",
            "/v1/txn",
            body={"success": [{"op": "get", "namespace": f"{ns}/x", "key": "k"}]},
            **read_only,
        ),
        "txn-compare": Case(
            "POST",
            "/v1/txn",
            body={
                "compare": [{"namespace": f"{ns}/x", "key": "k", "target": "exists", "value": True}]
            },
            **read_only,
        ),
        "watch": Case("GET", "/v1/watch", params={"namespaces": ns}),
        "export": Case("GET", "/v1/export", params={"prefix": ns}),
        "import": Case(
            "POST",
            "/v1/import",
            raw=json.dumps({"namespace": f"{ns}/x", "key": "imp", "value": 1}).encode(),
            **write,
        ),
        "revision": Case("GET", "/v1/revision"),
        "compact": Case("POST", "/v1/compact", body={"revision": 1}, **store_admin),
        "whoami": Case("GET", "/v1/whoami"),
        "principals": Case("GET", "/v1/principals", **store_admin),
        "grants-list": Case("GET", "/v1/grants"),
        "grant": Case(
            "PUT",
            "/v1/grants",
            body={"principal": "newbie", "prefix": ns, "permission": "read"},
            **admin,
        ),
        "grant-revoke": Case(
            "DELETE",
            "/v1/grants",
            params={"principal": "reader" if ns == "own" else "stranger", "prefix": ns},
            reader=(403, 403),
            writer=(403, 403),
            nsadmin=(204, 403),
            root=(204, 204),
        ),
        "key-create": Case(
            "POST", "/v1/keys", body={"principal": "newbie"}, root=(201, 201), **store_admin
        ),
        "keys-mine": Case("GET", "/v1/keys", params={"principal": principal}),
        "keys-all": Case("GET", "/v1/keys", **store_admin),
        "key-revoke": Case("DELETE", f"/v1/keys/{key_id}", root=(204, 204), **store_admin),
        "healthz": Case("GET", "/healthz", public=True),
        "readyz": Case("GET", "/readyz", public=True),
        "metrics": Case("GET", "/metrics", public=True),
    }


PRINCIPALS = {"reader": "reader", "writer": "writer", "nsadmin": "nsadmin", "root": "admin"}


def expected(case: Case, role: str, ns: str) -> int:
    if role in ("none", "bad", "revoked"):
        return 200 if case.public else 401
    own, other = getattr(case, role)
    return int(own if ns == "own" else other)


@pytest.fixture
def env(store: Memory, keys: Keys) -> Memory:
    for ns in NAMESPACES:
        store.put(f"{ns}/x", "k", {"ns": ns}, text=f"{SECRET} of {ns}")
    store.create_key("victim")
    return store


def key_for(role: str, keys: Keys) -> str | None:
    return {
        "none": None,
        "bad": keys.bad,
        "revoked": keys.revoked,
        "reader": keys.reader,
        "writer": keys.writer,
        "nsadmin": keys.nsadmin,
        "root": keys.admin,
    }[role]


def send(client: TestClient, app: FastAPI, case: Case, headers: dict[str, str]) -> int:
    if case.path == "/v1/watch":
        query = "&".join(f"{k}={v}" for k, v in (case.params or {}).items())
        result = drive_stream(app, f"{case.path}?{query}", headers, until=lambda r: True)
        return result.status
    r = client.request(
        case.method,
        case.path,
        json=case.body,
        params=case.params,
        content=case.raw,
        headers=headers,
    )
    return r.status_code


@pytest.mark.parametrize("ns", NAMESPACES)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", list(cases("own", "id", "p")))
def test_permission_matrix(
    client: TestClient,
    app: FastAPI,
    env: Memory,
    keys: Keys,
    route: str,
    role: str,
    ns: str,
) -> None:
    victim = env.keys("victim")[0]
    case = cases(ns, victim.id, PRINCIPALS.get(role, "nobody"))[route]
    before = env.revision
    status = send(client, app, case, bearer(key_for(role, keys)))
    assert status == expected(case, role, ns), f"{route} as {role} on {ns}"
    if status >= 400:
        assert env.revision == before


# --- leak checks ------------------------------------------------------------------------


@pytest.fixture
def reader(client: TestClient, env: Memory, keys: Keys) -> TestClient:
    client.headers.update(bearer(keys.reader))
    return client


def test_unreadable_item_looks_exactly_like_a_missing_one(reader: TestClient) -> None:
    hidden = reader.get("/v1/items/other/x/k")
    missing_there = reader.get("/v1/items/other/x/nope")
    missing_here = reader.get("/v1/items/own/x/nope")
    assert hidden.status_code == 404
    assert hidden.content == missing_there.content == missing_here.content
    assert hidden.headers["content-type"] == missing_here.headers["content-type"]
    assert reader.get("/v1/history/other/x/k").content == reader.get("/v1/history/own/x/no").content
    at = reader.get("/v1/items/other/x/k", params={"at_revision": 1})
    assert at.content == missing_here.content


def test_txn_reads_of_unreadable_items_look_missing(reader: TestClient) -> None:
    def get(ns: str, key: str) -> bytes:
        body = {"success": [{"op": "get", "namespace": ns, "key": key}]}
        return reader.post("/v1/txn", json=body).content

    assert get("other/x", "k") == get("other/x", "zzz")
    assert b"zebra" not in get("other/x", "k")


def test_list_and_export_show_only_readable_namespaces(reader: TestClient) -> None:
    for prefix in ("", "other", "other/x"):
        items = reader.get("/v1/items", params={"prefix": prefix}).json()["items"]
        assert all(i["namespace"].startswith("own") for i in items), prefix
    assert len(reader.get("/v1/items").json()["items"]) == 1
    assert reader.get("/v1/items", params={"prefix": "other"}).json() == {
        "items": [],
        "cursor": None,
    }
    exported = reader.get("/v1/export").text
    assert "own/x" in exported and "other" not in exported
    assert reader.get("/v1/export", params={"prefix": "other"}).text == ""


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
def test_search_hits_only_readable_namespaces(reader: TestClient, mode: str) -> None:
    for namespaces in (None, ["other"], ["own", "other"], [""]):
        hits = reader.post(
            "/v1/search", json={"query": SECRET, "namespaces": namespaces, "mode": mode, "k": 50}
        ).json()
        assert all(h["item"]["namespace"] == "own/x" for h in hits), namespaces
    assert reader.post("/v1/search", json={"query": SECRET, "namespaces": ["other"]}).json() == []


def test_watch_events_only_carry_readable_namespaces(app: FastAPI, env: Memory, keys: Keys) -> None:
    env.put("other/x", "k2", "more secrets")
    env.put("own/x", "last", "the end")
    result = drive_stream(
        app, "/v1/watch?since=0", bearer(keys.reader), until=lambda r: b'"last"' in r.body
    )
    changes = [c for ev in result.events() if ev.event == "changes" for c in ev.json()]
    assert {c["namespace"] for c in changes} == {"own/x"}
    assert b"other" not in result.body and b"zebra migration plans of other" not in result.body


def test_websocket_watch_only_carries_readable_namespaces(
    client: TestClient, env: Memory, keys: Keys
) -> None:
    env.put("other/x", "k2", "more secrets")
    env.put("own/x", "last", "the end")
    with client.websocket_connect(f"/v1/watch/ws?since=0&api_key={keys.reader}") as ws:
        seen: list[dict[str, Any]] = []
        while not any(c["key"] == "last" for c in seen):
            seen += ws.receive_json()["changes"]
    assert {c["namespace"] for c in seen} == {"own/x"}


def test_grants_listing_shows_only_own_or_administered_grants(
    client: TestClient, env: Memory, keys: Keys
) -> None:
    mine = client.get("/v1/grants", headers=bearer(keys.reader)).json()
    assert mine == [{"principal": "reader", "prefix": "own", "permission": "read"}]
    administered = client.get("/v1/grants", headers=bearer(keys.nsadmin)).json()
    assert {g["prefix"] for g in administered} == {"own"}
    assert client.get("/v1/keys", headers=bearer(keys.reader)).status_code == 403


def test_forbidden_write_names_only_what_the_caller_sent(reader: TestClient) -> None:
    body = reader.put("/v1/items/other/x/k", json={"value": 1}).json()
    assert "zebra" not in json.dumps(body) and "current" not in body
