"""Atomic updates: ``PATCH /v1/items/{namespace}/{key}`` in three media types.

- ``application/json-patch+json``: an RFC 6902 array of the standard operations.
- ``application/vnd.hivemem.update+json``: ``{"ops": [...], ...}`` with hivemem's
  extensions (``increment``, ``append``, ``add_to_set``, ``remove_from_set``) and the
  other options of ``Memory.update`` (``text``, ``metadata``, ``vector``, ``create``).
- ``application/merge-patch+json``: an RFC 7396 merge patch (``put`` with ``merge="patch"``).
- ``application/json``: an array is taken as a JSON Patch, an object as the hivemem body.

Compare-and-swap by ``If-Match: "<version>"`` or ``?if_version=``; the response carries
the new version as ``ETag``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hivemem.api.deps import blocking, caller, query_int
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import ITEM, PROPOSAL, ok
from hivemem.memory.errors import HivememError, InvalidInput
from hivemem.memory.models import Item, MetadataValue, Proposal
from hivemem.memory.ops import validate_model
from hivemem.memory.patch import EXTENSION_OPS, STANDARD_OPS

__all__ = ["router", "UpdateBody", "JSON_PATCH", "HIVEMEM_UPDATE", "MERGE_PATCH", "etag"]

router = APIRouter(tags=["items"])
JSON_PATCH = "application/json-patch+json"
HIVEMEM_UPDATE = "application/vnd.hivemem.update+json"
MERGE_PATCH = "application/merge-patch+json"
_ETAG = re.compile(r'\s*"(\d{1,19})"\s*')


class UpdateBody(BaseModel):
    """The body of a ``PATCH`` in ``application/vnd.hivemem.update+json``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ops: list[dict[str, Any]] = Field(
        description="JSON Patch operations plus increment, append, add_to_set, remove_from_set."
    )
    if_version: int | None = Field(None, description="Apply only if the live version is this.")
    create: bool = Field(True, description="Start a missing item from {} (else 404).")
    text: str | None = Field(None, description="New text (re-embedded); default: keep.")
    metadata: dict[str, MetadataValue] | None = Field(None, description="New metadata.")
    vector: list[float] | None = Field(None, description="New vector; default: keep.")
    fence: str | None = Field(None, description="A claim's fencing token: only while current.")
    ttl: float | None = Field(None, description="Restart the expiry at now + ttl seconds.")
    metadata_ops: list[dict[str, Any]] | None = Field(
        None, description="Operations of the same kinds applied to the item's metadata."
    )


class _UnsupportedMediaType(HivememError):
    status = 415
    problem_type = "unsupported-media-type"
    title = "Unsupported media type"


def etag(version: int) -> str:
    """The entity tag of an item version, as ``If-Match`` takes it back."""
    return f'"{version}"'


def _if_match(header: str | None, query: int | None) -> int | None:
    if header is None:
        return query
    match = _ETAG.fullmatch(header)
    if match is None:
        raise InvalidInput("If-Match", 'must be one entity tag "<version>" (as ETag gives it)')
    version = int(match.group(1))
    if query is not None and query != version:
        raise InvalidInput("If-Match", "disagrees with if_version")
    return version


_OP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["op", "path"],
    "properties": {
        "op": {"type": "string", "enum": list(STANDARD_OPS)},
        "path": {"type": "string", "description": "RFC 6901 JSON Pointer"},
        "from": {"type": "string"},
        "value": {},
    },
}
_EXT_SCHEMA: dict[str, Any] = {
    **_OP_SCHEMA,
    "properties": {
        **_OP_SCHEMA["properties"],
        "op": {"type": "string", "enum": [*STANDARD_OPS, *EXTENSION_OPS]},
        "max_len": {"type": "integer", "minimum": 1, "description": "append: keep the newest"},
    },
}
_UPDATE_SCHEMA = {
    **UpdateBody.model_json_schema(),
    "properties": {
        **UpdateBody.model_json_schema()["properties"],
        "ops": {"type": "array", "items": _EXT_SCHEMA},
        "metadata_ops": {"anyOf": [{"type": "array", "items": _EXT_SCHEMA}, {"type": "null"}]},
    },
}
_PATCH_SCHEMA: dict[str, Any] = {"type": "array", "items": _OP_SCHEMA}


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        **({"description": description} if description else {}),
    }


_PARAMETERS = [
    _param("namespace", "path", {"type": "string"}, ""),
    _param("key", "path", {"type": "string"}, ""),
    _param(
        "If-Match", "header", {"type": "string"}, 'Compare-and-swap: "<version>" as ETag gives it.'
    ),
    _param(
        "if_version",
        "query",
        {"type": "integer"},
        "Compare-and-swap: apply only if the live version is this.",
    ),
    _param(
        "create",
        "query",
        {"type": "boolean", "default": True},
        "json-patch: start a missing item from {} (else 404).",
    ),
    _param(
        "fence",
        "query",
        {"type": "string"},
        "A claim's fencing token: write only while it is current.",
    ),
]
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _query_bool(raw: str | None, name: str, *, default: bool) -> bool:
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidInput(name, "Input should be a valid boolean")


_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"oneOf": [_PATCH_SCHEMA, _UPDATE_SCHEMA]},
            "example": [{"op": "replace", "path": "/step", "value": 3}],
        },
        JSON_PATCH: {
            "schema": _PATCH_SCHEMA,
            "examples": {
                "test-and-replace": {
                    "summary": "Replace a field only if another still holds a value",
                    "value": [
                        {"op": "test", "path": "/owner", "value": "ops"},
                        {"op": "replace", "path": "/step", "value": 3},
                    ],
                }
            },
        },
        HIVEMEM_UPDATE: {
            "schema": _UPDATE_SCHEMA,
            "examples": {
                "counter": {
                    "summary": "Count, log and remember without a retry loop",
                    "value": {
                        "ops": [
                            {"op": "increment", "path": "/done", "value": 1},
                            {"op": "append", "path": "/log", "value": "page 7", "max_len": 100},
                            {"op": "add_to_set", "path": "/seen", "value": "https://a.example"},
                        ]
                    },
                }
            },
        },
        MERGE_PATCH: {
            "schema": {"type": "object"},
            "examples": {
                "merge": {
                    "summary": "RFC 7396: set owner, drop draft",
                    "value": {"owner": "planner", "draft": None},
                }
            },
        },
    },
}


@router.patch(
    "/v1/items/{namespace:path}/{key}",
    summary="Update an item atomically (JSON Patch, increment, append, set, merge patch)",
    response_model=Item,
    openapi_extra={"requestBody": _REQUEST_BODY, "parameters": _PARAMETERS},
    responses={
        **ok(ITEM),
        202: {
            "description": "A proposal: a merge patch from a principal that may only propose",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Proposal"},
                    "example": PROPOSAL,
                }
            },
        },
        **problem_responses(401, 403, 404, 409, 413, 415, 422),
    },
)
async def patch_item(request: Request) -> Response:
    """Apply the operations to the current value in one revision; returns the new item.

    Concurrent updates never conflict with each other; a failed ``test`` or a stale
    ``If-Match`` is 409 with ``current``; a bad path or a type mismatch is 422 naming
    ``ops[i].path``. Nothing is written on any error. Operations need ``write``; a
    merge patch is a put, so a principal with only ``propose`` gets 202 and a proposal.
    """
    # A hot route (shared counters): the caller and the parameters are read directly
    # (no dependency solving; declared for OpenAPI in ``_PARAMETERS`` and by
    # ``document_security``), the store is called through ``blocking``; the guard
    # middleware has already checked that the body is UTF-8 and not too deep.
    mem = await caller(request)
    namespace, key = request.path_params["namespace"], request.path_params["key"]
    query = request.query_params
    if_version = query_int(request, "if_version")
    create = _query_bool(query.get("create"), "create", default=True)
    fence = query.get("fence")
    if_match = request.headers.get("if-match")
    content_type = request.headers.get("content-type")
    raw = await request.body()
    if not raw.strip():
        raise InvalidInput("body", "is required")
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidInput("body", "is not valid JSON") from None
    media = (content_type or "").split(";")[0].strip().lower()
    expected = _if_match(if_match, if_version)
    if media == "application/json":  # plain JSON: the shape says which of the two
        media = JSON_PATCH if isinstance(body, list) else HIVEMEM_UPDATE
    if media == JSON_PATCH:
        if not isinstance(body, list):
            raise InvalidInput("body", "a JSON Patch is an array of operations")
        for i, op in enumerate(body):
            if isinstance(op, dict) and op.get("op") in EXTENSION_OPS:
                raise InvalidInput(f"ops[{i}].op", f"needs Content-Type {HIVEMEM_UPDATE}")
        item = await blocking(
            request,
            mem.update,
            namespace,
            key,
            body,
            if_version=expected,
            create=create,
            fence=fence,
        )
    elif media == HIVEMEM_UPDATE:
        if not isinstance(body, dict):
            raise InvalidInput("body", "must be an object with 'ops'")
        options = validate_model(UpdateBody, body, "").model_dump()
        if if_match is not None or if_version is not None:
            if options["if_version"] not in (None, expected):
                raise InvalidInput("if_version", "disagrees with If-Match / ?if_version")
            options["if_version"] = expected
        if fence is not None:
            if options["fence"] not in (None, fence):
                raise InvalidInput("fence", "disagrees with ?fence")
            options["fence"] = fence
        item = await blocking(request, mem.update, namespace, key, **options)
    elif media == MERGE_PATCH:
        written = await blocking(
            request,
            mem.put,
            namespace,
            key,
            body,
            merge="patch",
            if_version=expected,
            fence=fence,
        )
        if isinstance(written, Proposal):  # a proposer's merge patch waits for review
            return Response(
                written.model_dump_json(), status_code=202, media_type="application/json"
            )
        item = written
    else:
        raise _UnsupportedMediaType(
            f"Content-Type must be {JSON_PATCH}, {HIVEMEM_UPDATE} or {MERGE_PATCH}"
        )
    return Response(
        item.model_dump_json(),
        media_type="application/json",
        headers={"ETag": etag(item.version)},
    )
