"""Happy paths of the item, search, batch and transaction routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hivemem.memory import Memory
from hivemem.memory.models import Hit, Item, ListPage, TxnResult
from tests.api.helpers import ADMIN_KEY, bearer, item_path

H = bearer(ADMIN_KEY)


def put(client: TestClient, ns: str, key: str, **body: object) -> dict[str, Any]:
    r = client.put(item_path(ns, key), json=body, headers=H)
    assert r.status_code == 200, r.text
    written: dict[str, Any] = r.json()
    return written


def test_put_then_get_returns_the_item_written(client: TestClient) -> None:
    written = put(
        client, "team/notes", "deploy-plan", value={"step": 1}, text="Deploy on Friday",
        metadata={"kind": "plan"},
    )  # fmt: skip
    item = Item.model_validate(written)
    assert (item.namespace, item.key, item.version, item.author) == (
        "team/notes", "deploy-plan", 1, "admin",
    )  # fmt: skip
    got = client.get(item_path("team/notes", "deploy-plan"), headers=H)
    assert got.status_code == 200
    assert got.json() == written


@pytest.mark.parametrize(
    "key", ["plain", "with space", "q?a#b", "per%cent", "ü-é-✓", "a+b=c&d", ".hidden", "x" * 512]
)
def test_any_valid_key_round_trips_as_the_last_path_segment(live_url: str, key: str) -> None:
    # Over a real server: Starlette's TestClient decodes the path twice ('%25' breaks).
    with httpx.Client(base_url=live_url, headers=H) as http:
        assert http.put(item_path("deep/er/ns", key), json={"value": key}).status_code == 200
        got = http.get(item_path("deep/er/ns", key)).json()
        assert (got["namespace"], got["key"], got["value"]) == ("deep/er/ns", key, key)
        listed = http.get("/v1/items", params={"prefix": "deep"}).json()["items"]
        assert [i["key"] for i in listed] == [key]


def test_get_at_revision_ignores_later_writes(client: TestClient) -> None:
    first = put(client, "team", "k", value=1)
    put(client, "team", "k", value=2)
    old = client.get(item_path("team", "k"), params={"at_revision": first["revision"]}, headers=H)
    assert old.json()["value"] == 1


def test_put_options_cas_patch_three_way_and_ttl(client: TestClient) -> None:
    put(client, "team", "doc", value={"a": 1, "b": 1})
    put(client, "team", "doc", value={"a": 1, "b": 2}, if_version=1)
    patched = put(client, "team", "doc", value={"c": 3}, merge="patch")
    assert patched["value"] == {"a": 1, "b": 2, "c": 3}
    merged = put(client, "team", "doc", value={"a": 9, "b": 1}, merge="three_way", base_version=1)
    assert merged["value"] == {"a": 9, "b": 2, "c": 3}
    ttl = put(client, "team", "short", value="x", ttl=60)
    assert ttl["expires_at"] is not None


def test_put_with_a_vector_is_searchable_by_vector(client: TestClient, store: Memory) -> None:
    vec = [1.0] + [0.0] * 63
    put(client, "team", "v", value="no text", vector=vec)
    hits = client.post(
        "/v1/search", json={"vector": vec, "mode": "vector", "k": 1}, headers=H
    ).json()
    assert hits[0]["item"]["key"] == "v"


def test_delete_returns_the_tombstone_and_history_keeps_it(client: TestClient) -> None:
    put(client, "team", "gone", value=1)
    r = client.delete(item_path("team", "gone"), params={"if_version": 1}, headers=H)
    assert r.status_code == 200
    assert r.json()["deleted"] is True and r.json()["version"] == 2
    assert client.get(item_path("team", "gone"), headers=H).status_code == 404
    history = client.get(item_path("team", "gone", op="history"), headers=H).json()
    assert [(h["version"], h["deleted"]) for h in history] == [(1, False), (2, True)]


def test_list_paginates_and_filters(client: TestClient) -> None:
    for i in range(5):
        put(client, "team/list", f"k{i}", value=i, metadata={"n": i})
    put(client, "elsewhere", "k", value=0)
    page = ListPage.model_validate(
        client.get("/v1/items", params={"prefix": "team", "limit": 2}, headers=H).json()
    )
    keys = [i.key for i in page.items]
    while page.cursor:
        page = ListPage.model_validate(
            client.get(
                "/v1/items", params={"prefix": "team", "limit": 2, "cursor": page.cursor}, headers=H
            ).json()
        )
        keys += [i.key for i in page.items]
    assert keys == [f"k{i}" for i in range(5)]
    filtered = client.get(
        "/v1/items", params={"prefix": "team", "filter": '{"n": {"$gte": 3}}'}, headers=H
    ).json()
    assert [i["key"] for i in filtered["items"]] == ["k3", "k4"]


def test_search_finds_by_meaning_and_keyword(client: TestClient) -> None:
    put(client, "team", "deploy", value="the deploy happens on friday")
    put(client, "team", "lunch", value="lunch is at noon")
    for mode in ("hybrid", "keyword", "vector"):
        r = client.post(
            "/v1/search", json={"query": "deploy friday", "mode": mode, "k": 1}, headers=H
        )
        hits = [Hit.model_validate(h) for h in r.json()]
        assert hits[0].item.key == "deploy", mode


def test_batch_writes_puts_and_deletes_in_one_revision(client: TestClient) -> None:
    put(client, "team", "old", value=1)
    r = client.post(
        "/v1/batch",
        json={
            "ops": [
                {"op": "put", "namespace": "team", "key": "a", "value": 1},
                {"op": "put", "namespace": "team/sub", "key": "b", "value": 2},
                {"op": "delete", "namespace": "team", "key": "old"},
            ]
        },
        headers=H,
    )
    assert r.status_code == 200
    items = [Item.model_validate(i) for i in r.json()]
    assert [(i.key, i.deleted) for i in items] == [("a", False), ("b", False), ("old", True)]
    assert len({i.revision for i in items}) == 1


def test_txn_runs_success_or_failure_branch(client: TestClient) -> None:
    claim = {
        "compare": [{"namespace": "team", "key": "task", "target": "exists", "value": False}],
        "success": [{"op": "put", "namespace": "team", "key": "task", "value": {"owner": "a"}}],
        "failure": [{"op": "get", "namespace": "team", "key": "task"}],
    }
    first = TxnResult.model_validate(client.post("/v1/txn", json=claim, headers=H).json())
    assert first.succeeded and first.results[0].item is not None
    second = TxnResult.model_validate(client.post("/v1/txn", json=claim, headers=H).json())
    assert not second.succeeded
    assert second.results[0].item is not None
    assert second.results[0].item.value == {"owner": "a"}


def test_revision_reports_head_and_compaction_point(client: TestClient) -> None:
    put(client, "team", "a", value=1)
    put(client, "team", "a", value=2)
    assert client.get("/v1/revision", headers=H).json() == {"revision": 2, "compacted_revision": 0}
    r = client.post("/v1/compact", json={"revision": 2}, headers=H)
    assert r.json() == {"compacted_revision": 2}
    assert client.get("/v1/revision", headers=H).json() == {"revision": 2, "compacted_revision": 2}
