"""An MCP client remembering and recalling through hivemem's MCP server.

With no argument it talks to an in-process server over a throwaway store; with a URL
and an API key, to ``hivemem serve``'s ``/mcp`` endpoint:

    python examples/mcp_remember_recall.py
    python examples/mcp_remember_recall.py http://127.0.0.1:8080/mcp hm_...
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from hivemem import Memory
from hivemem.adapters.mcp import create_server

NOTES = "demo/notes"


async def remember_and_recall(client: Client) -> dict[str, Any]:
    """Remember two facts, recall one by meaning, and catch up on what changed."""
    start = await client.call_tool("changes_since", {"revision": 0, "namespaces": [NOTES]})
    since = start.structured_content["revision"]
    for key, text in [
        ("deploy", "The deploy is on Friday after the freeze"),
        ("lunch", "Lunch on Friday is pizza"),
    ]:
        await client.call_tool("remember", {"namespace": NOTES, "key": key, "text": text})
    found = await client.call_tool(
        "search", {"query": "when do we deploy?", "namespaces": [NOTES], "k": 1}
    )
    changes = await client.call_tool("changes_since", {"revision": since, "namespaces": [NOTES]})
    return {
        "recalled": found.structured_content["hits"][0]["item"]["text"],
        "changed": [c["key"] for c in changes.structured_content["changes"]],
    }


async def over_http(url: str, api_key: str) -> dict[str, Any]:
    """The same conversation with a server's ``/mcp`` endpoint."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return await remember_and_recall(client)


async def in_process(mem: Any) -> dict[str, Any]:
    """The same conversation with an in-process server over ``mem``."""
    async with Client(create_server(lambda ctx: mem)) as client:
        return await remember_and_recall(client)


def main() -> None:
    if len(sys.argv) == 3:
        print(asyncio.run(over_http(sys.argv[1], sys.argv[2])))
        return
    with Memory.open(":memory:") as mem:
        print(asyncio.run(in_process(mem)))


if __name__ == "__main__":
    main()
