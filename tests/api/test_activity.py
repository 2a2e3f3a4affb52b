"""``GET /v1/activity`` and what feeds it over the wire: 409s, lagged SSE watchers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hivemem.api import Settings, create_app
from hivemem.memory import Memory
from tests.api.conftest import Keys, make_client
from tests.api.helpers import ADMIN_KEY, bearer, drive_stream
from tests.embedders import HashEmbedder

H = bearer(ADMIN_KEY)


def totals(body: dict[str, Any], group: str) -> dict[str, dict[str, int]]:
    metrics = ("writes", "conflicts", "expiries", "lagged")
    return {s["name"]: {m: sum(s[m]) for m in metrics} for s in body[group]}


def test_a_409_is_counted_for_the_namespace_and_the_key_that_wrote(
    client: TestClient, keys: Keys
) -> None:
    w = bearer(keys.writer)
    assert (
        client.put(
            "/v1/items/own/x/lock", json={"value": 1, "if_version": 0}, headers=w
        ).status_code
        == 200
    )
    refused = client.put("/v1/items/own/x/lock", json={"value": 2, "if_version": 0}, headers=w)
    assert refused.status_code == 409
    body = refused.json()
    assert (body["namespace"], body["key"]) == ("own/x", "lock")  # which write conflicted
    batch = client.post(
        "/v1/batch",
        json={"ops": [{"namespace": "own/y", "key": "k", "value": 1, "if_version": 3}]},
        headers=w,
    )
    assert batch.status_code == 409 and batch.json()["namespace"] == "own/y"
    r = client.get("/v1/activity", params={"window": 600}, headers=H)
    assert r.status_code == 200
    report = r.json()
    assert totals(report, "namespaces") == {
        "own/x": {"writes": 1, "conflicts": 1, "expiries": 0, "lagged": 0},
        "own/y": {"writes": 0, "conflicts": 1, "expiries": 0, "lagged": 0},
    }
    assert totals(report, "authors")["writer"]["conflicts"] == 2
    assert report["bucket"] == 10 and len(report["total"]["writes"]) in (61, 62)


def test_each_key_sees_only_its_readable_namespaces(client: TestClient, keys: Keys) -> None:
    client.put("/v1/items/own/a", json={"value": 1}, headers=bearer(keys.writer))
    client.put("/v1/items/other/b", json={"value": 1}, headers=bearer(keys.other))
    client.put("/v1/items/other/b", json={"value": 2, "if_version": 0}, headers=bearer(keys.other))
    mine = client.get("/v1/activity", headers=bearer(keys.reader)).json()
    assert list(totals(mine, "namespaces")) == ["own"]
    assert list(totals(mine, "authors")) == ["writer"]
    assert sum(mine["total"]["conflicts"]) == 0
    theirs = client.get("/v1/activity", headers=bearer(keys.other)).json()
    assert list(totals(theirs, "namespaces")) == ["other"]
    assert sum(theirs["total"]["conflicts"]) == 1
    everything = client.get("/v1/activity", params={"depth": 1}, headers=H).json()
    assert set(totals(everything, "namespaces")) == {"own", "other"}


def test_the_metrics_page_carries_no_namespace_or_principal_names(
    client: TestClient, keys: Keys
) -> None:
    w = bearer(keys.writer)
    client.put("/v1/items/own/secret-project/k", json={"value": 1}, headers=w)
    client.put("/v1/items/own/secret-project/k", json={"value": 1, "if_version": 0}, headers=w)
    text = client.get("/metrics").text
    assert "secret-project" not in text and "writer" not in text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": 10}, "window"),
        ({"window": "soon"}, "window"),
        ({"bucket": 15}, "bucket"),
        ({"depth": 17}, "depth"),
        ({"limit": 0}, "limit"),
        ({"prefix": "Nope!"}, "prefix"),
    ],
)
def test_bad_parameters_are_a_422_naming_them(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    r = client.get("/v1/activity", params=params, headers=H)
    assert r.status_code == 422
    assert r.json()["field"] == field


def test_activity_needs_a_key(client: TestClient) -> None:
    assert client.get("/v1/activity").status_code == 401


@pytest.fixture
def lag_store() -> Iterator[Memory]:
    mem = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None, watch_queue=4)
    yield mem
    mem.close()


def test_an_sse_watcher_cut_off_for_lagging_is_counted(lag_store: Memory) -> None:
    app = create_app(Settings(admin_key=ADMIN_KEY, heartbeat=0.1), memory=lag_store)
    lag_store.grant("slow", "a", "read")
    slow = lag_store.create_key("slow").secret
    lag_store.put("a", "start", 0)

    def burst() -> None:  # the reader is stuck while 20 revisions commit
        for i in range(20):
            lag_store.put("a", f"k{i}", i)

    result = drive_stream(
        app,
        "/v1/watch?since=1&namespaces=a",
        bearer(slow),
        gate=lambda r: b": ping" in r.body,
        during_gate=burst,
    )
    assert b"watch-lagged" in result.body
    with make_client(app) as client:
        report = client.get("/v1/activity", params={"window": 600}, headers=H).json()
    assert totals(report, "namespaces")["a"]["lagged"] == 1
    assert totals(report, "authors")["slow"]["lagged"] == 1
