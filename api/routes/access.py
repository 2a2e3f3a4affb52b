"""Principals, grants and API keys, and ``whoami``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from hivemem.api.deps import Caller
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import GRANT, KEY_CREATED, KEY_INFO, ok
from hivemem.memory.models import ApiKeyCreated, ApiKeyInfo, Grant, Permission

__all__ = ["router", "KeyRequest", "GrantRequest", "WhoAmI"]

router = APIRouter(tags=["access"])


class KeyRequest(BaseModel):
    """Who the new API key is for."""

    model_config = ConfigDict(extra="forbid", strict=True)

    principal: str = Field(description="1-128 of letters, digits, '_', '.', '@', '-'.")


class GrantRequest(BaseModel):
    """``principal`` gets ``permission`` on every namespace under ``prefix``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    principal: str = Field(description="1-128 of letters, digits, '_', '.', '@', '-'.")
    prefix: str = Field(description="Namespace prefix ('' is the whole store).")
    permission: Permission


class WhoAmI(BaseModel):
    """The principal the API key belongs to."""

    principal: str


PrincipalQuery = Annotated[
    str | None, Query(description="Only this principal.", examples=["planner"])
]


@router.get(
    "/v1/whoami",
    summary="Who am I",
    responses={**ok({"principal": "planner"}), **problem_responses(401)},
)
def whoami(mem: Caller) -> WhoAmI:
    """The principal holding the request's API key."""
    return WhoAmI(principal=mem.principal)


@router.get(
    "/v1/principals",
    summary="List principals",
    responses={**ok(["admin", "planner"]), **problem_responses(401, 403)},
)
def list_principals(mem: Caller) -> list[str]:
    """Every principal holding a grant or a key (admin of the whole store only)."""
    return mem.principals()


@router.get(
    "/v1/grants",
    summary="List grants",
    responses={**ok([GRANT]), **problem_responses(401, 422)},
)
def list_grants(mem: Caller, principal: PrincipalQuery = None) -> list[Grant]:
    """The caller's own grants, and those on prefixes it administers."""
    return mem.grants(principal)


@router.put(
    "/v1/grants",
    summary="Grant a permission",
    responses={**ok(GRANT), **problem_responses(401, 403, 409, 422)},
)
def put_grant(
    mem: Caller,
    body: Annotated[
        GrantRequest,
        Body(openapi_examples={"write": {"summary": "Let planner write team/*", "value": GRANT}}),
    ],
) -> Grant:
    """Give ``principal`` ``permission`` under ``prefix`` (replaces its grant there).

    409 when it would downgrade the last store-wide admin."""
    return mem.grant(body.principal, body.prefix, body.permission)


@router.delete(
    "/v1/grants",
    summary="Revoke a grant",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 409, 422),
)
def delete_grant(
    mem: Caller,
    principal: Annotated[str, Query(description="Whose grant.", examples=["planner"])],
    prefix: Annotated[str, Query(description="The granted prefix.", examples=["team"])] = "",
) -> Response:
    """Remove ``principal``'s grant on exactly ``prefix`` (409 for the last store-wide admin)."""
    mem.revoke(principal, prefix)
    return Response(status_code=204)


@router.post(
    "/v1/keys",
    summary="Create an API key",
    status_code=201,
    responses={**ok(KEY_CREATED, 201), **problem_responses(401, 403, 422)},
)
def create_key(
    mem: Caller,
    body: Annotated[
        KeyRequest,
        Body(
            openapi_examples={
                "agent": {"summary": "A key for planner", "value": {"principal": "planner"}}
            }
        ),
    ],
) -> ApiKeyCreated:
    """A new key for ``principal``; the secret is in this response only."""
    return mem.create_key(body.principal)


@router.get(
    "/v1/keys",
    summary="List API keys",
    responses={**ok([KEY_INFO]), **problem_responses(401, 403)},
)
def list_keys(mem: Caller, principal: PrincipalQuery = None) -> list[ApiKeyInfo]:
    """Keys (never secrets): anyone may list their own, an admin everyone's."""
    return mem.keys(principal)


@router.delete(
    "/v1/keys/{key_id}",
    summary="Revoke an API key",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404),
)
def revoke_key(
    mem: Caller,
    key_id: Annotated[str, Path(description="The key's id.", examples=["3f9c2a1b7d4e5f60"])],
) -> Response:
    """Revoke a key; every server on the same store rejects it within a second."""
    mem.revoke_key(key_id)
    return Response(status_code=204)
