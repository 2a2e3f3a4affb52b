"""hivemem's MCP server: every tool in-process with the SDK's client (over an embedded
store and over a Client), and over streamable HTTP on 127.0.0.1 with two API keys of
different grants."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("mcp.server.mcpserver")

import httpx  # noqa: E402
import httpx2  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from hivemem.adapters.mcp import create_server  # noqa: E402
from tests.adapters.conftest import Side  # noqa: E402
from tests.client.conftest import ADMIN_KEY  # noqa: E402

TOOLS = {
    "remember",
    "search",
    "recall",
    "get",
    "put",
    "update",
    "delete",
    "history",
    "list_namespaces",
    "changes_since",
}


async def call(client: Client, tool: str, **args: Any) -> Any:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content


async def error(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "Traceback" not in text
    return text


def connect(side: Side) -> Client:
    """The SDK's client on an in-process server over the side's target (a fixture would
    enter and leave the SDK's task group in different tasks)."""
    target = side.target()
    return Client(create_server(lambda ctx: target))


async def test_tools_have_structured_output_schemas(hash_side: Side) -> None:
    async with connect(hash_side) as client:
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        assert all(t.output_schema for t in tools)


async def test_remember_search_get_history(hash_side: Side, ns: str) -> None:
    async with connect(hash_side) as client:
        item = (
            await call(client, "remember", namespace=ns, key="deploy", text="deploy on friday")
        )["item"]
        assert item["version"] == 1 and item["text"] == "deploy on friday"
        await call(
            client, "remember", namespace=ns, text="pizza for lunch", metadata={"kind": "food"}
        )
        hits = await call(client, "search", query="deploy friday", namespaces=[ns], k=1)
        assert hits["hits"][0]["item"]["key"] == "deploy"
        keyword = await call(client, "search", query="pizza", namespaces=[ns], mode="keyword")
        assert [h["item"]["text"] for h in keyword["hits"]] == ["pizza for lunch"]
        filtered = await call(
            client, "search", query="lunch", namespaces=[ns], filter={"kind": "food"}
        )
        assert len(filtered["hits"]) == 1
        got = await call(client, "get", namespace=ns, key="deploy")
        assert got["value"] == "deploy on friday"
        await call(client, "put", namespace=ns, key="deploy", value={"day": "sat"})
        old = await call(client, "get", namespace=ns, key="deploy", at_revision=item["revision"])
        assert old["value"] == "deploy on friday"
        versions = await call(client, "history", namespace=ns, key="deploy")
        assert [v["version"] for v in versions["versions"]] == [1, 2]


async def test_remember_writes_a_thread_the_keyword_index_reads_as_a_conversation(
    hash_side: Side, ns: str
) -> None:
    async with connect(hash_side) as client:
        for key, text in (("t1", "shall we move the offsite to lisbon"), ("t2", "yes, book it")):
            item = (
                await call(client, "remember", namespace=ns, key=key, text=text, thread="chat-1")
            )["item"]
            assert item["thread"] == "chat-1"
        await call(client, "remember", namespace=ns, key="other", text="book the dentist")
        # "book it" is found by the word of the turn before it, as itself
        found = await call(client, "search", query="lisbon", namespaces=[ns], mode="keyword")
        assert [h["item"]["key"] for h in found["hits"]] == ["t1", "t2"]
        assert found["hits"][1]["item"]["text"] == "yes, book it"
        only = await call(
            client, "search", query="book", namespaces=[ns], mode="keyword", thread="chat-1"
        )
        assert [h["item"]["key"] for h in only["hits"]] == ["t2"]
        message = await error(client, "remember", namespace=ns, text="x", thread="a/b")
        assert "thread" in message
    assert [i.key for i in hash_side.root.list(ns).items] == ["other", "t1", "t2"]


async def test_recall_packs_cited_items_under_the_budget(hash_side: Side, ns: str) -> None:
    async with connect(hash_side) as client:
        turns = [
            ("t1", "the deploy moves to friday"),
            ("t2", "then the freeze starts thursday"),
            ("t3", "lunch is pizza"),
        ]
        for key, text in turns:
            await call(client, "remember", namespace=ns, key=key, text=text, thread="s")
        got = await call(client, "recall", query="deploy freeze", namespaces=[ns])
        assert got["truncated"] is False
        keys = [i["citation"]["key"] for i in got["items"]]
        assert keys[:2] == ["t1", "t2"]  # one thread, in conversation order
        first = got["items"][0]["citation"]
        item = hash_side.root.get(ns, "t1")
        assert (first["namespace"], first["version"], first["revision"], first["author"]) == (
            ns,
            item.version,
            item.revision,
            item.author,
        )
        assert f"{ns}/t1 v1 r{item.revision}" in got["context"]
        assert sum(i["tokens"] for i in got["items"]) <= got["tokens"] <= 1500  # + headers
        small = await call(
            client, "recall", query="deploy freeze", namespaces=[ns], budget_tokens=20
        )
        assert small["truncated"] is True and small["tokens"] <= 20
        message = await error(client, "recall", query="x", namespaces=[ns], budget_tokens=0)
        assert "budget_tokens" in message


async def test_put_if_version_conflict_and_delete(hash_side: Side, ns: str) -> None:
    async with connect(hash_side) as client:
        first = (await call(client, "put", namespace=ns, key="k", value={"n": 1}, if_version=0))[
            "item"
        ]
        assert first["version"] == 1
        message = await error(client, "put", namespace=ns, key="k", value={"n": 2}, if_version=0)
        assert "expected version 0, found 1" in message
        tomb = (await call(client, "delete", namespace=ns, key="k", if_version=1))["item"]
        assert tomb["deleted"] is True
        assert "no such item" in await error(client, "get", namespace=ns, key="k")
        assert "namespace" in await error(client, "get", namespace="Bad NS", key="k")


async def test_update_counts_without_lost_updates(hash_side: Side, ns: str) -> None:
    inc = [{"op": "increment", "path": "/n"}, {"op": "append", "path": "/by", "value": "a"}]
    async with connect(hash_side) as client:
        for _ in range(3):
            item = await call(client, "update", namespace=ns, key="tally", ops=inc)
        assert item["value"] == {"n": 3, "by": ["a", "a", "a"]} and item["version"] == 3
        message = await error(
            client, "update", namespace=ns, key="tally", ops=[{"op": "increment", "path": "/by"}]
        )
        assert "ops[0].path" in message
        message = await error(client, "update", namespace=ns, key="nope", ops=inc, create=False)
        assert "no such item" in message


async def test_list_namespaces_and_changes_since(hash_side: Side, ns: str) -> None:
    async with connect(hash_side) as client:
        start = await call(client, "changes_since", revision=0, namespaces=[ns])
        assert start["changes"] == []
        await call(client, "put", namespace=f"{ns}/a", key="x", value=1)
        await call(client, "put", namespace=f"{ns}/b/c", key="y", value=2)
        await call(client, "delete", namespace=f"{ns}/a", key="x")
        names = await call(client, "list_namespaces", prefix=ns)
        assert names["namespaces"] == [{"namespace": f"{ns}/b/c", "items": 1}]
        cut = await call(client, "list_namespaces", prefix=ns, depth=2)
        assert [n["namespace"] for n in cut["namespaces"]] == [f"{ns}/b"]
        changes = await call(client, "changes_since", revision=start["revision"], namespaces=[ns])
        assert [(c["op"], c["key"]) for c in changes["changes"]] == [
            ("put", "x"),
            ("put", "y"),
            ("delete", "x"),
        ]
        page = await call(
            client, "changes_since", revision=start["revision"], namespaces=[ns], limit=1
        )
        assert [c["key"] for c in page["changes"]] == ["x"]
        rest = await call(client, "changes_since", revision=page["revision"], namespaces=[ns])
        assert [c["key"] for c in rest["changes"]] == ["y", "x"]
        again = await call(client, "changes_since", revision=changes["revision"], namespaces=[ns])
        assert again["changes"] == []


async def test_a_propose_principals_write_is_a_proposal(hash_side: Side, ns: str) -> None:
    hash_side.root.grant("mcp-proposer", ns, "propose")
    target = hash_side.target("mcp-proposer")
    async with Client(create_server(lambda ctx: target)) as client:
        written = await call(client, "put", namespace=ns, key="k", value={"n": 1})
    assert written["item"] is None
    assert written["proposal"]["status"] == "pending" and written["proposal"]["key"] == "k"
    assert hash_side.root.list(ns).items == []


# -- streamable HTTP with API keys ------------------------------------------------------


@contextlib.asynccontextmanager
async def http_client(url: str, key: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


async def test_http_keys_act_with_their_own_grants(hash_server: Any, ns: str) -> None:
    root = hash_server.memory
    root.grant("mcp-writer", ns, "write")
    root.grant("mcp-reader", ns, "read")
    writer_key = root.create_key("mcp-writer").secret
    reader_key = root.create_key("mcp-reader").secret
    async with http_client(hash_server.url, writer_key) as writer:
        item = (await call(writer, "remember", namespace=ns, key="plan", text="deploy friday"))[
            "item"
        ]
        assert item["author"] == "mcp-writer"
        assert (
            "permission"
            in (await error(writer, "put", namespace="elsewhere", key="k", value=1)).lower()
        )
    async with http_client(hash_server.url, reader_key) as reader:
        hits = await call(reader, "search", query="deploy", namespaces=[ns])
        assert [h["item"]["key"] for h in hits["hits"]] == ["plan"]
        denied = await error(reader, "remember", namespace=ns, text="sneaky")
        assert "mcp-reader" in denied
        names = await call(reader, "list_namespaces")
        assert [n["namespace"] for n in names["namespaces"]] == [ns]
    assert [i.key for i in root.list(ns).items] == ["plan"]


def test_http_without_a_valid_key_is_401(hash_server: Any) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    for auth in ({}, {"Authorization": "Bearer not-a-key"}):
        r = httpx.post(f"{hash_server.url}/mcp", json=body, headers={**headers, **auth})
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_example_remembers_and_recalls_over_http(hash_server: Any) -> None:
    from tests.adapters.test_examples import example

    ex = example("mcp_remember_recall")
    for item in hash_server.memory.list("demo/notes").items:
        hash_server.memory.delete(item.namespace, item.key)
    got = await ex.over_http(f"{hash_server.url}/mcp", ADMIN_KEY)
    assert got == {
        "recalled": "The deploy is on Friday after the freeze",
        "changed": ["deploy", "lunch"],
    }


async def test_example_in_process(hash_side: Side) -> None:
    from tests.adapters.test_examples import example

    ex = example("mcp_remember_recall")
    for item in hash_side.root.list("demo/notes").items:
        hash_side.root.delete(item.namespace, item.key)
    got = await ex.in_process(hash_side.target())
    assert got["recalled"] == "The deploy is on Friday after the freeze"


async def test_stdio_over_a_server(hash_server: Any, ns: str) -> None:
    """``hivemem mcp --url --api-key`` speaks MCP on stdin/stdout (the SDK's stdio client)."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "hivemem.api.cli", "mcp", "--url", hash_server.url, "--api-key", ADMIN_KEY],
    )
    async with Client(params) as client:
        item = (await call(client, "remember", namespace=ns, text="via stdio"))["item"]
        assert item["author"] == "admin"
        found = await call(client, "search", query="stdio", namespaces=[ns], mode="keyword")
        assert [h["item"]["text"] for h in found["hits"]] == ["via stdio"]
    assert [i.text for i in hash_server.memory.list(ns).items] == ["via stdio"]


async def test_stdio_over_a_local_data_directory(tmp_path: Any) -> None:
    """``hivemem mcp --data DIR`` serves an embedded store in that directory."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "hivemem.api.cli", "mcp", "--data", str(tmp_path / "data")],
    )
    async with Client(params) as client:  # values without text: the model never loads
        await call(client, "put", namespace="local", key="k", value={"n": 1})
        got = await call(client, "get", namespace="local", key="k")
        assert got["value"] == {"n": 1}
    from hivemem import Memory

    with Memory.open(str(tmp_path / "data"), embedder=None) as mem:
        assert mem.get("local", "k").value == {"n": 1}


def test_mcp_can_be_turned_off(hash_store: Any) -> None:
    from fastapi.testclient import TestClient

    from hivemem.api.app import create_app
    from hivemem.api.settings import Settings

    for enabled, status in ((True, 401), (False, 404)):
        app = create_app(Settings(admin_key=ADMIN_KEY, mcp=enabled), memory=hash_store)
        with TestClient(app) as c:
            assert c.post("/mcp", json={}).status_code == status


def test_building_the_server_leaves_the_hosts_logging_alone() -> None:
    import logging

    from hivemem.adapters.mcp import create_server

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    root.handlers[:] = []  # a host that never configured logging
    root.setLevel(logging.WARNING)
    try:
        create_server(lambda ctx: None)  # type: ignore[arg-type, return-value]
        assert (root.handlers, root.level) == ([], logging.WARNING)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
