"""What the app knows of a request's route before the route runs.

``route_template`` names the route a request matched (the metrics label), including the
framework's own routes (``/openapi.json``, ``/docs``) that carry no API route object.
``UnknownQueryMiddleware`` answers 422 naming the parameter when a request to a route
carries a query parameter the route does not declare: a misspelt ``if_versoin`` would
otherwise be ignored and the write would go through unconditionally. Likewise for a
single-valued parameter given twice (``?filter=a&filter=b``): the framework would keep
the last one silently.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, get_args, get_origin
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hivemem.api.problems import problem_response
from hivemem.memory.errors import InvalidInput

__all__ = [
    "route_template",
    "UnknownQueryMiddleware",
    "declared_query",
    "repeatable_query",
    "api_routes",
    "serve_directly",
]


def route_template(scope: Scope) -> str | None:
    """The path template of the route that answered ``scope`` (after routing)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if template:
        return str(template)
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is None or app is None:
        return None
    for candidate in getattr(app, "routes", ()):
        if getattr(candidate, "endpoint", None) is endpoint:
            return str(getattr(candidate, "path_format", None) or candidate.path)
        if getattr(candidate, "app", None) is endpoint:  # a mount (the console)
            return str(candidate.path) + "/…"
    return None


def declared_query(route: APIRoute) -> frozenset[str]:
    """The query parameter names ``route`` accepts (its signature and its OpenAPI extras)."""
    names: set[str] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        for param in dependant.query_params:
            annotation = getattr(param.field_info, "annotation", None)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                names |= {f.alias or n for n, f in annotation.model_fields.items()}
            else:
                names.add(param.alias)
        stack.extend(dependant.dependencies)
    for extra in (route.openapi_extra or {}).get("parameters", ()):
        if extra.get("in") == "query":
            names.add(extra["name"])
    return frozenset(names)


def repeatable_query(route: APIRoute) -> frozenset[str]:
    """The query parameters of ``route`` that take a list (may be given repeatedly)."""

    def is_list(annotation: Any) -> bool:
        if get_origin(annotation) in (list, tuple, set, frozenset):
            return True
        return any(is_list(arg) for arg in get_args(annotation))

    names: set[str] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        for param in dependant.query_params:
            if is_list(getattr(param.field_info, "annotation", None)):
                names.add(param.alias)
        stack.extend(dependant.dependencies)
    for extra in (route.openapi_extra or {}).get("parameters", ()):
        if extra.get("in") == "query" and extra.get("schema", {}).get("type") == "array":
            names.add(extra["name"])
    return frozenset(names)


class UnknownQueryMiddleware:
    """422 for a query parameter the matched API route does not declare."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._declared: dict[int, frozenset[str]] = {}
        self._repeatable: dict[int, frozenset[str]] = {}
        self._routes: list[APIRoute] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        unknown = self._unknown(scope)
        if unknown is None:
            await self.app(scope, receive, send)
            return
        name, detail = unknown
        await problem_response(InvalidInput(name, detail))(scope, receive, send)

    def _unknown(self, scope: Scope) -> tuple[str, str] | None:
        route = self._match(scope)
        if route is None:
            return None  # routing answers (404, 405)
        known = self._declared.get(id(route))
        if known is None:
            known = self._declared[id(route)] = declared_query(route)
            self._repeatable[id(route)] = repeatable_query(route)
        repeatable = self._repeatable[id(route)]
        raw: bytes = scope["query_string"]
        query = raw.decode("utf-8", "replace")  # the guard checked it is UTF-8
        seen: set[str] = set()
        for name, _ in parse_qsl(query, keep_blank_values=True):
            if name not in known:
                return str(name), "is not a parameter of this route"
            if name in seen and name not in repeatable:
                return str(name), "is given more than once (it takes one value)"
            seen.add(name)
        return None

    def _match(self, scope: Scope) -> APIRoute | None:
        if self._routes is None:
            self._routes = api_routes(getattr(scope.get("app"), "routes", ()))
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route
        return None


def api_routes(routes: Iterable[Any]) -> list[APIRoute]:
    """The API routes among ``routes``, looking into included routers (which the app
    includes without a prefix, so each route's own path is the one matched)."""
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):
            out += api_routes(route.original_router.routes)
    return out


def serve_directly(app: FastAPI, endpoints: Iterable[Callable[..., Any]]) -> int:
    """Match the API routes of ``endpoints`` before every other route, and run them
    without FastAPI's per-route layer; returns how many routes were put in front.

    Each endpoint must be an ``async def f(request) -> Response`` that reads its own
    parameters (get-by-key and ``PATCH`` of an item: the hottest read and write). A plain
    route with the same path, methods and endpoint goes first, so neither dependency
    solving nor the framework's route matching runs for them: about a third of the
    CPU of a get-by-key. The API route stays registered: it is what the OpenAPI document
    and ``UnknownQueryMiddleware`` read. Errors reach the same exception handlers.
    """
    wanted = set(endpoints)
    front: list[Route] = []
    for route in api_routes(app.routes):
        if route.endpoint not in wanted:
            continue
        params = list(inspect.signature(route.endpoint).parameters)
        if params != ["request"] or not inspect.iscoroutinefunction(route.endpoint):
            raise TypeError(f"{route.endpoint.__name__} must be `async def f(request)`")
        methods = set(route.methods or ())
        direct = Route(route.path, route.endpoint, methods=list(methods), name=route.name)
        direct.methods = methods  # exactly the API route's (no implicit HEAD)
        front.append(direct)
    app.router.routes[:0] = front
    return len(front)
