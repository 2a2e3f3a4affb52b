"""Request dependencies: the store, the settings, and the caller's authenticated view."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from hivemem.api.settings import Settings
from hivemem.memory import Memory
from hivemem.memory.errors import InvalidInput, Unauthenticated

T = TypeVar("T")

__all__ = [
    "root_memory",
    "settings",
    "caller",
    "authenticate",
    "document_security",
    "Caller",
    "Root",
    "query_int",
    "blocking",
    "worker_pool",
]

#: The fewest threads for blocking store calls of the hot async routes.
WORKER_THREADS = 64


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


async def caller(request: Request) -> Memory:
    """The store seen through the grants of the request's API key (every /v1 route).

    Runs on the event loop: keys are cached in memory and re-read (one indexed SQLite
    row) at most every half second, cheaper than a hop through the thread pool. The
    header is read here rather than through FastAPI's ``HTTPBearer`` dependency (a
    third level of dependency solving on every request); ``document_security`` puts
    the scheme in the OpenAPI document.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return authenticate(request, None)
    return authenticate(request, token.strip())


def document_security(openapi: dict[str, Any]) -> dict[str, Any]:
    """Declare the bearer API key scheme and require it on every /v1 operation."""
    schemes = openapi.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["ApiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer hm_…`",
    }
    for path, operations in openapi.get("paths", {}).items():
        if path.startswith("/v1/"):
            for operation in operations.values():
                operation["security"] = [{"ApiKey": []}]
    return openapi


def websocket_token(conn: HTTPConnection) -> str | None:
    """A WebSocket's API key: ``Authorization: Bearer …`` or ``?api_key=``."""
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return conn.query_params.get("api_key") or None


Caller = Annotated[Memory, Depends(caller)]
Root = Annotated[Memory, Depends(root_memory)]


_INT = re.compile(r"[+-]?[0-9]{1,40}")


def query_int(request: Request, name: str) -> int | None:
    """An integer query parameter read directly (hot routes), 422 naming it when not one."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not _INT.fullmatch(raw):
        raise InvalidInput(name, "Input should be a valid integer")
    return int(raw)


def worker_pool(writes: int) -> ThreadPoolExecutor:
    """The app's pool for ``blocking``: created with the app, shut down with it; a
    thread for each of the ``writes`` the write limit lets run at once (so the limit, not
    the pool, is what sheds), and at least ``WORKER_THREADS``."""
    return ThreadPoolExecutor(max(WORKER_THREADS, writes), thread_name_prefix="hivemem-api")


async def blocking(request: Request, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the app's worker threads, awaited.

    For the hot routes (``PATCH`` of an item): a plain executor hop costs less than
    Starlette's ``run_in_threadpool`` (anyio's capacity limiter and cancel scope), which
    at 1,000 requests/s on one core is worth having. The call runs to the end even if
    the client goes away, as with ``run_in_threadpool``: a write is not cut in half.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        request.app.state.worker_pool, functools.partial(fn, *args, **kwargs)
    )
