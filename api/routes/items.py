"""Items: put, get, delete, history and list.

The namespace is a path and the key is always the last segment (keys never contain
``/``), so ``/v1/items/team/project/notes/deploy-plan`` is key ``deploy-plan`` in
namespace ``team/project/notes``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from hivemem.api.deps import Caller, caller, query_int
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import ITEM, PROPOSAL, TOMBSTONE, ok
from hivemem.memory.errors import InvalidInput
from hivemem.memory.models import Item, ListPage, NamespacePage, Proposal
from hivemem.memory.validation import MAX_JSON_DEPTH, json_text_depth

__all__ = ["router", "PutBody"]

router = APIRouter(tags=["items"])
ITEM_PATH = "/v1/items/{namespace:path}/{key}"

#: ``?min_revision=``: read-your-writes across replicas (the clients send it themselves).
MinRevision = Annotated[
    int | None,
    Query(
        description="Wait (up to 5 s) until this replica has applied this revision first.",
        examples=[41],
    ),
]


class PutBody(BaseModel):
    """The body of ``PUT /v1/items/{namespace}/{key}``: the options of ``Memory.put``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    value: Any = Field(description="Any JSON value (required; null allowed).")
    text: str | None = Field(None, description="What is embedded and keyword-indexed.")
    metadata: dict[str, Any] | None = Field(
        None, description="Flat object of scalars or scalar lists, used by filters."
    )
    if_version: int | None = Field(
        None, description="Compare-and-swap: write only if the live version is this (0: absent)."
    )
    merge: Literal["replace", "patch", "three_way"] = "replace"
    base_version: int | None = Field(None, description="Required with merge='three_way'.")
    on_conflict: Literal["ours", "theirs"] | None = None
    ttl: float | None = Field(None, description="Seconds to live.")
    vector: list[float] | None = Field(None, description="A vector instead of embedding text.")
    lease: str | None = Field(
        None, description="Attach to this lease: the item lives only while the lease does."
    )
    fence: str | None = Field(
        None, description="A claim's fencing token: write only while that claim is current."
    )
    thread: str | None = Field(
        None, description="The conversation (in this namespace) the item belongs to."
    )


PUT_EXAMPLES = {
    "replace": {
        "summary": "Write a value with text and metadata",
        "value": {
            "value": {"step": 2, "owner": "ops"},
            "text": "Deploy on Friday after the freeze",
            "metadata": {"kind": "plan", "priority": 2},
        },
    },
    "thread": {
        "summary": "A turn of a conversation",
        "value": {"value": "We adopted a puppy!", "thread": "session-7"},
    },
    "cas": {
        "summary": "Compare-and-swap: only if the current version is 1",
        "value": {"value": {"step": 2}, "if_version": 1},
    },
    "three_way": {
        "summary": "Three-way merge against the version the caller read",
        "value": {"value": {"step": 3}, "merge": "three_way", "base_version": 1},
    },
}


@router.put(
    ITEM_PATH,
    summary="Write an item",
    response_model=Item,
    responses={
        **ok(ITEM),
        202: {
            "description": "A proposal (the caller may only propose here)",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Proposal"},
                    "example": PROPOSAL,
                }
            },
        },
        **problem_responses(401, 403, 409, 413, 422),
    },
)
def put_item(
    mem: Caller,
    namespace: str,
    key: str,
    body: Annotated[PutBody, Body(openapi_examples=PUT_EXAMPLES)],
) -> Any:
    """Write one version of an item (last-writer-wins unless ``if_version`` or a merge).

    A principal with only ``propose`` here gets ``202`` and the pending ``Proposal``.
    """
    return _written(mem.put(namespace, key, **body.model_dump()))


def _written(result: Item | Proposal) -> Any:
    if isinstance(result, Proposal):
        return Response(result.model_dump_json(), status_code=202, media_type="application/json")
    return result


@router.get(
    ITEM_PATH,
    summary="Read an item",
    response_model=Item,
    openapi_extra={
        "parameters": [
            {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "at_revision",
                "in": "query",
                "required": False,
                "description": "Read the version visible at this revision.",
                "schema": {"type": "integer"},
                "example": 40,
            },
            {
                "name": "min_revision",
                "in": "query",
                "required": False,
                "description": "Wait (up to 5 s) until this replica has applied this revision.",
                "schema": {"type": "integer"},
                "example": 41,
            },
        ]
    },
    responses={**ok(ITEM), **problem_responses(401, 404, 410, 422)},
)
async def get_item(request: Request) -> Response:
    """The current version, or the one visible at ``at_revision``.

    The hottest route: a read from the log (tens of microseconds, never blocked by a
    writer in WAL mode) runs on the event loop, the caller and the parameters are read
    directly (no dependency solving; declared for OpenAPI in ``openapi_extra`` and by
    ``document_security``), and the engine's already-valid item is serialised once,
    without a thread-pool hop or a second validation.
    """
    mem = await caller(request)
    params = request.path_params
    at_revision = query_int(request, "at_revision")
    min_revision = query_int(request, "min_revision")
    args = (params["namespace"], params["key"], at_revision)
    if min_revision is None:
        item = mem.get(*args)
    else:  # it may wait for this replica to catch up: not on the event loop
        item = await run_in_threadpool(mem.get, *args, min_revision=min_revision)
    # The version as an entity tag: PATCH takes it back as If-Match.
    headers = {"ETag": f'"{item.version}"'}
    return Response(item.model_dump_json(), media_type="application/json", headers=headers)


@router.delete(
    ITEM_PATH,
    summary="Delete an item",
    response_model=Item,
    responses={**ok(TOMBSTONE), **problem_responses(401, 403, 404, 409, 422)},
)
def delete_item(
    mem: Caller,
    namespace: str,
    key: str,
    if_version: Annotated[
        int | None, Query(description="Delete only if the live version is this.", examples=[2])
    ] = None,
    fence: Annotated[
        str | None, Query(description="A claim's fencing token: delete only while it is current.")
    ] = None,
) -> Any:
    """Leave a tombstone (history is kept); returns the tombstone (202 and a
    ``Proposal`` for a principal with only ``propose``)."""
    return _written(mem.delete(namespace, key, if_version=if_version, fence=fence))


@router.get(
    "/v1/history/{namespace:path}/{key}",
    summary="Every version of an item",
    responses={**ok([{**ITEM, "version": 1, "revision": 40}, ITEM]), **problem_responses(401, 404)},
)
def history(mem: Caller, namespace: str, key: str, min_revision: MinRevision = None) -> list[Item]:
    """Every version still in history, oldest first, tombstones included."""
    return mem.history(namespace, key, min_revision=min_revision)


@router.get(
    "/v1/items",
    summary="List items",
    responses={
        **ok({"items": [ITEM], "cursor": "WyJ0ZWFtL25vdGVzIiwiZGVwbG95LXBsYW4iXQ"}),
        **problem_responses(401, 422),
    },
)
def list_items(
    mem: Caller,
    prefix: Annotated[str, Query(description="Namespace prefix.", examples=["team"])] = "",
    limit: Annotated[int, Query(description="Page size, 1 to 1000.")] = 100,
    cursor: Annotated[str | None, Query(description="From the previous page.")] = None,
    filter: Annotated[
        str | None,
        Query(
            description='Metadata filter as a JSON object, e.g. {"priority": {"$gte": 2}}.',
            examples=['{"kind": "plan"}'],
        ),
    ] = None,
    min_revision: MinRevision = None,
) -> ListPage:
    """Live items under ``prefix`` that the caller may read, by (namespace, key)."""
    return mem.list(
        prefix,
        filter=parse_json_filter(filter),
        limit=limit,
        cursor=cursor,
        min_revision=min_revision,
    )


@router.get(
    "/v1/namespaces",
    summary="List namespaces with item counts",
    responses={
        **ok({"namespaces": [{"namespace": "team/notes", "items": 12}], "cursor": None}),
        **problem_responses(401, 422),
    },
)
def list_namespaces(
    mem: Caller,
    prefix: Annotated[str, Query(description="Namespace prefix.", examples=["team"])] = "",
    depth: Annotated[
        int | None,
        Query(description="Cut namespaces to this many segments (from the root), 1 to 16."),
    ] = None,
    limit: Annotated[int, Query(description="Page size, 1 to 1000.")] = 100,
    cursor: Annotated[str | None, Query(description="From the previous page.")] = None,
    min_revision: MinRevision = None,
) -> NamespacePage:
    """Namespaces under ``prefix`` with live items the caller may read, and their counts."""
    return mem.namespaces(
        prefix, depth=depth, limit=limit, cursor=cursor, min_revision=min_revision
    )


def parse_json_filter(raw: str | None) -> dict[str, Any] | None:
    """The ``filter`` query parameter: a JSON object (validated by the engine)."""
    if raw is None or raw == "":
        return None
    if json_text_depth(raw, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise InvalidInput("filter", f"nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput("filter", "is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput("filter", "must be a JSON object")
    return value
