"""Hostile input over HTTP: every rejection is a 4xx naming its field and writes nothing.

Each case is one of the reproductions of issue 6 or a neighbour of it; the principle
(one validation layer before the commit) is exercised more widely by
``tests/test_properties.py`` and the schemathesis run in ``tests/api/test_schema_fuzz.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hivemem.memory import Memory
from hivemem.memory.validation import INT64_MAX, MAX_BODY_DEPTH, MAX_JSON_DEPTH, MAX_TTL
from tests.api.helpers import ADMIN_KEY, bearer

H = {**bearer(ADMIN_KEY), "Content-Type": "application/json"}
BIG = 10**30


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def reject(
    client: TestClient, store: Memory, method: str, path: str, field: str, **kw: Any
) -> None:
    before = store.revision
    r = client.request(method, path, headers={**H, **kw.pop("headers", {})}, **kw)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert body["field"] == field, body
    assert store.revision == before, "a rejected request wrote something"


PUT = "/v1/items/tenant/x/a"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": 1, "ttl": 1e308}, "ttl"),
        ({"value": 1, "ttl": 3e11}, "ttl"),
        ({"value": 1, "ttl": MAX_TTL + 1}, "ttl"),
        ({"value": 1, "ttl": "10"}, "ttl"),
        ({"value": 1, "ttl": True}, "ttl"),
        ({"value": 1, "metadata": {"m": "\ud800"}}, "metadata.m"),
        ({"value": {"a": ["ok", "\udfff"]}}, "value.a[1]"),
        ({"value": 1, "text": "lone \ud800"}, "text"),
        ({"value": nested(MAX_JSON_DEPTH + 1)}, "value"),
        ({"value": 1, "if_version": True}, "if_version"),
        ({"value": 1, "if_version": BIG}, "if_version"),
        ({"value": 1, "if_version": -1}, "if_version"),
        ({"value": 1, "merge": "three_way", "base_version": BIG}, "base_version"),
        ({"value": 1, "vector": [True, False, True]}, "vector[0]"),
        ({"value": 1, "vector": ["1.0", 2.0]}, "vector[0]"),
        ({"value": 1, "metadata": {"n": BIG}}, "metadata.n"),
    ],
)
def test_bad_put_is_a_4xx_naming_its_field_and_writes_nothing(
    client: TestClient, store: Memory, body: dict[str, Any], field: str
) -> None:
    reject(client, store, "PUT", PUT, field, content=json.dumps(body))


def test_the_deepest_value_allowed_round_trips(client: TestClient) -> None:
    value = nested(MAX_JSON_DEPTH)
    r = client.put(PUT, headers=H, json={"value": value})
    assert r.status_code == 200, r.text
    assert client.get(PUT, headers=H).json()["value"] == value
    assert client.get("/v1/history/tenant/x/a", headers=H).json()[0]["value"] == value


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"[" * (MAX_BODY_DEPTH + 1) + b"]" * (MAX_BODY_DEPTH + 1), "deeper"),
        (b"[" * 100_000, "deeper"),
        (b'{"value": "\xff\xfe"}', "UTF-8"),
        (b'{"value": ', "JSON"),
    ],
)
def test_malformed_or_too_deep_bodies_are_422_naming_body(
    client: TestClient, store: Memory, raw: bytes, detail: str
) -> None:
    for path in (PUT, "/v1/search", "/v1/txn", "/v1/batch", "/v1/compact"):
        method = "PUT" if path == PUT else "POST"
        before = store.revision
        r = client.request(method, path, headers=H, content=raw)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["field"] == "body"
        assert detail in r.json()["detail"]
        assert store.revision == before


@pytest.mark.parametrize(
    ("path", "field"),
    [("/v1/items/team/k%FF", "key"), ("/v1/items/te%FFam/k", "namespace")],
)
def test_path_segments_must_be_utf8_after_percent_decoding(
    client: TestClient, store: Memory, path: str, field: str
) -> None:
    reject(client, store, "PUT", path, field, json={"value": 1})
    r = client.get(path, headers=H)
    assert r.status_code == 422 and r.json()["field"] == field


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/items/team/a%2Fb", "key"),  # was: item b in namespace team/a
        ("/v1/items/team/x/", "key"),  # was: a 307 redirect to item x in namespace team
        ("/v1/history/team/a%2fb", "key"),
    ],
)
def test_an_item_path_names_exactly_one_item(
    client: TestClient, store: Memory, path: str, field: str
) -> None:
    """Found by tests/test_properties.py: an encoded '/' or an empty key reached another item."""
    reject(client, store, "PUT", path, field, json={"value": 1}, follow_redirects=False)
    r = client.get(path, headers=H, follow_redirects=False)
    assert r.status_code == 422 and r.json()["field"] == field
    assert store.list("").items == []


def test_an_encoded_slash_in_the_namespace_separates_segments(
    client: TestClient, store: Memory
) -> None:
    """OpenAPI clients encode a namespace path parameter's '/' as %2F: same item."""
    r = client.put("/v1/items/team%2Fx/b", headers=H, json={"value": 1})
    assert r.status_code == 200 and (r.json()["namespace"], r.json()["key"]) == ("team/x", "b")
    assert client.get("/v1/items/team/x/b", headers=H).json()["value"] == 1


def test_query_parameters_must_be_utf8(client: TestClient) -> None:
    r = client.get("/v1/items?prefix=%FF", headers=H)
    assert r.status_code == 422 and r.json()["field"] == "prefix"
    r = client.get('/v1/items?filter={"kind":"%FF"}', headers=H)
    assert r.status_code == 422 and r.json()["field"] == "filter"


def test_compact_takes_no_boolean(client: TestClient, store: Memory) -> None:
    client.put(PUT, headers=H, json={"value": 1})
    reject(client, store, "POST", "/v1/compact", "revision", json={"revision": True})
    assert store.compacted_revision == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"compare": [{"namespace": "a", "key": "k", "target": "value", "value": float("nan")}]},
         "compare[0].value"),
        ({"compare": [{"namespace": "a", "key": "k", "value": BIG}]}, "compare[0].value"),
        ({"compare": [{"namespace": "a", "key": "k", "value": True}]}, "compare[0].value"),
        ({"success": [{"op": "put", "namespace": "a", "key": "k\ud800", "value": 1}]},
         "success[0].key"),
        ({"success": [{"op": "delete", "namespace": "a", "key": "k", "if_version": BIG}]},
         "success[0].if_version"),
    ],
)  # fmt: skip
def test_bad_txn_is_a_4xx_naming_its_field(
    client: TestClient, store: Memory, body: dict[str, Any], field: str
) -> None:
    # json.dumps writes NaN as the bare word NaN, which Python's parser reads back
    reject(client, store, "POST", "/v1/txn", field, content=json.dumps(body))


def test_if_version_beyond_64_bits_is_422_not_409(client: TestClient, store: Memory) -> None:
    client.put(PUT, headers=H, json={"value": 1})
    reject(client, store, "PUT", PUT, "if_version", json={"value": 2, "if_version": 2**64})
    r = client.delete(f"{PUT}?if_version={2**64}", headers=H)
    assert r.status_code == 422 and r.json()["field"] == "if_version"


DEEP_FILTER = '{"n": ' + "[" * 1000 + "]" * 1000 + "}"


@pytest.mark.parametrize(
    ("flt", "field", "in_url"),
    [
        ('{"n": {"$gte": ' + str(BIG) + "}}", "filter.n.$gte", True),
        (json.dumps({f"f{i}": i for i in range(10_000)}), "filter", False),
        (json.dumps({"n": {"$in": list(range(100_000))}}), "filter.n.$in", False),
        ('{"n": "\\ud800"}', "filter.n.$eq", True),
        (DEEP_FILTER, "body", True),
    ],
)
def test_filters_beyond_the_limits_are_422(
    client: TestClient, flt: str, field: str, in_url: bool
) -> None:
    body = '{"query": "x", "filter": ' + flt + "}"
    r = client.post("/v1/search", headers=H, content=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    if in_url:  # the others are longer than a URL may be
        r = client.get("/v1/items", params={"filter": flt}, headers=H)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == ("filter" if field == "body" else field)


def test_in_filter_at_its_limit_works(client: TestClient) -> None:
    client.put(PUT, headers=H, json={"value": 1, "metadata": {"n": 999}})
    flt = {"n": {"$in": list(range(1000))}}
    r = client.get("/v1/items", params={"filter": json.dumps(flt)}, headers=H)
    assert r.status_code == 200 and len(r.json()["items"]) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=" + str(BIG), "since"),
        ("since=-1", "since"),
        ("since=abc", "since"),
        ("namespaces=Bad", "namespaces[0]"),
    ],
)
def test_watch_parameter_errors_name_their_field(
    client: TestClient, query: str, field: str
) -> None:
    r = client.get(f"/v1/watch?{query}", headers=H)
    assert r.status_code == 422 and r.json()["field"] == field


@pytest.mark.parametrize("value", [str(BIG), "-3", "x"])
def test_last_event_id_errors_name_it(client: TestClient, value: str) -> None:
    r = client.get("/v1/watch", headers={**H, "Last-Event-ID": value})
    assert r.status_code == 422 and r.json()["field"] == "Last-Event-ID"


def test_import_without_a_body_is_422(client: TestClient, store: Memory) -> None:
    r = client.post("/v1/import", headers={**H, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 422 and r.json()["field"] == "body"
    line = json.dumps({"namespace": "a", "key": "k\ud800", "value": 1}).encode()
    reject(client, store, "POST", "/v1/import", "records[0].key", content=line,
           headers={"Content-Type": "application/x-ndjson"})  # fmt: skip


def test_lone_surrogate_query_is_422(client: TestClient) -> None:
    r = client.post("/v1/search", headers=H, content=json.dumps({"query": "a \ud800"}))
    assert r.status_code == 422 and r.json()["field"] == "query"
    r = client.post("/v1/search", headers=H, json={"query": "x" * 20_000})
    assert r.status_code == 422 and r.json()["field"] == "query"


@pytest.mark.parametrize("ns", ["team/.", "team/..", "./x", "a/../b"])
def test_dot_segments_are_rejected_for_writes(client: TestClient, store: Memory, ns: str) -> None:
    with pytest.raises(Exception, match="namespace"):
        store.put(ns, "k", 1)
    reject(client, store, "POST", "/v1/batch", "ops[0].namespace",
           json={"ops": [{"op": "put", "namespace": ns, "key": "k", "value": 1}]})  # fmt: skip


def test_last_store_wide_admin_cannot_be_removed_or_downgraded(
    client: TestClient, store: Memory
) -> None:
    r = client.delete("/v1/grants?principal=admin&prefix=", headers=H)
    assert r.status_code == 409 and "last admin" in r.json()["detail"]
    r = client.put("/v1/grants", headers=H,
                   json={"principal": "admin", "prefix": "", "permission": "read"})  # fmt: skip
    assert r.status_code == 409
    assert client.get("/v1/whoami", headers=H).status_code == 200
    # with a second admin, the first may go
    client.put("/v1/grants", headers=H,
               json={"principal": "ops", "prefix": "", "permission": "admin"})  # fmt: skip
    assert client.delete("/v1/grants?principal=admin&prefix=", headers=H).status_code == 204
    assert store.grants("ops")[0].permission == "admin"


def test_wrong_sized_vectors_never_reach_an_embedderless_store() -> None:
    mem = Memory.open(":memory:", embedder=None, reaper_interval=None)
    try:
        mem.put("a", "first", 1, vector=[1.0] * 8)  # fixes the dimension at 8
        with pytest.raises(Exception, match="8"):
            mem.put("a", "second", 1, vector=[1.0] * 4)
        with pytest.raises(Exception, match="vector"):
            mem.search(vector=[1.0] * 4)
        assert [h.item.key for h in mem.search(vector=[1.0] * 8, mode="vector")] == ["first"]
        assert mem.revision == 1
    finally:
        mem.close()


def test_int64_bounds_are_inclusive(client: TestClient, store: Memory) -> None:
    client.put(PUT, headers=H, json={"value": 1, "metadata": {"n": INT64_MAX}})
    flt = json.dumps({"n": {"$gte": INT64_MAX}})
    r = client.get("/v1/items", params={"filter": flt}, headers=H)
    assert r.status_code == 200 and len(r.json()["items"]) == 1


def test_every_request_body_model_is_strict(app) -> None:  # type: ignore[no-untyped-def]
    """Found by schemathesis: ``POST /v1/leases {"ttl": true}`` granted a 1 s lease (a
    lax model turned the boolean into 1.0 before the engine's checks saw it)."""
    import importlib
    import pkgutil
    import re

    from pydantic import BaseModel

    import hivemem.api.routes as routes

    bodies = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(
        [op.get("requestBody", {}) for path in app.openapi()["paths"].values()
         for op in path.values()]
    )))  # fmt: skip
    classes = {}
    for info in pkgutil.iter_modules(routes.__path__):
        module = importlib.import_module(f"{routes.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel):
                classes[value.__name__] = value
    models = {classes[name] for name in bodies if name in classes}
    assert len(models) >= 10
    lax = [m.__name__ for m in models if not m.model_config.get("strict")]
    assert lax == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/leases", {"ttl": True}, "ttl"),
        ("/v1/claims", {"namespace": "own/tasks", "ttl": True}, "ttl"),
        ("/v1/recall", {"query": "q", "k": True}, "k"),
        ("/v1/recall", {"query": "q", "budget_tokens": "100"}, "budget_tokens"),
    ],
)
def test_booleans_and_strings_are_not_numbers_in_any_body(
    client: TestClient, store: Memory, path: str, body: dict[str, Any], field: str
) -> None:
    reject(client, store, "POST", path, field, json=body)


def test_a_405_allows_every_method_of_the_path(client: TestClient) -> None:
    """Found by schemathesis: the router named only the first route's method."""
    r = client.options("/v1/items/own/k", headers=H)
    assert r.status_code == 405
    assert set(r.headers["Allow"].split(", ")) >= {"DELETE", "GET", "PATCH", "PUT"}
    allow = client.post("/v1/grants", headers=H, json={}).headers["Allow"]
    assert set(allow.split(", ")) - {"HEAD"} == {"DELETE", "GET", "PUT"}


def test_the_last_admin_conflict_is_documented(app) -> None:  # type: ignore[no-untyped-def]
    paths = app.openapi()["paths"]["/v1/grants"]
    assert "409" in paths["put"]["responses"] and "409" in paths["delete"]["responses"]


def test_a_single_valued_query_parameter_given_twice_is_422(
    client: TestClient, store: Memory
) -> None:
    """Found by schemathesis at full counts: ``?filter=a&filter=b`` kept the last value
    silently (and a watch then answered 410 for a request that was malformed)."""
    for path, field in [
        ("/v1/watch?filter=0.0&filter=", "filter"),
        ("/v1/items?prefix=own&prefix=other", "prefix"),
        ("/v1/items/own/k?at_revision=1&at_revision=2", "at_revision"),
    ]:
        r = client.get(path, headers=H)
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    reject(client, store, "DELETE", "/v1/items/own/k?if_version=0&if_version=5", "if_version")
    store.put("own", "a", 1)
    store.put("own", "b", 2)
    r = client.get("/v1/items?prefix=own&limit=1", headers=H)  # list params stay usable
    assert r.status_code == 200


def test_list_query_parameters_may_repeat(app) -> None:  # type: ignore[no-untyped-def]
    from hivemem.api.routing import api_routes, repeatable_query

    watch = next(r for r in api_routes(app.routes) if r.path == "/v1/watch")
    assert "namespaces" in repeatable_query(watch) and "since" not in repeatable_query(watch)
