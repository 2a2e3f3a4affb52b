"""Leases: grant, keep alive (one request, or a WebSocket stream), read and revoke.

``POST /v1/leases`` grants, ``POST /v1/leases/{id}/keepalive`` renews once, ``GET`` reads
and ``DELETE`` revokes. ``/v1/leases/{id}/keepalive/ws`` renews once per message the
client sends, answering each with the lease; closing the socket only stops renewing
(the lease runs out its ttl), it never revokes.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Body, Response, WebSocket
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from hivemem.api.deps import Caller, authenticate, websocket_token
from hivemem.api.problems import problem_body, problem_responses
from hivemem.api.routes.examples import LEASE, ok
from hivemem.memory.errors import HivememError
from hivemem.memory.models import Lease

__all__ = ["router", "LeaseRequest"]

router = APIRouter(tags=["leases"])


class LeaseRequest(BaseModel):
    """The body of ``POST /v1/leases``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ttl: float = Field(10, description="Seconds the lease lives without a keepalive.")


@router.post(
    "/v1/leases",
    summary="Grant a lease",
    status_code=201,
    responses={**ok(LEASE, 201), **problem_responses(401, 422)},
)
def grant_lease(
    mem: Caller,
    body: Annotated[
        LeaseRequest, Body(openapi_examples={"ten": {"summary": "10 s", "value": {"ttl": 10}}})
    ],
) -> Lease:
    """A new lease of ``ttl`` seconds; items written with ``lease=<id>`` live only while it does."""
    return mem.lease(body.ttl)


@router.post(
    "/v1/leases/{lease_id}/keepalive",
    summary="Renew a lease",
    responses={**ok(LEASE), **problem_responses(401, 404, 422)},
)
def keepalive(mem: Caller, lease_id: str) -> Lease:
    """Move the lease's deadline to now + ttl (no revision); 404 once it has ended."""
    return mem.keepalive(lease_id)


@router.get(
    "/v1/leases/{lease_id}",
    summary="Read a lease",
    responses={**ok(LEASE), **problem_responses(401, 404, 422)},
)
def get_lease(mem: Caller, lease_id: str) -> Lease:
    """The lease's ttl, deadline, remaining seconds and attached item count."""
    return mem.get_lease(lease_id)


@router.delete(
    "/v1/leases/{lease_id}",
    summary="Revoke a lease",
    status_code=204,
    responses={204: {"description": "Revoked"}, **problem_responses(401, 404, 422)},
)
def revoke_lease(mem: Caller, lease_id: str) -> Response:
    """End the lease now: every item attached to it expires in the same revision."""
    mem.revoke_lease(lease_id)
    return Response(status_code=204)


@router.websocket("/v1/leases/{lease_id}/keepalive/ws")
async def keepalive_stream(websocket: WebSocket, lease_id: str) -> None:
    """Renew once per text message; reply with the lease. Closing stops renewing only.

    The API key comes in ``Authorization: Bearer …`` or ``?api_key=``. When the lease
    can no longer be renewed the server sends ``{"error": <problem>}`` and closes with
    4000 + the HTTP status (4404).
    """
    await websocket.accept()
    try:
        mem = await run_in_threadpool(authenticate, websocket, websocket_token(websocket))
        while True:
            await websocket.receive_text()
            lease = await run_in_threadpool(mem.keepalive, lease_id)
            await websocket.send_text(lease.model_dump_json())
    except HivememError as exc:
        try:
            await websocket.send_text(json.dumps({"error": problem_body(exc)}))
            await websocket.close(code=4000 + exc.status)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away: the lease runs out its ttl
