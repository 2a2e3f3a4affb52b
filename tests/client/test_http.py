"""The client over ``httpx.MockTransport``: retry policy, problem decoding, wire format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hivemem.memory.client import AsyncClient, Client
from hivemem.memory.errors import (
    Compacted,
    Conflict,
    HivememError,
    InvalidInput,
    Lagged,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from hivemem.memory.models import Item

pytestmark = pytest.mark.timeout(20)

ITEM = {
    "namespace": "team/notes",
    "key": "k",
    "value": {"a": 1},
    "text": None,
    "metadata": {},
    "version": 2,
    "revision": 7,
    "author": "admin",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}


def problem(slug: str, status: int, **extras: Any) -> httpx.Response:
    body = {"type": f"/problems/{slug}", "title": slug, "status": status, "detail": "d", **extras}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


class Flaky:
    """A handler that answers ``failures`` (responses or exceptions) before succeeding."""

    def __init__(self, *failures: httpx.Response | Exception, ok: Any = ITEM) -> None:
        self.failures = list(failures)
        self.ok = ok
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return httpx.Response(200, json=self.ok)


def client_for(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> Client:
    c = Client(
        "http://hivemem.test/base/", "hm_key", transport=httpx.MockTransport(handler), **options
    )
    c._backoff_base = 0.0  # no sleeping in tests
    return c


# -- retry policy --------------------------------------------------------------------


def test_plain_put_is_not_retried_on_503() -> None:
    flaky = Flaky(httpx.Response(503, text="busy"))
    with pytest.raises(Unavailable):
        client_for(flaky).put("team/notes", "k", {"a": 1})
    assert len(flaky.requests) == 1


def test_get_is_retried_on_502_503_504_until_it_succeeds() -> None:
    flaky = Flaky(httpx.Response(502), problem("unavailable", 503), httpx.Response(504))
    item = client_for(flaky).get("team/notes", "k")
    assert item == Item.model_validate(ITEM)
    assert len(flaky.requests) == 4


def test_compare_and_swap_put_is_retried() -> None:
    flaky = Flaky(httpx.Response(503), httpx.ConnectError("refused"))
    client_for(flaky).put("team/notes", "k", {"a": 1}, if_version=1)
    assert len(flaky.requests) == 3
    assert {json.loads(r.content)["if_version"] for r in flaky.requests} == {1}


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.put("team/notes", "k", 1),
        lambda c: c.put_many([{"namespace": "team/notes", "key": "k", "value": 1}]),
        lambda c: c.txn([], [{"op": "delete", "namespace": "team/notes", "key": "k"}]),
        lambda c: c.delete("team/notes", "k"),
        lambda c: c.import_items([{"namespace": "team/notes", "key": "k", "value": 1}]),
        lambda c: c.compact(3),
    ],
    ids=["put", "put_many", "txn", "delete", "import", "compact"],
)
def test_writes_that_could_apply_twice_are_never_retried(call: Callable[[Client], Any]) -> None:
    flaky = Flaky(httpx.ConnectError("refused"), ok=[])
    with pytest.raises(Unavailable) as info:
        call(client_for(flaky))
    assert len(flaky.requests) == 1
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_delete_with_if_version_is_retried() -> None:
    flaky = Flaky(httpx.ReadTimeout("slow"), ok={**ITEM, "deleted": True})
    assert client_for(flaky).delete("team/notes", "k", if_version=2).deleted
    assert len(flaky.requests) == 2


def test_connection_errors_become_unavailable_after_the_retries() -> None:
    flaky = Flaky(*[httpx.ConnectError("refused")] * 10)
    with pytest.raises(Unavailable) as info:
        client_for(flaky, retries=2).get("team/notes", "k")
    assert len(flaky.requests) == 3
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert "hivemem.test" in str(info.value)


def test_other_errors_are_the_answer_and_not_retried() -> None:
    flaky = Flaky(problem("internal", 500))
    with pytest.raises(HivememError):
        client_for(flaky).get("team/notes", "k")
    assert len(flaky.requests) == 1


def test_retries_zero_sends_once() -> None:
    flaky = Flaky(httpx.Response(503))
    with pytest.raises(Unavailable):
        client_for(flaky, retries=0).get("team/notes", "k")
    assert len(flaky.requests) == 1


def test_retry_after_is_honoured_but_capped() -> None:
    c = client_for(Flaky())
    # at least Retry-After, plus up to a quarter more so a shed crowd does not return at once
    assert 1.0 <= c._delay(0, httpx.Response(503, headers={"Retry-After": "1"})) <= 1.25
    capped = c._delay(0, httpx.Response(503, headers={"Retry-After": "3600"}))
    assert c._backoff_cap <= capped <= c._backoff_cap * 1.25


def test_async_client_follows_the_same_policy() -> None:
    async def run() -> tuple[int, int]:
        get_flaky = Flaky(httpx.Response(503), httpx.ConnectError("refused"))
        put_flaky = Flaky(httpx.Response(503))
        for flaky in (get_flaky, put_flaky):
            c = AsyncClient("http://hivemem.test", "k", transport=httpx.MockTransport(flaky))
            c._backoff_base = 0.0
            async with c:
                if flaky is get_flaky:
                    await c.get("team/notes", "k")
                else:
                    with pytest.raises(Unavailable):
                        await c.put("team/notes", "k", 1)
        return len(get_flaky.requests), len(put_flaky.requests)

    assert asyncio.run(run()) == (3, 1)


# -- problem decoding ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "cls", "attrs"),
    [
        (problem("not-found", 404), NotFound, {}),
        (problem("permission-denied", 403), PermissionDenied, {}),
        (problem("unauthenticated", 401), Unauthenticated, {}),
        (problem("invalid-input", 422, field="metadata.x"), InvalidInput, {"field": "metadata.x"}),
        (problem("payload-too-large", 413, field="body"), PayloadTooLarge, {"field": "body"}),
        (problem("compacted", 410, compacted_revision=9), Compacted, {"compacted_revision": 9}),
        (problem("watch-lagged", 503, resume_revision=4), Lagged, {"resume_revision": 4}),
        (
            problem("conflict", 409, current=ITEM, conflicts=[{"path": "/a", "ours": 1}]),
            Conflict,
            {"current": Item.model_validate(ITEM)},
        ),
        (httpx.Response(404, text="<html>nginx</html>"), NotFound, {}),
        (
            httpx.Response(422, json={"detail": [{"loc": ["body", "k"], "msg": "bad"}]}),
            InvalidInput,
            {"field": "k"},
        ),
        (httpx.Response(418, json={"type": "/problems/teapot", "detail": "x"}), HivememError, {}),
    ],
)
def test_problems_become_the_engine_errors(
    response: httpx.Response, cls: type[HivememError], attrs: dict[str, Any]
) -> None:
    with pytest.raises(HivememError) as info:
        client_for(Flaky(response), retries=0).get("team/notes", "k")
    assert type(info.value) is cls
    for name, value in attrs.items():
        assert getattr(info.value, name) == value
    if cls is Conflict:
        assert info.value.conflicts[0].path == "/a"  # type: ignore[attr-defined]


# -- wire format ---------------------------------------------------------------------


def test_requests_carry_the_key_and_encode_the_item_path() -> None:
    flaky = Flaky()
    c = client_for(flaky)
    c.get("team/notes", "a b?c#d%e", at_revision=3)
    request = flaky.requests[0]
    assert request.headers["Authorization"] == "Bearer hm_key"
    assert request.url.raw_path == b"/base/v1/items/team/notes/a%20b%3Fc%23d%25e?at_revision=3"


def test_path_parts_a_url_cannot_carry_are_rejected_before_sending() -> None:
    flaky = Flaky()
    c = client_for(flaky)
    for ns, key, field in [
        ("team", "a/b", "key"),
        ("", "k", "namespace"),
        ("Team", "k", "namespace"),
    ]:
        with pytest.raises(InvalidInput) as info:
            c.get(ns, key)
        assert info.value.field == field
    assert flaky.requests == []


def test_put_sends_only_the_options_given_and_vectors_as_floats() -> None:
    import numpy as np

    flaky = Flaky()
    client_for(flaky).put("team", "k", {"v": 1}, ttl=5, vector=np.ones(3, dtype=np.float32))
    assert json.loads(flaky.requests[0].content) == {
        "value": {"v": 1},
        "ttl": 5,
        "vector": [1.0] * 3,
    }


def test_values_that_are_not_json_are_invalid_input_naming_the_field() -> None:
    flaky = Flaky()
    with pytest.raises(InvalidInput) as info:
        client_for(flaky).put("team", "k", {"x": float("inf")})
    assert info.value.field == "value"
    assert flaky.requests == []


def test_list_sends_the_filter_as_json() -> None:
    flaky = Flaky(ok={"items": [], "cursor": None})
    client_for(flaky).list("team", filter={"p": {"$gte": 2}}, limit=5, cursor="c")
    params = flaky.requests[0].url.params
    assert json.loads(params["filter"]) == {"p": {"$gte": 2}}
    assert (params["prefix"], params["limit"], params["cursor"]) == ("team", "5", "c")


def test_injected_http_client_is_used_and_left_open() -> None:
    flaky = Flaky()
    http = httpx.Client(transport=httpx.MockTransport(flaky))
    with Client("http://hivemem.test", "k", http_client=http) as c:
        c.get("team", "k")
    assert not http.is_closed
    http.close()


def test_import_sends_one_request_per_batch() -> None:
    flaky = Flaky(ok={"imported": 2})
    records = [{"namespace": "team", "key": f"k{i}", "value": i} for i in range(5)]
    assert client_for(flaky).import_items(iter(records), batch=2) == 6
    assert [len(r.content.splitlines()) for r in flaky.requests] == [2, 2, 1]
    assert flaky.requests[0].headers["Content-Type"] == "application/x-ndjson"


def test_export_streams_json_lines() -> None:
    body = b'{"key": "a"}\n\n{"key": "b"}\n'
    c = client_for(lambda r: httpx.Response(200, content=body))
    assert [r["key"] for r in c.export("team")] == ["a", "b"]


# -- line framing of streamed bodies ---------------------------------------------------

SEPARATORS = "\u2028\u2029\x85"  # Unicode line boundaries that JSON strings hold raw


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_streams_split_lines_at_lf_crlf_cr_only(chunk: int) -> None:
    """Found by tests/test_properties.py: export broke a value holding U+2028 in two."""
    from hivemem.memory.client._wire import wire_lines

    text = "a\u2028b\r\nc\x85d\re\u2029\n\nlast".encode()
    chunks = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    assert list(wire_lines(chunks)) == ["a\u2028b", "c\x85d", "e\u2029", "", "last"]


def test_export_and_watch_deliver_values_with_unicode_line_separators() -> None:
    records = [{**ITEM, "key": f"k{i}", "value": f"one{s}two"} for i, s in enumerate(SEPARATORS)]
    body = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
    change = {
        "revision": 7,
        "op": "put",
        "namespace": "team/notes",
        "key": "k",
        "version": 2,
        "item": records[0],
        "author": "admin",
        "time": "2026-01-01T00:00:00Z",
    }
    sse = b"id: 7\nevent: changes\ndata: " + json.dumps([change], ensure_ascii=False).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/export"):
            return httpx.Response(200, content=body)
        return httpx.Response(200, content=sse + b"\n\n")

    with client_for(handler) as c:
        assert [r["value"] for r in c.export()] == [f"one{s}two" for s in SEPARATORS]
        stream = c.watch("team")
        assert next(stream).item.value == "one\u2028two"  # type: ignore[union-attr]
        stream.close()

    async def run() -> list[Any]:
        async with AsyncClient(
            "http://hivemem.test/base/", "hm_key", transport=httpx.MockTransport(handler)
        ) as ac:
            return [r["value"] async for r in ac.export()]

    assert asyncio.run(run()) == [f"one{s}two" for s in SEPARATORS]
