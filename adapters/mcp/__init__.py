"""hivemem as an MCP server (``pip install 'hivemem[mcp]'``): ``hivemem mcp``.

Tools ``remember``, ``search``, ``recall``, ``get``, ``put``, ``delete``, ``history``,
``list_namespaces`` and ``changes_since`` with structured results, over stdio
(``hivemem mcp --url URL --api-key KEY`` or ``hivemem mcp --data DIR``) or streamable
HTTP at ``/mcp`` in ``hivemem serve`` (bearer API keys, each call with that key's
grants).
"""

from __future__ import annotations

from hivemem.adapters.mcp.server import (
    INSTRUCTIONS,
    ChangesResult,
    HistoryResult,
    SearchResult,
    WriteResult,
    create_server,
)

__all__ = [
    "create_server",
    "WriteResult",
    "SearchResult",
    "HistoryResult",
    "ChangesResult",
    "INSTRUCTIONS",
]
