"""PATCH /v1/items/{namespace}/{key}: JSON Patch, hivemem's update ops and merge patch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hivemem.memory.models import Item
from tests.api.helpers import ADMIN_KEY, bearer, item_path

H = bearer(ADMIN_KEY)
JSON_PATCH = "application/json-patch+json"
UPDATE = "application/vnd.hivemem.update+json"
MERGE = "application/merge-patch+json"


def patch(client: TestClient, path: str, body: Any, media: str, **headers: str) -> Any:
    return client.patch(
        path,
        content=json.dumps(body),
        headers={**H, "Content-Type": media, **headers},
    )


def test_json_patch_applies_the_standard_ops_and_returns_the_new_item(client: TestClient) -> None:
    client.put(item_path("team", "plan"), json={"value": {"owner": "ops", "step": 1}}, headers=H)
    r = patch(
        client,
        item_path("team", "plan"),
        [
            {"op": "test", "path": "/owner", "value": "ops"},
            {"op": "replace", "path": "/step", "value": 2},
        ],
        JSON_PATCH,
    )
    assert r.status_code == 200, r.text
    item = Item.model_validate(r.json())
    assert (item.value, item.version, item.author) == ({"owner": "ops", "step": 2}, 2, "admin")
    assert r.headers["etag"] == '"2"'


def test_extensions_need_the_hivemem_media_type(client: TestClient) -> None:
    r = patch(client, item_path("team", "c"), [{"op": "increment", "path": "/n"}], JSON_PATCH)
    assert r.status_code == 422 and r.json()["field"] == "ops[0].op"
    r = patch(client, item_path("team", "c"), {"ops": [{"op": "increment", "path": "/n"}]}, UPDATE)
    assert r.status_code == 200 and r.json()["value"] == {"n": 1}


def test_update_body_carries_text_metadata_and_create(client: TestClient) -> None:
    r = patch(
        client,
        item_path("team", "c"),
        {"ops": [{"op": "append", "path": "/log", "value": "a"}], "create": False},
        UPDATE,
    )
    assert r.status_code == 404
    r = patch(
        client,
        item_path("team", "c"),
        {
            "ops": [{"op": "append", "path": "/log", "value": "a"}],
            "text": "a log",
            "metadata": {"k": 1},
        },
        UPDATE,
    )
    assert r.status_code == 200
    assert (r.json()["text"], r.json()["metadata"]) == ("a log", {"k": 1})


def test_if_match_and_if_version_are_compare_and_swap(client: TestClient) -> None:
    path = item_path("team", "cas")
    body = {"ops": [{"op": "increment", "path": "/n"}]}
    etag = patch(client, path, body, UPDATE).headers["etag"]
    assert etag == '"1"'
    assert patch(client, path, body, UPDATE, **{"If-Match": etag}).status_code == 200
    stale = patch(client, path, body, UPDATE, **{"If-Match": etag})
    assert stale.status_code == 409 and stale.json()["current"]["version"] == 2
    r = client.patch(
        path + "?if_version=2", content=json.dumps(body), headers={**H, "Content-Type": UPDATE}
    )
    assert r.status_code == 200 and r.json()["value"] == {"n": 3}
    bad = patch(client, path, body, UPDATE, **{"If-Match": "W/3"})
    assert bad.status_code == 422 and bad.json()["field"] == "If-Match"
    assert client.get(path, headers=H).headers["etag"] == '"3"'


def test_merge_patch_is_rfc7396(client: TestClient) -> None:
    path = item_path("team", "m")
    client.put(path, json={"value": {"a": 1, "b": {"c": 2, "d": 3}}}, headers=H)
    r = patch(client, path, {"b": {"c": None, "e": 4}, "a": 5}, MERGE)
    assert r.status_code == 200 and r.json()["value"] == {"a": 5, "b": {"d": 3, "e": 4}}


def test_a_failed_test_is_409_listing_expected_and_actual(client: TestClient) -> None:
    path = item_path("team", "t")
    client.put(path, json={"value": {"owner": "ops"}}, headers=H)
    revision = client.get("/v1/revision", headers=H).json()
    r = patch(client, path, [{"op": "test", "path": "/owner", "value": "dev"}], JSON_PATCH)
    assert r.status_code == 409
    assert r.json()["conflicts"] == [
        {"path": "/owner", "expected": "dev", "actual": "ops", "absent": False}
    ]
    assert client.get("/v1/revision", headers=H).json() == revision


def test_bad_bodies_and_media_types_are_client_errors(client: TestClient) -> None:
    path = item_path("team", "x")
    assert patch(client, path, {"ops": {}}, UPDATE).json()["field"] == "ops"
    assert patch(client, path, {"ops": [{"op": "add", "path": "/a"}]}, UPDATE).json()["field"] == (
        "ops[0].value"
    )
    assert patch(client, path, {"op": "add"}, JSON_PATCH).json()["field"] == "body"
    assert patch(client, path, [1], UPDATE).json()["field"] == "body"
    assert patch(client, path, {"ops": [], "bogus": 1}, UPDATE).status_code == 422
    plain = client.patch(path, json={"ops": [{"op": "increment", "path": "/n"}]}, headers=H)
    assert plain.status_code == 200 and plain.json()["value"] == {"n": 1}
    plain = client.patch(path, json=[{"op": "add", "path": "/m", "value": 2}], headers=H)
    assert plain.status_code == 200 and plain.json()["value"] == {"n": 1, "m": 2}
    r = client.patch(path, content=b"[]", headers={**H, "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.headers["content-type"] == "application/problem+json"
    r = patch(client, path, [{"op": "remove", "path": "/nothing"}], JSON_PATCH)
    assert r.status_code == 422 and r.json()["field"] == "ops[0].path"


@pytest.mark.parametrize("media", [JSON_PATCH, UPDATE, MERGE])
def test_every_patch_media_type_has_its_raw_body_checked_before_parsing(
    client: TestClient, media: str
) -> None:
    """The +json media types pass the same guard as application/json: too deep, not
    UTF-8, not JSON or empty are 422 naming ``body``, and nothing is written."""
    path = item_path("team", "guarded")
    before = client.get("/v1/revision", headers=H).json()
    bodies = {
        b"[" * 5000 + b"]" * 5000: "nests deeper",
        b'{"ops": "\xff"}': "UTF-8",
        b'{"ops": [': "not valid JSON",
        b"": "required",
    }
    for raw, says in bodies.items():
        r = client.patch(path, content=raw, headers={**H, "Content-Type": media})
        assert r.status_code == 422, (raw[:20], r.text)
        assert r.json()["field"] == "body" and says in r.json()["detail"], r.text
    for query, field in (("create=maybe", "create"), ("if_version=x", "if_version")):
        r = client.patch(
            f"{path}?{query}", content=b"[]", headers={**H, "Content-Type": JSON_PATCH}
        )
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert client.get("/v1/revision", headers=H).json() == before
    assert client.get(path, headers=H).status_code == 404


def test_create_false_is_404_for_a_missing_item(client: TestClient) -> None:
    path = item_path("team", "absent")
    r = patch(client, f"{path}?create=false", [{"op": "add", "path": "/a", "value": 1}], JSON_PATCH)
    assert r.status_code == 404, r.text
    r = patch(client, f"{path}?create=true", [{"op": "add", "path": "/a", "value": 1}], JSON_PATCH)
    assert r.status_code == 200 and r.json()["value"] == {"a": 1}


def test_batches_and_txns_take_update_ops(client: TestClient) -> None:
    r = client.post(
        "/v1/batch",
        json={
            "ops": [
                {
                    "op": "update",
                    "namespace": "team",
                    "key": "b",
                    "ops": [{"op": "increment", "path": "/n"}],
                }
            ]
            * 3
        },
        headers=H,
    )
    assert r.status_code == 200 and [i["value"] for i in r.json()] == [{"n": 1}, {"n": 2}, {"n": 3}]
    r = client.post(
        "/v1/txn",
        json={
            "success": [
                {
                    "op": "update",
                    "namespace": "team",
                    "key": "b",
                    "ops": [{"op": "remove", "path": "/n"}],
                }
            ]
        },
        headers=H,
    )
    assert r.status_code == 200 and r.json()["results"][0]["op"] == "update"
    r = client.post(
        "/v1/txn",
        json={"success": [{"op": "update", "namespace": "team", "key": "b", "ops": "increment"}]},
        headers=H,
    )
    assert r.status_code == 422 and r.json()["field"].startswith("success[0].ops")


def test_the_watch_change_carries_the_ops(client: TestClient) -> None:
    ops = [{"op": "increment", "path": "/n", "value": 5}]
    patch(client, item_path("team", "w"), {"ops": ops}, UPDATE)
    with client.stream("GET", "/v1/watch?namespaces=team&since=0", headers=H) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                changes = json.loads(line[5:])
                break
    assert changes[0]["ops"] == ops and changes[0]["item"]["value"] == {"n": 5}
