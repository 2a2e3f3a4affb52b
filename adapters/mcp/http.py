"""hivemem's MCP server over streamable HTTP, mounted in the REST server at ``/mcp``.

Every request needs ``Authorization: Bearer <API key>``; the key is verified by
hivemem's own key store (the one the REST API uses), and each tool call acts with
that key's grants. Sessions are stateless, so any replica answers any request.
"""

from __future__ import annotations

import functools
from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import HTTPConnection
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hivemem.adapters.mcp.server import create_server
from hivemem.memory.engine import Memory
from hivemem.memory.errors import HivememError, Unauthenticated

__all__ = ["mcp_route", "bearer_token"]


def bearer_token(conn: HTTPConnection) -> str | None:
    """The API key of ``Authorization: Bearer <key>`` (None when absent or malformed)."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class _BearerKeys:
    """Refuses requests without a valid API key before the MCP transport sees them."""

    def __init__(self, app: ASGIApp, root: Memory) -> None:
        self.app = app
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.root.authenticate(bearer_token(HTTPConnection(scope)))
        except HivememError as err:
            from hivemem.api.problems import problem_response

            await problem_response(err)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _resolve(ctx: Context[Any, Any]) -> Memory:
    """The caller's view of the store of the app that received the request."""
    request = ctx.request_context.request
    if request is None:  # pragma: no cover - only HTTP requests reach this server
        raise Unauthenticated("no HTTP request")
    root: Memory = request.app.state.memory
    return root.authenticate(bearer_token(request))


@functools.lru_cache(maxsize=1)
def _server() -> MCPServer:
    # Registering the tools costs ~0.1 s (their schemas): one server per process,
    # shared by every app, each with a session manager of its own.
    return create_server(_resolve)


def mcp_route(root: Memory, path: str = "/mcp") -> tuple[Route, AbstractAsyncContextManager[Any]]:
    """The ``/mcp`` route over ``root``, and the context manager to run in the lifespan.

    ``root`` must be the ``app.state.memory`` of the app the route is added to.
    """
    app = _server().streamable_http_app(
        streamable_http_path=path,
        stateless_http=True,
        # The bearer key already stops a rebinding page (it has no key); behind a proxy
        # the Host check would refuse every request (python-sdk#2315).
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    transport = next(r for r in app.routes if isinstance(r, Route) and r.path == path)
    endpoint: Any = transport.endpoint  # the SDK's StreamableHTTPASGIApp
    return Route(path, endpoint=_BearerKeys(endpoint, root)), endpoint.session_manager.run()
