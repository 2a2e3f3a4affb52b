"""Coordination activity: writes, conflicts, expiries and lagged watchers over time.

Per namespace and per author, only in namespaces the key may read: this is where an
operator sees collisions by name, never on the unauthenticated ``/metrics`` (whose
labels would leak names and grow without bound).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from hivemem.api.deps import Caller
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import ok
from hivemem.memory.models import Activity

__all__ = ["router", "ACTIVITY"]

router = APIRouter(tags=["activity"])

ACTIVITY: dict[str, Any] = {
    "start": "2025-01-06T09:00:00Z",
    "end": "2025-01-06T09:59:42Z",
    "bucket": 600,
    "total": {
        "name": "",
        "writes": [4, 0, 9, 2, 0, 1],
        "conflicts": [0, 0, 2, 0, 0, 0],
        "expiries": [0, 0, 0, 1, 0, 0],
        "lagged": [0, 0, 0, 0, 0, 0],
    },
    "namespaces": [
        {
            "name": "team/notes",
            "writes": [4, 0, 9, 2, 0, 1],
            "conflicts": [0, 0, 2, 0, 0, 0],
            "expiries": [0, 0, 0, 1, 0, 0],
            "lagged": [0, 0, 0, 0, 0, 0],
        }
    ],
    "authors": [
        {
            "name": "planner",
            "writes": [4, 0, 6, 2, 0, 1],
            "conflicts": [0, 0, 2, 0, 0, 0],
            "expiries": [0, 0, 0, 1, 0, 0],
            "lagged": [0, 0, 0, 0, 0, 0],
        },
        {
            "name": "researcher",
            "writes": [0, 0, 3, 0, 0, 0],
            "conflicts": [0, 0, 0, 0, 0, 0],
            "expiries": [0, 0, 0, 0, 0, 0],
            "lagged": [0, 0, 0, 0, 0, 0],
        },
    ],
    "more_namespaces": 0,
    "more_authors": 0,
    "recorded_since": "2025-01-06T08:12:05Z",
    "dropped": 0,
}


@router.get(
    "/v1/activity",
    summary="Coordination activity per namespace and author",
    responses={**ok(ACTIVITY), **problem_responses(401, 422)},
)
def activity(
    mem: Caller,
    prefix: Annotated[str, Query(description="Namespace prefix.", examples=["team"])] = "",
    window: Annotated[
        int, Query(description="Seconds back from now, 60 to 86400.", examples=[3600])
    ] = 3600,
    bucket: Annotated[
        int | None,
        Query(description="Seconds per bucket, a multiple of 10 (default: about 60 buckets)."),
    ] = None,
    depth: Annotated[
        int | None,
        Query(description="Group namespaces cut to this many segments, 1 to 16."),
    ] = None,
    limit: Annotated[int, Query(description="Series per group, 1 to 100.")] = 20,
) -> Activity:
    """Counts per bucket for each readable namespace and each author active in them."""
    return mem.activity(prefix, window=window, bucket=bucket, depth=depth, limit=limit)
