"""The app factory: ``create_app(settings)`` opens the store and mounts every route."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hivemem.api.console import mount_console
from hivemem.api.deps import document_security, worker_pool
from hivemem.api.guard import InputGuardMiddleware
from hivemem.api.links import document_links
from hivemem.api.metrics import Metrics, MetricsMiddleware
from hivemem.api.problems import (
    InternalErrorMiddleware,
    document_problems,
    install_handlers,
    problem_response,
)
from hivemem.api.routes import ROUTERS
from hivemem.api.routes.items import get_item
from hivemem.api.routes.update import patch_item
from hivemem.api.routing import UnknownQueryMiddleware, serve_directly
from hivemem.api.settings import Settings
from hivemem.api.shedding import WriteGate, WriteLimitMiddleware, document_shedding
from hivemem.memory import Memory, __version__
from hivemem.memory.errors import PayloadTooLarge
from hivemem.memory.validation import limits_markdown

__all__ = ["create_app", "open_memory", "bootstrap", "BodyLimitMiddleware"]

DESCRIPTION = (
    """\
A versioned, conflict-safe shared memory for multi-agent systems.

Every `/v1` route needs `Authorization: Bearer <API key>`. Errors are RFC 9457
`application/problem+json` bodies whose `type` names the error (`/problems/conflict`, …).
Every 4xx names its `field`. Request bodies are strict; responses may gain optional fields.

## Limits

"""
    + limits_markdown()
    + "\n"
)


def create_app(settings: Settings | None = None, memory: Memory | None = None) -> FastAPI:
    """The REST app over ``memory`` (or over the store in ``settings.data_dir``).

    A store the app opens itself is closed on shutdown; an injected one belongs to the
    caller. An empty store is bootstrapped with an admin key (see ``bootstrap``).
    """
    settings = settings if settings is not None else Settings.from_env()
    owned = memory is None
    if memory is None:
        memory = open_memory(settings)
    try:
        bootstrap(memory, settings)
    except BaseException:
        if owned:
            memory.close()
        raise

    mcp = _mcp_route(memory) if settings.mcp else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:  # import torch and load the model while the first requests arrive
            threading.Thread(target=memory.warm_up, name="hivemem-warm-up", daemon=True).start()
        async with AsyncExitStack() as stack:
            if mcp is not None:
                await stack.enter_async_context(mcp[1])
            yield
        app.state.worker_pool.shutdown(wait=True)
        if owned:
            memory.close()

    app = FastAPI(
        title="hivemem",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.memory = memory
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.write_gate = WriteGate(
        settings.max_inflight_writes, settings.shed_retry_after, settings.shed_latency
    )
    app.state.worker_pool = worker_pool(app.state.write_gate.ceiling)
    app.state.metrics.write_gate = app.state.write_gate
    install_handlers(app)
    # Outermost last: metrics see every answer; a shed write is answered before
    # anything reads its body; the body limit runs before the guard reads a body; a
    # query parameter the route lacks is refused; unexpected errors become a 500
    # without dropping the connection.
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(UnknownQueryMiddleware)
    app.add_middleware(InputGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(WriteLimitMiddleware, gate=app.state.write_gate)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    for router in ROUTERS:
        app.include_router(router)
    serve_directly(app, (get_item, patch_item))
    mount_console(app)
    if mcp is not None:
        app.router.routes.append(mcp[0])

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_security(document_shedding(document_problems(FastAPI.openapi(app))))
            app.openapi_schema = document_links(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _mcp_route(memory: Memory) -> tuple[Any, Any] | None:
    """The MCP server's ``/mcp`` route and its lifespan, when the ``mcp`` extra is installed."""
    try:
        from hivemem.adapters.mcp.http import mcp_route
    except ImportError:
        return None
    return mcp_route(memory)


def open_memory(settings: Settings, **options: Any) -> Memory:
    """The store the settings describe: SQLite in ``data_dir``, or the log at ``log_url``
    (PostgreSQL) with this replica's vector index in ``data_dir``."""
    from hivemem.memory.index import open_index

    log = None
    if settings.log_url:
        from hivemem.memory.log import open_log

        log = open_log(settings.log_url, durability=settings.durability)
    os.makedirs(settings.data_dir, exist_ok=True)
    try:
        index = open_index(settings.index_url, settings.data_dir)
    except BaseException:
        if log is not None:
            log.close()
        raise
    return Memory.open(
        settings.data_dir,
        durability=settings.durability,
        watch_queue=settings.watch_queue,
        proposal_ttl=settings.proposal_ttl,
        log=log,
        index=index,
        **options,
    )


def bootstrap(root: Memory, settings: Settings) -> str | None:
    """Give an empty store (no API keys at all) an ``admin`` principal and key.

    The key is ``settings.admin_key`` when set; otherwise a new one, printed once to
    stderr and returned. With several workers, call this once in the parent before
    they start: two workers racing on an empty store would each print a key.
    """
    if root.keys():
        return None
    root.grant("admin", "", "admin")
    if settings.admin_key:
        try:
            root.import_key("admin", settings.admin_key)
        except Exception:
            if not root.keys():
                raise
            # another worker on the same store registered it first
        return None
    created = root.create_key("admin")
    print(
        "hivemem: created the first API key, for principal 'admin' (admin of everything).\n"
        f"hivemem: it is shown only this once; store it now:\n\n    {created.secret}\n",
        file=sys.stderr,
        flush=True,
    )
    return created.secret


class BodyLimitMiddleware:
    """Rejects a request body over ``max_bytes`` with 413, by header or by counting."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            # The server delivers no more than Content-Length bytes: the header is enough.
            if not declared.isdigit() or int(declared) <= self.max_bytes:
                await self.app(scope, receive, send)
            else:
                await self._reject(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:  # no body at all
            await self.app(scope, receive, send)
            return
        first: list[Message] = []
        size = 0
        while True:  # a chunked body: read it all now, it is small or it is refused
            message = await receive()
            first.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in first if m["type"] == "http.request")
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        replay += [m for m in first if m["type"] != "http.request"]

        async def replaying_receive() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replaying_receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = PayloadTooLarge("body", f"larger than the limit of {self.max_bytes} bytes")
        response = problem_response(err)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
