"""Task claims: claim a task (given, or the oldest open one), complete or release it.

``POST /v1/claims`` answers 200 with the ``Claim`` (the item and its fencing token), or
204 when no task is open. Writes anywhere carry the token as ``fence`` (a put body field,
``?fence=`` on a delete, a field of batch and txn ops) and are refused with 409 once the
claim is no longer current.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel, ConfigDict, Field

from hivemem.api.deps import Caller
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import CLAIM, ITEM, ok
from hivemem.memory.models import Claim, Item

__all__ = ["router", "ClaimRequest", "TokenRequest"]

router = APIRouter(tags=["claims"])


class ClaimRequest(BaseModel):
    """The body of ``POST /v1/claims``: the arguments of ``Memory.claim``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    namespace: str
    key: str | None = Field(None, description="Claim this task; default: the oldest open one.")
    lease: str | None = Field(None, description="Hold the claim under this lease of yours.")
    ttl: float | None = Field(None, description="Or under a lease of this many seconds (30).")
    filter: dict[str, Any] | None = Field(None, description="Metadata filter on open tasks.")
    max_attempts: int | None = Field(None, description="Claims before a task goes dead.")


class TokenRequest(BaseModel):
    """A fencing token (and, to complete, the task's new value)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    token: str
    value: Any = Field(None, description="complete only: the task's new value (null keeps it).")


@router.post(
    "/v1/claims",
    summary="Claim a task",
    response_model=Claim,
    responses={
        **ok(CLAIM),
        204: {"description": "No open task matches"},
        **problem_responses(401, 403, 404, 409, 422),
    },
)
def claim(
    mem: Caller,
    body: Annotated[
        ClaimRequest,
        Body(
            openapi_examples={
                "oldest": {
                    "summary": "The oldest open task, held for 60 s",
                    "value": {"namespace": "team/tasks", "ttl": 60, "filter": {"kind": "build"}},
                }
            }
        ),
    ],
) -> Any:
    """Atomically claim a task; 204 when none is open."""
    got = mem.claim(
        body.namespace,
        body.key,
        lease=body.lease,
        ttl=body.ttl,
        filter=body.filter,
        max_attempts=body.max_attempts,
    )
    if got is None:
        return Response(status_code=204)
    return got


TOKEN_EXAMPLE = {"token": {"summary": "A fencing token", "value": {"token": CLAIM["token"]}}}


@router.post(
    "/v1/claims/complete",
    summary="Complete a claimed task",
    responses={**ok(ITEM), **problem_responses(401, 403, 409, 422)},
)
def complete(
    mem: Caller, body: Annotated[TokenRequest, Body(openapi_examples=TOKEN_EXAMPLE)]
) -> Item:
    """Mark the task done (409 if the claim is no longer current); returns the item."""
    return mem.complete(body.token, body.value)


@router.post(
    "/v1/claims/release",
    summary="Release a claimed task",
    responses={**ok(ITEM), **problem_responses(401, 403, 409, 422)},
)
def release(
    mem: Caller, body: Annotated[TokenRequest, Body(openapi_examples=TOKEN_EXAMPLE)]
) -> Item:
    """Give the task back (open again, or dead once out of attempts); returns the item."""
    return mem.release(body.token)
