"""Proposals: the review queue of writes made by ``propose`` principals.

A proposer's ``PUT`` or ``DELETE`` of an item answers ``202`` with a pending
``Proposal``. Writers of the namespace (and the proposer, for its own) list and read
proposals here, and writers approve or reject them. To anyone else they do not exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from hivemem.api.deps import Caller
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import PROPOSAL, ok
from hivemem.memory.models import Proposal

__all__ = ["router", "ReviewRequest"]

router = APIRouter(tags=["proposals"])


class ReviewRequest(BaseModel):
    """Why a reviewer approves or rejects."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str | None = Field(None, description="Recorded with the review.")


REVIEW_EXAMPLES = {"why": {"summary": "With a reason", "value": {"reason": "checked with ops"}}}


@router.get(
    "/v1/proposals",
    summary="List proposals",
    responses={**ok([PROPOSAL]), **problem_responses(401, 422)},
)
def proposals(
    mem: Caller,
    prefix: Annotated[str, Query(description="Namespace prefix.", examples=["team"])] = "",
    status: Annotated[
        Literal["pending", "approved", "rejected", "expired", "any"],
        Query(description="Which proposals (default pending; any: all)."),
    ] = "pending",
    limit: Annotated[int, Query(description="At most this many, 1 to 1000.")] = 100,
) -> list[Proposal]:
    """Proposals under ``prefix`` the caller may see, oldest first."""
    return mem.proposals(prefix, status=None if status == "any" else status, limit=limit)


@router.get(
    "/v1/proposals/{proposal_id}",
    summary="Read a proposal",
    responses={**ok(PROPOSAL), **problem_responses(401, 404, 422)},
)
def get_proposal(mem: Caller, proposal_id: str) -> Proposal:
    """One proposal (404 unless the caller is its author or a writer of its namespace)."""
    return mem.get_proposal(proposal_id)


@router.post(
    "/v1/proposals/{proposal_id}/approve",
    summary="Approve a proposal",
    responses={
        **ok({**PROPOSAL, "status": "approved", "reviewed_by": "lead", "result_version": 5}),
        **problem_responses(401, 403, 404, 409, 422),
    },
)
def approve(
    mem: Caller,
    proposal_id: str,
    body: Annotated[ReviewRequest | None, Body(openapi_examples=REVIEW_EXAMPLES)] = None,
) -> Proposal:
    """Apply the proposed write against its base version (409 on a conflict: it stays pending)."""
    return mem.approve(proposal_id, body.reason if body else None)


@router.post(
    "/v1/proposals/{proposal_id}/reject",
    summary="Reject a proposal",
    responses={
        **ok({**PROPOSAL, "status": "rejected", "reviewed_by": "lead", "reason": "no"}),
        **problem_responses(401, 403, 404, 409, 422),
    },
)
def reject(
    mem: Caller,
    proposal_id: str,
    body: Annotated[ReviewRequest | None, Body(openapi_examples=REVIEW_EXAMPLES)] = None,
) -> Proposal:
    """Reject the proposal, recording who, when and why."""
    return mem.reject(proposal_id, body.reason if body else None)
