"""Every error leaves the server here, as RFC 9457 ``application/problem+json``.

The body is ``{"type": "/problems/<slug>", "title", "status", "detail", **extras}``
where the slug, status and extras come from the engine's error class, so the client
can rebuild the same exception. Request validation failures become ``InvalidInput``
(422, ``field`` naming the offending part); anything unexpected is a 500, which is
always a bug.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hivemem.memory.errors import HivememError, InvalidInput, NotFound

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "problem_body",
    "problem_response",
    "validation_error",
    "install_handlers",
    "InternalErrorMiddleware",
    "problem_responses",
    "document_problems",
]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("hivemem.api")

# Tags of the txn op union: pydantic puts them in an error's location; the field doesn't.
_UNION_TAGS = frozenset({"put", "update", "delete", "get"})
_TYPE_LABELS = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


class Problem(BaseModel):
    """An RFC 9457 problem; error-specific fields (``field``, ``current``, …) follow."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


def problem_body(err: HivememError) -> dict[str, Any]:
    """The problem+json body of an engine error."""
    return {
        "type": f"/problems/{err.problem_type}",
        "title": err.title,
        "status": err.status,
        "detail": err.detail,
        **err.extras(),
    }


def problem_response(err: HivememError) -> Response:
    """The HTTP response for an engine error."""
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    # ASCII-only: an error may quote input that is not valid Unicode (a lone surrogate)
    return Response(
        content=json.dumps(problem_body(err), ensure_ascii=True, separators=(",", ":")),
        status_code=err.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field(error: dict[str, Any]) -> str:
    """A dotted field name (``success[0].namespace``) of one pydantic error."""
    loc: Sequence[Any] = error.get("loc", ())
    if loc and loc[0] in _SOURCES:
        source, loc = loc[0], loc[1:]
    else:
        source = "body"
    if error.get("type") == "json_invalid":
        return "body"
    out = ""
    prev: Any = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(prev, int) and part in _UNION_TAGS:
            pass  # the discriminator tag of a txn op
        elif part in _TYPE_LABELS or "[" in str(part):
            pass  # which member of a plain union pydantic tried
        else:
            out += f".{part}" if out else str(part)
        prev = part
    if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(error.get("ctx", {}).get("discriminator", "op")).strip("'\"")
        if tag.endswith("()"):  # a discriminator function: txn ops are told apart by "op"
            tag = "op"
        out = f"{out}.{tag}" if out else tag
    return out or str(source)


def validation_error(exc: RequestValidationError) -> InvalidInput:
    """The ``InvalidInput`` of a FastAPI validation failure (its first error)."""
    errors = list(exc.errors())
    if not errors:
        return InvalidInput("body", "is invalid")
    first = errors[0]
    message = "is not valid JSON" if first.get("type") == "json_invalid" else first["msg"]
    if first.get("type") == "union_tag_invalid":
        message = f"must be one of {first.get('ctx', {}).get('expected_tags', '')}"
    return InvalidInput(_field(first), message)


async def _on_hivemem_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HivememError)
    if exc.status >= 500 and type(exc) is HivememError:
        log.error("internal error on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_error(exc))


class _HTTPProblem(HivememError):
    """A routing-level failure (405 and the like) that no engine error describes."""

    def __init__(self, status: int, title: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.problem_type = title.lower().replace(" ", "-")


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return problem_response(NotFound(f"no route {request.url.path}"))
    if exc.status_code == 400:  # the framework could not read the body at all
        return problem_response(InvalidInput("body", f"could not be read: {exc.detail}"))
    from http import HTTPStatus

    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    response = problem_response(_HTTPProblem(exc.status_code, title))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (the router names only the first
    route that matched the path, and FastAPI makes one route per method)."""
    from starlette.routing import Match

    def flat(routes: Any) -> Any:  # FastAPI >= 0.130 nests included routers
        for route in routes:
            inner = getattr(route, "original_router", None)
            yield from flat(inner.routes) if inner is not None else (route,)

    methods: set[str] = set()
    for route in flat(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match is Match.PARTIAL:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


class InternalErrorMiddleware:
    """Turns an unexpected exception into a 500 problem, and keeps the connection.

    A handler for ``Exception`` registered with the framework answers 500 but then
    re-raises, so the server drops the keep-alive connection; this answers and stops.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise  # half a response is out: only closing the connection can say so
            err = HivememError("internal error (a bug: please report it)")
            await problem_response(err)(scope, receive, send)


def install_handlers(app: FastAPI) -> None:
    """Route every error through this module."""
    app.add_exception_handler(HivememError, _on_hivemem_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)


_EXAMPLES: dict[int, dict[str, Any]] = {
    401: {"type": "/problems/unauthenticated", "title": "Unauthenticated", "status": 401,
          "detail": "missing API key"},
    403: {"type": "/problems/permission-denied", "title": "Permission denied", "status": 403,
          "detail": "'planner' may not write in namespace 'team/notes'"},
    404: {"type": "/problems/not-found", "title": "Not found", "status": 404,
          "detail": "no such item"},
    409: {"type": "/problems/conflict", "title": "Conflict", "status": 409,
          "detail": "expected version 1, found 2", "current": None, "conflicts": []},
    410: {"type": "/problems/compacted", "title": "Revision compacted", "status": 410,
          "detail": "history below revision 40 was compacted", "compacted_revision": 40},
    413: {"type": "/problems/payload-too-large", "title": "Payload too large", "status": 413,
          "detail": "body: larger than the limit of 16777216 bytes", "field": "body"},
    415: {"type": "/problems/unsupported-media-type", "title": "Unsupported media type",
          "status": 415, "detail": "Content-Type must be application/json-patch+json, "
          "application/vnd.hivemem.update+json or application/merge-patch+json"},
    422: {"type": "/problems/invalid-input", "title": "Invalid input", "status": 422,
          "detail": "namespace: segment 'Team' must be 1-64 of lowercase letters, digits, "
          "'-', '_', '.'", "field": "namespace"},
    503: {"type": "/problems/unavailable", "title": "Unavailable", "status": 503,
          "detail": "the vector index is at revision 41, the log at 42"},
}  # fmt: skip


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the given problem statuses."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "description": _EXAMPLES[status]["title"],
            "content": {PROBLEM_JSON: {"schema": schema, "example": _EXAMPLES[status]}},
        }
        for status in statuses
    }


def document_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make every error response of an OpenAPI document a problem+json ``Problem``.

    FastAPI adds its own 422 schema under ``application/json``; that is not what the
    server sends, so it goes.
    """
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    content = response.setdefault("content", {})
                    content.pop("application/json", None)
                    content.setdefault(
                        PROBLEM_JSON, {"schema": {"$ref": "#/components/schemas/Problem"}}
                    )
    return openapi
