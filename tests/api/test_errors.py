"""Every error status, as problem+json naming what went wrong; a rejected write writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hivemem.api import Settings, create_app
from hivemem.memory import Memory
from tests.api.conftest import Keys, make_client
from tests.api.helpers import ADMIN_KEY, bearer

H = bearer(ADMIN_KEY)
PROBLEM = "application/problem+json"


def problem(response: Any, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{type_}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


@pytest.fixture
def seeded(client: TestClient, store: Memory) -> Iterator[TestClient]:
    """One item ``team/doc`` at version 1, value ``{"a": 1, "b": 1}``."""
    store.put("team", "doc", {"a": 1, "b": 1})
    yield client


def unchanged(store: Memory, before: int) -> None:
    assert store.revision == before, "a rejected request wrote something"


# --- 422: the field is named ----------------------------------------------------------

INVALID: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("bad namespace", "PUT", "/v1/items/Team/k", {"value": 1}, "namespace"),
    ("empty namespace segment", "PUT", "/v1/items/team//k", {"value": 1}, "namespace"),
    ("control char in key", "PUT", "/v1/items/team/a%01b", {"value": 1}, "key"),
    ("key too long", "PUT", "/v1/items/team/" + "k" * 513, {"value": 1}, "key"),
    ("key is dot-dot", "PUT", "/v1/items/team/%2E%2E", {"value": 1}, "key"),
    ("value missing", "PUT", "/v1/items/team/k", {"text": "x"}, "value"),
    ("unknown body field", "PUT", "/v1/items/team/k", {"value": 1, "colour": "red"}, "colour"),
    ("merge mode", "PUT", "/v1/items/team/k", {"value": {}, "merge": "union"}, "merge"),
    ("three_way without base", "PUT", "/v1/items/team/k", {"value": {}, "merge": "three_way"},
     "base_version"),
    ("patch needs an object", "PUT", "/v1/items/team/k", {"value": 3, "merge": "patch"}, "value"),
    ("bad metadata value", "PUT", "/v1/items/team/k", {"value": 1, "metadata": {"m": {"x": 1}}},
     "metadata.m"),
    ("bad metadata name", "PUT", "/v1/items/team/k", {"value": 1, "metadata": {"1x": 1}},
     "metadata.1x"),
    ("negative if_version", "PUT", "/v1/items/team/k", {"value": 1, "if_version": -1},
     "if_version"),
    ("ttl not positive", "PUT", "/v1/items/team/k", {"value": 1, "ttl": 0}, "ttl"),
    ("vector of wrong size", "PUT", "/v1/items/team/k", {"value": 1, "vector": [1.0, 2.0]},
     "vector"),
    ("filter operator", "POST", "/v1/search", {"query": "x", "filter": {"n": {"$regex": "a"}}},
     "filter.n.$regex"),
    ("search mode", "POST", "/v1/search", {"query": "x", "mode": "fuzzy"}, "mode"),
    ("search k", "POST", "/v1/search", {"query": "x", "k": 0}, "k"),
    ("search namespaces", "POST", "/v1/search", {"query": "x", "namespaces": ["A"]},
     "namespaces[0]"),
    ("batch op namespace", "POST", "/v1/batch",
     {"ops": [{"op": "put", "namespace": "ok", "key": "k", "value": 1},
              {"op": "put", "namespace": "NO", "key": "k", "value": 1}]}, "ops[1].namespace"),
    ("batch op kind", "POST", "/v1/batch", {"ops": [{"op": "get", "namespace": "a", "key": "k"}]},
     "ops[0].op"),
    ("batch op merge", "POST", "/v1/batch",
     {"ops": [{"op": "put", "namespace": "a", "key": "k", "value": {}, "merge": "bogus"}]},
     "ops[0].merge"),
    ("txn compare op", "POST", "/v1/txn",
     {"compare": [{"namespace": "a", "key": "k", "op": "~"}]}, "compare[0].op"),
    ("txn op key", "POST", "/v1/txn",
     {"success": [{"op": "delete", "namespace": "a", "key": "a/b"}]}, "success[0].key"),
    ("compact type", "POST", "/v1/compact", {"revision": "soon"}, "revision"),
    ("compact ahead of head", "POST", "/v1/compact", {"revision": 99}, "revision"),
    ("grant permission", "PUT", "/v1/grants", {"principal": "p", "prefix": "a",
                                               "permission": "own"}, "permission"),
    ("key principal", "POST", "/v1/keys", {"principal": "no spaces"}, "principal"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_input_is_422_naming_the_field(
    seeded: TestClient, store: Memory, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = store.revision
    r = seeded.request(method, path, json=body, headers=H)
    assert problem(r, 422, "invalid-input")["field"] == field
    unchanged(store, before)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/items", {"filter": "{not json"}, "filter"),
        ("/v1/items", {"filter": "[1]"}, "filter"),
        ("/v1/items", {"filter": '{"n": {"$near": 1}}'}, "filter.n.$near"),
        ("/v1/items", {"limit": "many"}, "limit"),
        ("/v1/items", {"limit": 0}, "limit"),
        ("/v1/items", {"cursor": "!!"}, "cursor"),
        # The engine names a single prefix like the first of a list (as embedded).
        ("/v1/items", {"prefix": "Bad"}, "prefix"),
        ("/v1/items/team/doc", {"at_revision": "x"}, "at_revision"),
        ("/v1/items/team/doc", {"at_revision": 99}, "at_revision"),
        ("/v1/export", {"prefix": "Bad"}, "prefix"),
    ],
)
def test_invalid_query_is_422_naming_the_parameter(
    seeded: TestClient, path: str, params: dict[str, Any], field: str
) -> None:
    assert (
        problem(seeded.get(path, params=params, headers=H), 422, "invalid-input")["field"] == field
    )


@pytest.mark.parametrize(
    "raw", [b"{", b'{"value": 1,}', b"", b"\xff\xfe", b"[1, 2]", b'"just a string"']
)
def test_malformed_json_body_is_422(seeded: TestClient, store: Memory, raw: bytes) -> None:
    before = store.revision
    r = seeded.put(
        "/v1/items/team/k", content=raw, headers={**H, "Content-Type": "application/json"}
    )
    assert problem(r, 422, "invalid-input")["field"] == "body"
    unchanged(store, before)


def test_malformed_ndjson_import_is_422_naming_the_record(
    seeded: TestClient, store: Memory
) -> None:
    before = store.revision
    body = b'{"namespace": "a", "key": "k", "value": 1}\n{oops\n'
    r = seeded.post("/v1/import", content=body, headers=H)
    assert problem(r, 422, "invalid-input")["field"] == "records[1]"
    r = seeded.post("/v1/import", content=b'{"namespace": "A", "key": "k"}\n', headers=H)
    # The engine validates imported records as put ops (as embedded).
    assert problem(r, 422, "invalid-input")["field"].endswith("[0].namespace")
    unchanged(store, before)


def test_nan_value_is_422(seeded: TestClient, store: Memory) -> None:
    r = seeded.put(
        "/v1/items/team/k",
        content=b'{"value": NaN}',
        headers={**H, "Content-Type": "application/json"},
    )
    assert problem(r, 422, "invalid-input")["field"] == "value"


# --- 404 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/items/team/missing"),
        ("DELETE", "/v1/items/team/missing"),
        ("GET", "/v1/history/team/missing"),
        ("DELETE", "/v1/keys/0000000000000000"),
        ("GET", "/v1/nowhere"),
        ("GET", "/v1/items/just-a-key"),
    ],
)
def test_missing_things_are_404(seeded: TestClient, store: Memory, method: str, path: str) -> None:
    before = store.revision
    problem(seeded.request(method, path, headers=H), 404, "not-found")
    unchanged(store, before)


def test_deleted_item_is_404_like_a_missing_one(seeded: TestClient) -> None:
    seeded.delete("/v1/items/team/doc", headers=H)
    gone = seeded.get("/v1/items/team/doc", headers=H)
    never = seeded.get("/v1/items/team/never", headers=H)
    assert gone.json() == never.json()


def test_wrong_method_is_a_405_problem(seeded: TestClient) -> None:
    r = seeded.patch("/v1/search", json={}, headers=H)
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == 405


# --- 409 ------------------------------------------------------------------------------


def test_stale_if_version_is_409_with_the_current_item(seeded: TestClient, store: Memory) -> None:
    before = store.revision
    r = seeded.put("/v1/items/team/doc", json={"value": 2, "if_version": 5}, headers=H)
    body = problem(r, 409, "conflict")
    assert body["current"]["version"] == 1 and body["current"]["value"] == {"a": 1, "b": 1}
    assert body["conflicts"] == []
    r = seeded.put("/v1/items/team/new", json={"value": 2, "if_version": 1}, headers=H)
    assert problem(r, 409, "conflict")["current"] is None
    r = seeded.delete("/v1/items/team/doc", params={"if_version": 3}, headers=H)
    assert problem(r, 409, "conflict")["current"]["version"] == 1
    unchanged(store, before)


def test_overlapping_three_way_merge_is_409_listing_conflicts(
    seeded: TestClient, store: Memory
) -> None:
    store.put("team", "doc", {"a": 2, "b": 1})  # theirs: a -> 2
    before = store.revision
    r = seeded.put(
        "/v1/items/team/doc",
        json={"value": {"a": 3, "b": 1}, "merge": "three_way", "base_version": 1},
        headers=H,
    )
    body = problem(r, 409, "conflict")
    assert body["conflicts"] == [{"path": "/a", "base": 1, "ours": 3, "theirs": 2, "absent": []}]
    assert body["current"]["version"] == 2
    unchanged(store, before)


def test_conflict_inside_a_batch_rolls_back_every_op(seeded: TestClient, store: Memory) -> None:
    before = store.revision
    r = seeded.post(
        "/v1/batch",
        json={
            "ops": [
                {"op": "put", "namespace": "team", "key": "fresh", "value": 1},
                {"op": "put", "namespace": "team", "key": "doc", "value": 1, "if_version": 0},
            ]
        },
        headers=H,
    )
    problem(r, 409, "conflict")
    unchanged(store, before)
    assert seeded.get("/v1/items/team/fresh", headers=H).status_code == 404


# --- 410 ------------------------------------------------------------------------------


def test_reading_below_the_compaction_point_is_410(seeded: TestClient, store: Memory) -> None:
    for i in range(3):
        store.put("team", "doc", {"a": i})
    seeded.post("/v1/compact", json={"revision": 3}, headers=H)
    r = seeded.get("/v1/items/team/doc", params={"at_revision": 1}, headers=H)
    assert problem(r, 410, "compacted")["compacted_revision"] == 3


# --- 401 / 403 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Token {ADMIN_KEY}"},
        bearer("hm_0123456789abcdef_notarealkeynotarealkey"),
        bearer("short"),
    ],
    ids=["none", "empty", "basic", "wrong-scheme", "unknown", "short"],
)
def test_missing_or_unknown_key_is_401(seeded: TestClient, headers: dict[str, str]) -> None:
    r = seeded.get("/v1/items/team/doc", headers=headers)
    problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401(seeded: TestClient, keys: Keys) -> None:
    problem(seeded.get("/v1/whoami", headers=bearer(keys.revoked)), 401, "unauthenticated")


def test_write_without_permission_is_403_and_writes_nothing(
    seeded: TestClient, store: Memory, keys: Keys
) -> None:
    store.put("own", "k", 1)
    before = store.revision
    r = seeded.put("/v1/items/own/k", json={"value": 2}, headers=bearer(keys.reader))
    problem(r, 403, "permission-denied")
    unchanged(store, before)


# --- 413 ------------------------------------------------------------------------------


@pytest.fixture
def small_body_client(store: Memory) -> Iterator[TestClient]:
    app = create_app(Settings(admin_key=ADMIN_KEY, max_body_bytes=1024), memory=store)
    with make_client(app) as c:
        yield c


def test_body_over_the_limit_is_413_by_content_length(
    small_body_client: TestClient, store: Memory
) -> None:
    before = store.revision
    r = small_body_client.put("/v1/items/team/k", json={"value": "x" * 2000}, headers=H)
    assert problem(r, 413, "payload-too-large")["field"] == "body"
    unchanged(store, before)


def test_streamed_body_over_the_limit_is_413(small_body_client: TestClient, store: Memory) -> None:
    before = store.revision

    def chunks() -> Iterator[bytes]:
        yield b'{"value": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'

    r = small_body_client.put(
        "/v1/items/team/k", content=chunks(), headers={**H, "Content-Type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    problem(r, 413, "payload-too-large")
    unchanged(store, before)


def test_body_under_the_limit_passes(small_body_client: TestClient) -> None:
    r = small_body_client.put("/v1/items/team/k", json={"value": "x" * 500}, headers=H)
    assert r.status_code == 200


def test_value_over_the_engine_limit_is_413_naming_value(store: Memory) -> None:
    small = Memory.open(
        ":memory:", embedder=store._core.embedder, reaper_interval=None, max_value_bytes=100
    )
    try:
        with make_client(create_app(Settings(admin_key=ADMIN_KEY), memory=small)) as c:
            r = c.put("/v1/items/team/k", json={"value": "y" * 200}, headers=H)
            assert problem(r, 413, "payload-too-large")["field"] == "value"
            assert small.revision == 0
    finally:
        small.close()


# --- 500 ------------------------------------------------------------------------------


def test_an_unexpected_exception_is_a_500_problem_without_internals(
    app: FastAPI, store: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Memory, "get", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/items/team/doc", headers=H)
    body = problem(r, 500, "internal")
    assert "secret internals" not in r.text and body["title"] == "Internal error"
