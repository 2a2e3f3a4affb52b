"""Revisions, compaction, and NDJSON export/import."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hivemem.api.deps import Caller
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import ITEM, ok
from hivemem.memory.errors import InvalidInput

__all__ = ["router", "CompactRequest", "RevisionInfo", "Compacted", "Imported"]

router = APIRouter(tags=["maintenance"])
NDJSON = "application/x-ndjson"


class CompactRequest(BaseModel):
    """Drop history below ``revision``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    revision: int = Field(description="Keep history from this revision on.")


class Compacted(BaseModel):
    """The compaction point after the call."""

    compacted_revision: int


class RevisionInfo(BaseModel):
    """The latest revision and the compaction point."""

    revision: int
    compacted_revision: int


class Imported(BaseModel):
    """How many records an import wrote."""

    imported: int


@router.get(
    "/v1/revision",
    summary="Current revision",
    responses={**ok({"revision": 42, "compacted_revision": 0}), **problem_responses(401)},
)
def revision(mem: Caller) -> RevisionInfo:
    """The latest committed revision and the compaction point."""
    return RevisionInfo(revision=mem.revision, compacted_revision=mem.compacted_revision)


@router.post(
    "/v1/compact",
    summary="Compact history",
    responses={**ok({"compacted_revision": 40}), **problem_responses(401, 403, 422)},
)
def compact(
    mem: Caller,
    body: Annotated[
        CompactRequest,
        Body(
            openapi_examples={
                "compact": {"summary": "Drop history below 40", "value": {"revision": 40}}
            }
        ),
    ],
) -> Compacted:
    """Drop history below ``revision`` (admin of the whole store only)."""
    return Compacted(compacted_revision=mem.compact(body.revision))


@router.get(
    "/v1/export",
    summary="Export current items",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One JSON item record per line.",
            "content": {NDJSON: {"example": json.dumps(ITEM) + "\n"}},
        },
        **problem_responses(401, 422),
    },
)
def export(
    mem: Caller,
    prefix: Annotated[str, Query(description="Namespace prefix.", examples=["team"])] = "",
    vectors: Annotated[bool, Query(description="Include each item's vector.")] = True,
) -> StreamingResponse:
    """Readable live items under ``prefix`` as JSON Lines (``import`` reads them back)."""
    records = mem.export(prefix, vectors=vectors)
    first = next(records, None)  # surface a bad prefix as a problem, before the 200
    return StreamingResponse(_lines(first, records), media_type=NDJSON)


def _lines(first: dict[str, Any] | None, rest: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    if first is None:
        return
    chunk = [_dump(first)]
    for record in rest:
        chunk.append(_dump(record))
        if len(chunk) >= 256:
            yield b"".join(chunk)
            chunk = []
    yield b"".join(chunk)


def _dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@router.post(
    "/v1/import",
    summary="Import items",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                NDJSON: {
                    "schema": {"type": "string"},
                    "example": json.dumps(
                        {k: ITEM[k] for k in ("namespace", "key", "value", "text", "metadata")}
                    )
                    + "\n",
                }
            },
        }
    },
    responses={**ok({"imported": 1}), **problem_responses(401, 403, 413, 422)},
)
async def import_items(request: Request, mem: Caller) -> Imported:
    """Write exported records back (``namespace``, ``key``, ``value``, ``text``, …)."""
    body = await request.body()
    if not body:
        raise InvalidInput("body", "is required: NDJSON, one record per line")
    records = _parse_ndjson(body)
    return Imported(imported=await run_in_threadpool(mem.import_items, records))


def _parse_ndjson(body: bytes) -> list[Any]:
    records: list[Any] = []
    for n, line in enumerate(body.splitlines()):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except (ValueError, RecursionError):
            raise InvalidInput(f"records[{len(records)}]", f"line {n + 1} is not JSON") from None
    return records
