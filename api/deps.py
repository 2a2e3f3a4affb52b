"""Request dependencies: the store, the settings, and the caller's authenticated view."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from api.settings import Settings
from memory import Memory
from memory.errors import Unauthenticated

__all__ = ["root_memory", "settings", "caller", "authenticate", "Caller", "Root"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key: `Authorization: Bearer hm_…`",
)


def root_memory(conn: HTTPConnection) -> Memory:
    """The store as its opener sees it (never handed to a request directly)."""
    mem: Memory = conn.app.state.memory
    return mem


def settings(conn: HTTPConnection) -> Settings:
    """The server's settings."""
    value: Settings = conn.app.state.settings
    return value


def authenticate(conn: HTTPConnection, token: str | None) -> Memory:
    """The view of the principal holding ``token``; ``Unauthenticated`` otherwise."""
    if token is None and conn.headers.get("authorization"):
        raise Unauthenticated("the Authorization header must be 'Bearer <API key>'")
    return root_memory(conn).authenticate(token)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Memory:
    """The store seen through the grants of the request's API key (every /v1 route).

    Runs on the event loop: keys are cached in memory and re-read (one indexed SQLite
    row) at most every half second, cheaper than a hop through the thread pool.
    """
    return authenticate(request, credentials.credentials if credentials else None)


def websocket_token(conn: HTTPConnection) -> str | None:
    """A WebSocket's API key: ``Authorization: Bearer …`` or ``?api_key=``."""
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return conn.query_params.get("api_key") or None


Caller = Annotated[Memory, Depends(caller)]
Root = Annotated[Memory, Depends(root_memory)]
