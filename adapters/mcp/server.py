"""hivemem as an MCP server: tools over a ``Memory`` or a ``Client``.

``create_server(resolve)`` builds an ``MCPServer`` whose tools act on the target that
``resolve(ctx)`` returns for each call: a fixed one over stdio, the caller's own view
(by its bearer API key) over streamable HTTP (``hivemem.adapters.mcp.http``). Results
are hivemem's own models, so every tool has a structured output schema; a hivemem
error becomes the tool's error result with the error's message.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from hivemem.adapters._common import Target, to_thread
from hivemem.memory.errors import Conflict, HivememError
from hivemem.memory.models import Change, Hit, Item, NamespacePage, Proposal, Recall

__all__ = [
    "create_server",
    "WriteResult",
    "SearchResult",
    "HistoryResult",
    "ChangesResult",
    "INSTRUCTIONS",
]

INSTRUCTIONS = """\
hivemem is a shared, versioned memory for agents. Use `remember` to store a fact (with
`thread` to keep a conversation's turns together), `search` to find items by meaning or
words, `recall` for a prompt-ready context of the best items under a token budget, each
cited, `put`/`get` for structured items (with
`if_version` for compare-and-swap), `update` to change an item atomically (counters,
logs, sets: no lost updates between agents), and `changes_since` to catch up on what
other agents wrote after a revision."""

Resolve = Callable[[Context[Any, Any]], Target]
T = TypeVar("T")


class WriteResult(BaseModel):
    """What a write did: the version written, or (for a ``propose`` principal) the
    proposal now waiting for review."""

    item: Item | None = None
    proposal: Proposal | None = None


def _written(result: Item | Proposal) -> WriteResult:
    if isinstance(result, Proposal):
        return WriteResult(proposal=result)
    return WriteResult(item=result)


class SearchResult(BaseModel):
    """Search hits, best first."""

    hits: list[Hit]


class HistoryResult(BaseModel):
    """Every version of an item still in history, oldest first."""

    versions: list[Item]


class ChangesResult(BaseModel):
    """Changes after a revision, in order; resume from ``revision``."""

    changes: list[Change]
    revision: int = Field(description="pass this as `revision` next time")


def _guarded(resolve: Resolve) -> Resolve:
    def guarded(ctx: Context[Any, Any]) -> Target:
        try:
            return resolve(ctx)
        except HivememError as err:
            raise ToolError(f"{err.title}: {err.detail}") from err

    return guarded


async def _run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a store call in a worker thread; a hivemem error becomes the tool's error
    result with its message (the SDK would hide any other exception's text)."""
    try:
        return await to_thread(fn, *args, **kwargs)
    except HivememError as err:
        message = f"{err.title}: {err.detail}"
        if isinstance(err, Conflict) and err.current is not None:
            message += f" (current version {err.current.version})"
        raise ToolError(message) from err


def _server_keeping_logging(name: str) -> MCPServer:
    """An ``MCPServer``, leaving the process's logging as it was.

    The SDK's constructor calls ``logging.basicConfig`` with a rich handler at INFO: in
    a process that had not configured logging (an application creating hivemem's app,
    a test) every library's INFO lines would start appearing on stderr. A library must
    not decide that for its host.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return MCPServer(name, instructions=INSTRUCTIONS)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def create_server(resolve: Resolve, name: str = "hivemem") -> MCPServer:
    """An MCP server whose tools act on ``resolve(ctx)`` for each call."""
    mcp = _server_keeping_logging(name)
    resolve = _guarded(resolve)

    @mcp.tool()
    async def remember(
        ctx: Context[Any, Any],
        namespace: str,
        text: str,
        key: str | None = None,
        metadata: dict[str, Any] | None = None,
        thread: str | None = None,
    ) -> WriteResult:
        """Store a piece of text (searchable by meaning and words) under a namespace.

        ``thread`` names the conversation it belongs to (key rules: no ``/``): the turns
        of a thread are kept in write order and each is found by keyword with the words
        of the turns just before it."""
        target = resolve(ctx)
        written = await _run(
            target.put,
            namespace,
            key or uuid.uuid4().hex,
            text,
            text=text,
            metadata=metadata,
            thread=thread,
        )
        return _written(written)

    @mcp.tool()
    async def search(
        ctx: Context[Any, Any],
        query: str,
        namespaces: list[str] | None = None,
        k: int = 5,
        mode: str = "hybrid",
        filter: dict[str, Any] | None = None,
        thread: str | None = None,
    ) -> SearchResult:
        """Items relevant to ``query``: mode ``hybrid`` (default), ``vector`` or
        ``keyword``; ``filter`` on metadata (``{"kind": "plan"}``, ``{"n": {"$gte": 2}}``);
        ``thread`` keeps only the items of that conversation."""
        target = resolve(ctx)
        hits = await _run(
            target.search,
            query,
            namespaces=namespaces,
            k=k,
            mode=mode,
            filter=filter,
            thread=thread,
        )
        return SearchResult(hits=hits)

    @mcp.tool()
    async def recall(
        ctx: Context[Any, Any],
        query: str,
        namespaces: list[str] | None = None,
        budget_tokens: int = 1500,
        k: int = 20,
        mode: str = "hybrid",
        filter: dict[str, Any] | None = None,
        thread: str | None = None,
        at_revision: int | None = None,
    ) -> Recall:
        """A prompt-ready ``context`` of the best of the top-``k`` items for ``query``
        that fit ``budget_tokens`` (the embedding model's tokens), near-duplicates
        dropped, grouped by thread in conversation order; ``items`` cite each one
        (namespace, key, version, revision, author); ``truncated`` says whether a better
        hit did not fit. ``at_revision`` recalls the state as of that revision."""
        return await _run(
            resolve(ctx).recall,
            query,
            namespaces,
            budget_tokens,
            k=k,
            mode=mode,
            filter=filter,
            thread=thread,
            at_revision=at_revision,
        )

    @mcp.tool()
    async def get(
        ctx: Context[Any, Any], namespace: str, key: str, at_revision: int | None = None
    ) -> Item:
        """The current item, or the version visible at ``at_revision``."""
        return await _run(resolve(ctx).get, namespace, key, at_revision)

    @mcp.tool()
    async def put(
        ctx: Context[Any, Any],
        namespace: str,
        key: str,
        value: Any,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        if_version: int | None = None,
        ttl: float | None = None,
    ) -> WriteResult:
        """Write an item; ``if_version`` makes it compare-and-swap (0: must not exist)."""
        written = await _run(
            resolve(ctx).put,
            namespace,
            key,
            value,
            text=text,
            metadata=metadata,
            if_version=if_version,
            ttl=ttl,
        )
        return _written(written)

    @mcp.tool()
    async def update(
        ctx: Context[Any, Any],
        namespace: str,
        key: str,
        ops: list[dict[str, Any]],
        if_version: int | None = None,
        create: bool = True,
    ) -> Item:
        """Change an item atomically, without a read-modify-write race: ``ops`` are JSON
        Patch operations (add, remove, replace, move, copy, test) plus ``increment``
        (``{"op": "increment", "path": "/count", "value": 1}``), ``append`` (to a list,
        ``max_len`` keeps the newest), ``add_to_set`` and ``remove_from_set``. Paths are
        JSON Pointers; a missing item starts from ``{}`` unless ``create`` is false."""
        return await _run(
            resolve(ctx).update, namespace, key, ops, if_version=if_version, create=create
        )

    @mcp.tool()
    async def delete(
        ctx: Context[Any, Any], namespace: str, key: str, if_version: int | None = None
    ) -> WriteResult:
        """Delete an item (its history is kept); returns the tombstone."""
        return _written(await _run(resolve(ctx).delete, namespace, key, if_version))

    @mcp.tool()
    async def history(ctx: Context[Any, Any], namespace: str, key: str) -> HistoryResult:
        """Every version of an item, oldest first, with author and revision."""
        return HistoryResult(versions=await _run(resolve(ctx).history, namespace, key))

    @mcp.tool()
    async def list_namespaces(
        ctx: Context[Any, Any],
        prefix: str = "",
        depth: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> NamespacePage:
        """Namespaces under ``prefix`` with their item counts (``depth`` cuts them)."""
        return await _run(resolve(ctx).namespaces, prefix, depth, limit, cursor)

    @mcp.tool()
    async def changes_since(
        ctx: Context[Any, Any],
        revision: int,
        namespaces: list[str] | None = None,
        limit: int = 100,
    ) -> ChangesResult:
        """Changes after ``revision`` under the namespaces, in order, from the log."""
        return await _run(_changes_since, resolve(ctx), revision, namespaces, limit)

    return mcp


def _changes_since(
    target: Target, revision: int, namespaces: list[str] | None, limit: int
) -> ChangesResult:
    """Replay the watch stream from ``revision`` up to the head as it is now."""
    head = target.revision
    if revision >= head:
        return ChangesResult(changes=[], revision=max(revision, 0))
    stream = target.watch(namespaces, since=revision)
    # The stream goes live after the head and never says "caught up": a stretch
    # without changes the caller may read would block, so timers end the replay —
    # a long one for the catch-up, a short one once the head's revision arrived (the
    # rest of its transaction is already buffered).
    timers = [threading.Timer(2.0, stream.close)]
    timers[0].start()
    changes: list[Change] = []
    last = head
    try:
        for change in stream:
            if change.revision > head:
                break
            if len(changes) >= limit and change.revision != changes[-1].revision:
                last = changes[-1].revision
                break
            changes.append(change)
            if change.revision == head and len(timers) == 1:
                timers.append(threading.Timer(0.2, stream.close))
                timers[-1].start()
    finally:
        for timer in timers:
            timer.cancel()
        stream.close()
    return ChangesResult(changes=changes, revision=last)
