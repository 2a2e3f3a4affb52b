"""Watch: committed changes as Server-Sent Events or WebSocket messages.

One event per revision, never split: ``id: <revision>``, ``event: changes``,
``data: <JSON list of Change>``. A reconnecting client sends ``Last-Event-ID`` and
resumes right after that revision. ``: ping`` comments keep idle streams alive. A
subscriber that falls behind gets one ``event: error`` (a problem with
``resume_revision``) and the stream ends.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from hivemem.api.deps import Caller, authenticate, websocket_token
from hivemem.api.deps import settings as get_settings
from hivemem.api.metrics import Metrics
from hivemem.api.problems import problem_body, problem_responses
from hivemem.api.routes.examples import CHANGE
from hivemem.api.routes.items import parse_json_filter
from hivemem.memory import Subscription
from hivemem.memory.errors import HivememError, InvalidInput
from hivemem.memory.models import Change
from hivemem.memory.validation import INT64_MAX, check_int

__all__ = ["router", "revision_batches"]

router = APIRouter(tags=["watch"])
_DIGITS = re.compile(r"[0-9]{1,40}")
_changes = TypeAdapter(list[Change])
Batch = tuple[int, list[Change]]


async def _next(changes: AsyncIterator[Change]) -> Change:
    return await changes.__anext__()


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # mark it retrieved: the stream is gone, nobody else will


async def revision_batches(sub: Subscription, idle: float) -> AsyncIterator[Batch | None]:
    """Whole revisions of ``sub`` in order; ``None`` after each ``idle`` quiet seconds.

    The subscription yields a revision's changes back to back without waiting, so a
    revision is complete once the next change is not immediately available.
    """
    changes = sub.__aiter__()
    group: list[Change] = []
    pending: asyncio.Task[Change] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(_next(changes))
            await asyncio.sleep(0)  # let it take whatever is ready without waiting
            if group and not pending.done():
                yield group[0].revision, group
                group = []
            while not pending.done():
                done, _ = await asyncio.wait({pending}, timeout=idle)
                if not done:
                    yield None
            try:
                change = pending.result()
            except StopAsyncIteration:
                break
            except HivememError:
                if group:
                    yield group[0].revision, group
                raise
            if group and change.revision != group[0].revision:
                yield group[0].revision, group
                group = []
            group.append(change)
        if group:
            yield group[0].revision, group
    finally:
        if pending is not None and not pending.done():
            pending.add_done_callback(_retrieve)
            pending.cancel()
        sub.close()


class _EventStream(StreamingResponse):
    """An SSE response that always closes its subscription, however the client leaves."""

    def __init__(self, sub: Subscription, metrics: Metrics, heartbeat: float) -> None:
        super().__init__(
            _sse(sub, heartbeat),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.sub = sub
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.watch_opened()
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.sub.close()
            self.metrics.watch_closed()


async def _sse(sub: Subscription, heartbeat: float) -> AsyncIterator[bytes]:
    try:
        async for batch in revision_batches(sub, heartbeat):
            if batch is None:
                yield b": ping\n\n"
                continue
            revision, group = batch
            yield b"id: %d\nevent: changes\ndata: %s\n\n" % (revision, _changes.dump_json(group))
    except HivememError as exc:
        data = json.dumps(problem_body(exc), separators=(",", ":")).encode()
        yield b"event: error\ndata: %s\n\n" % data


def _revision_param(raw: str, field: str) -> int:
    """A revision given as text (a header or query parameter): an int64 >= 0."""
    text = raw.strip()
    if not _DIGITS.fullmatch(text):
        raise InvalidInput(field, "must be a revision number")
    return check_int(int(text), field, 0, INT64_MAX, "a revision")


def _subscription(
    query: str | None, vector: str | None, threshold: float | None, filter: str | None
) -> dict[str, Any]:
    """The semantic and metadata options of a watch, from query parameters."""
    options: dict[str, Any] = {"query": query, "threshold": threshold}
    if vector is not None:
        try:
            options["vector"] = json.loads(vector)
        except ValueError:
            raise InvalidInput("vector", "must be a JSON list of numbers") from None
    options["filter"] = parse_json_filter(filter)
    return options


def _since(since: int, last_event_id: str | None) -> int:
    if last_event_id is None or last_event_id.strip() == "":
        return check_int(since, "since", 0, INT64_MAX, "a revision")
    return _revision_param(last_event_id, "Last-Event-ID")


SSE_EXAMPLE = (
    "id: 42\nevent: changes\ndata: "
    + json.dumps([CHANGE], separators=(",", ":"))
    + "\n\n: ping\n\n"
)


@router.get(
    "/v1/watch",
    summary="Stream changes (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An event stream; one `changes` event per revision.",
            "content": {"text/event-stream": {"example": SSE_EXAMPLE}},
        },
        **problem_responses(401, 410, 422),
    },
)
async def watch_sse(
    request: Request,
    mem: Caller,
    namespaces: Annotated[
        list[str] | None,
        Query(
            description="Namespace prefixes (default: everything readable).", examples=[["team"]]
        ),
    ] = None,
    since: Annotated[int, Query(description="Send revisions after this one.", examples=[41])] = 0,
    thread: Annotated[
        str | None, Query(description="Only changes of items in this thread.")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Resume after this revision (wins over since)."),
    ] = None,
    query: Annotated[
        str | None,
        Query(description="Semantic subscription: only changes whose item is about this."),
    ] = None,
    vector: Annotated[
        str | None, Query(description="Or a query vector, as a JSON list of numbers.")
    ] = None,
    threshold: Annotated[
        float | None, Query(description="Minimum cosine similarity, -1 to 1 (default 0.25).")
    ] = None,
    filter: Annotated[
        str | None,
        Query(description='Metadata filter as a JSON object, e.g. {"kind": "incident"}.'),
    ] = None,
) -> StreamingResponse:
    """Replay changes after ``since``, then stream new ones as they commit."""
    start = _since(since, last_event_id)
    options = _subscription(query, vector, threshold, filter)
    sub = await run_in_threadpool(lambda: mem.watch(namespaces, start, thread=thread, **options))
    settings = get_settings(request)
    return _EventStream(sub, request.app.state.metrics, settings.heartbeat)


@router.websocket("/v1/watch/ws")
async def watch_ws(websocket: WebSocket) -> None:
    """WebSocket twin of ``/v1/watch``: ``{"revision", "changes"}`` text messages.

    The API key comes in ``Authorization: Bearer …`` or ``?api_key=``; ``since`` and
    ``namespaces`` (and ``thread``) are query parameters. On an error the server sends
    ``{"error": <problem>}`` and closes with code 4000 + the HTTP status.
    """
    await websocket.accept()
    metrics: Metrics = websocket.app.state.metrics
    try:
        mem = await run_in_threadpool(authenticate, websocket, websocket_token(websocket))
        since = _revision_param(websocket.query_params.get("since", "0"), "since")
        namespaces = websocket.query_params.getlist("namespaces") or None
        params = websocket.query_params
        raw_threshold = params.get("threshold")
        try:
            threshold = float(raw_threshold) if raw_threshold is not None else None
        except ValueError:
            raise InvalidInput("threshold", "must be a number") from None
        options = _subscription(
            params.get("query"), params.get("vector"), threshold, params.get("filter")
        )
        thread = params.get("thread")
        sub = await run_in_threadpool(
            lambda: mem.watch(namespaces, since, thread=thread, **options)
        )
    except HivememError as exc:
        await _ws_error(websocket, exc)
        return
    metrics.watch_opened()
    try:
        await _ws_pump(websocket, sub, get_settings(websocket).heartbeat)
    finally:
        sub.close()
        metrics.watch_closed()


async def _ws_pump(websocket: WebSocket, sub: Subscription, idle: float) -> None:
    """Send whole revisions until the stream fails or the client goes away."""
    async with anyio.create_task_group() as group:

        async def send_batches() -> None:
            try:
                async for batch in revision_batches(sub, idle):
                    if batch is not None:
                        revision, changes = batch
                        data = _changes.dump_json(changes).decode()
                        await websocket.send_text(f'{{"revision":{revision},"changes":{data}}}')
            except HivememError as exc:
                await _ws_error(websocket, exc)
            except (WebSocketDisconnect, OSError, RuntimeError):
                pass  # the client is gone
            group.cancel_scope.cancel()

        async def until_disconnect() -> None:
            try:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
            except (WebSocketDisconnect, RuntimeError):
                pass
            group.cancel_scope.cancel()

        group.start_soon(send_batches)
        group.start_soon(until_disconnect)


async def _ws_error(websocket: WebSocket, exc: HivememError) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    try:
        await websocket.send_text(json.dumps({"error": problem_body(exc)}, separators=(",", ":")))
        await websocket.close(code=4000 + exc.status)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
