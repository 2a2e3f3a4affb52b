"""Thread names follow the key rules at every entry point: a bad one is a 4xx naming the
field it came in, and nothing is written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hivemem.memory import Memory
from hivemem.memory.errors import InvalidInput
from tests.api.helpers import ADMIN_KEY, bearer, item_path

H = {**bearer(ADMIN_KEY), "Content-Type": "application/json"}

# Each breaks one key rule: a '/', empty, a dot segment, a control character, too long,
# not a string.
BAD: list[Any] = ["a/b", "", ".", "..", "s\x01", "t" * 513, 5]


def _reject(client: TestClient, store: Memory, method: str, path: str, field: str, **kw: Any):  # type: ignore[no-untyped-def]
    before = store.revision
    r = client.request(method, path, headers={**H, **kw.pop("headers", {})}, **kw)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.json()["field"] == field, r.json()
    assert store.revision == before, "a rejected request wrote something"


@pytest.mark.parametrize("thread", BAD)
def test_a_bad_thread_is_rejected_on_every_route(
    client: TestClient, store: Memory, thread: Any
) -> None:
    _reject(client, store, "PUT", item_path("chat", "k"), "thread",
            json={"value": "hi", "thread": thread})  # fmt: skip
    batch = {"ops": [{"namespace": "chat", "key": "a", "value": 1},
                     {"namespace": "chat", "key": "b", "value": 2, "thread": thread}]}  # fmt: skip
    _reject(client, store, "POST", "/v1/batch", "ops[1].thread", json=batch)
    for path in ("/v1/search", "/v1/recall"):
        _reject(client, store, "POST", path, "thread", json={"query": "hi", "thread": thread})
    line = json.dumps({"namespace": "chat", "key": "k", "value": 1, "thread": thread})
    _reject(client, store, "POST", "/v1/import", "records[0].thread", content=line.encode(),
            headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    if isinstance(thread, str) and "\x01" not in thread:  # a query string carries text
        r = client.get("/v1/watch", params={"thread": thread}, headers=H)
        assert r.status_code == 422 and r.json()["field"] == "thread"


@pytest.mark.parametrize("thread", BAD)
def test_a_bad_thread_is_rejected_by_the_library(store: Memory, thread: Any) -> None:
    before = store.revision
    calls = [
        lambda: store.put("chat", "k", "hi", thread=thread),
        lambda: store.put_many([{"namespace": "chat", "key": "k", "value": 1, "thread": thread}]),
        lambda: store.search("hi", namespaces=["chat"], thread=thread),
        lambda: store.recall("hi", ["chat"], thread=thread),
        lambda: store.watch(["chat"], thread=thread),
    ]
    for call in calls:
        with pytest.raises(InvalidInput) as err:
            call()
        assert err.value.field.endswith("thread"), err.value.field
    assert store.revision == before


def test_a_thread_name_is_any_valid_key(client: TestClient, store: Memory) -> None:
    name = "Session 7 · ünïcode, spaces & punctuation!" + "x" * 400
    r = client.put(item_path("chat", "k"), json={"value": "hi", "thread": name}, headers=H)
    assert r.status_code == 200, r.text
    assert store.get("chat", "k").thread == name
