"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hivemem.api import Settings, create_app
from hivemem.memory import Memory
from tests.api.conftest import make_client
from tests.api.helpers import ADMIN_KEY, bearer
from tests.embedders import HashEmbedder

H = bearer(ADMIN_KEY)

CONTRACT = {
    ("PUT", "/v1/items/{namespace}/{key}"),
    ("GET", "/v1/items/{namespace}/{key}"),
    ("DELETE", "/v1/items/{namespace}/{key}"),
    ("PATCH", "/v1/items/{namespace}/{key}"),
    ("GET", "/v1/history/{namespace}/{key}"),
    ("GET", "/v1/items"),
    ("GET", "/v1/namespaces"),
    ("GET", "/v1/activity"),
    ("POST", "/v1/search"),
    ("POST", "/v1/recall"),
    ("POST", "/v1/batch"),
    ("POST", "/v1/txn"),
    ("GET", "/v1/watch"),
    ("POST", "/v1/leases"),
    ("POST", "/v1/leases/{lease_id}/keepalive"),
    ("GET", "/v1/leases/{lease_id}"),
    ("DELETE", "/v1/leases/{lease_id}"),
    ("POST", "/v1/claims"),
    ("POST", "/v1/claims/complete"),
    ("POST", "/v1/claims/release"),
    ("GET", "/v1/proposals"),
    ("GET", "/v1/proposals/{proposal_id}"),
    ("POST", "/v1/proposals/{proposal_id}/approve"),
    ("POST", "/v1/proposals/{proposal_id}/reject"),
    ("POST", "/v1/compact"),
    ("GET", "/v1/revision"),
    ("GET", "/v1/export"),
    ("POST", "/v1/import"),
    ("GET", "/v1/principals"),
    ("GET", "/v1/grants"),
    ("PUT", "/v1/grants"),
    ("DELETE", "/v1/grants"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/{key_id}"),
    ("GET", "/v1/whoami"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}


def test_healthz_needs_no_key(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_is_200_when_the_index_has_caught_up(client: TestClient, store: Memory) -> None:
    store.put("a", "k", "text")
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "revision": 1, "index_revision": 1}


def test_readyz_is_503_while_the_index_lags(
    client: TestClient, store: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("a", "k", "text")
    real = store.status

    def lagging() -> dict[str, Any]:
        return {**real(), "index_revision": 0}

    monkeypatch.setattr(store, "status", lagging)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/unavailable"


def test_readyz_is_503_once_the_store_is_closed() -> None:
    mem = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None)
    app = create_app(Settings(admin_key=ADMIN_KEY), memory=mem)
    mem.close()
    with make_client(app) as client:
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_metrics_expose_requests_latency_revision_lag_and_subscribers(
    client: TestClient, store: Memory
) -> None:
    client.put("/v1/items/a/k", json={"value": 1}, headers=H)
    client.get("/v1/items/a/missing", headers=H)
    client.get("/v1/whoami")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'hivemem_requests_total{route="/v1/items/{namespace}/{key}",method="PUT",status="200"} 1'
        in text
    )
    assert (
        'hivemem_requests_total{route="/v1/items/{namespace}/{key}",method="GET",status="404"} 1'
        in text
    )
    assert 'hivemem_requests_total{route="/v1/whoami",method="GET",status="401"} 1' in text
    assert "# TYPE hivemem_request_seconds histogram" in text
    assert 'hivemem_request_seconds_bucket{route="/v1/whoami",le="+Inf"} 1' in text
    assert 'hivemem_request_seconds_count{route="/v1/whoami"} 1' in text
    assert re.search(r"^hivemem_revision 1$", text, re.M)
    assert re.search(r"^hivemem_index_lag 0$", text, re.M)
    assert re.search(r"^hivemem_watch_subscribers 0$", text, re.M)
    for line in text.splitlines():  # every sample line parses as name{labels} value
        if not line.startswith("#"):
            assert re.fullmatch(r'[a-z_]+(\{([a-z]+="[^"]*",?)+\})? [0-9.e+-]+', line), line


def test_unmatched_paths_share_one_metrics_label(client: TestClient) -> None:
    for i in range(3):
        client.get(f"/nothing/{i}")
    assert 'route="unmatched",method="GET",status="404"} 3' in client.get("/metrics").text


def _has_example(node: Any) -> bool:
    if isinstance(node, dict):
        if "example" in node or "examples" in node:
            return True
        return any(_has_example(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_example(v) for v in node)
    return False


def test_openapi_lists_every_route_with_an_example(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    operations = {
        (method.upper(), path): op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert set(operations) == CONTRACT
    for key, op in operations.items():
        assert _has_example(op), f"{key} has no example"
        assert op.get("summary"), f"{key} has no summary"


def test_openapi_errors_are_documented_as_problems(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "Problem" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in json.dumps(doc)
    put = doc["paths"]["/v1/items/{namespace}/{key}"]["put"]
    assert set(put["responses"]) >= {"200", "401", "403", "409", "413", "422"}
    assert list(put["responses"]["409"]["content"]) == ["application/problem+json"]
    assert put["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Item"
    }
    assert put["security"] == [{"ApiKey": []}]


def test_openapi_uses_the_engine_models(app: FastAPI) -> None:
    schemas = app.openapi()["components"]["schemas"]
    for name in ("Item", "Hit", "ListPage", "TxnRequest", "TxnResult", "Grant", "ApiKeyCreated"):
        assert name in schemas


def test_docs_page_is_served(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and "openapi.json" in r.text
