"""Example payloads shown in the OpenAPI document (one per operation, at least)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ITEM",
    "TOMBSTONE",
    "HIT",
    "CHANGE",
    "GRANT",
    "KEY_INFO",
    "KEY_CREATED",
    "LEASE",
    "CLAIM",
    "PROPOSAL",
    "ok",
]

ITEM: dict[str, Any] = {
    "namespace": "team/notes",
    "key": "deploy-plan",
    "value": {"step": 2, "owner": "ops"},
    "text": "Deploy on Friday after the freeze",
    "metadata": {"kind": "plan", "priority": 2},
    "version": 2,
    "revision": 42,
    "author": "planner",
    "created_at": "2025-01-06T09:00:00Z",
    "updated_at": "2025-01-06T09:30:00Z",
    "expires_at": None,
    "deleted": False,
}
TOMBSTONE: dict[str, Any] = {
    **ITEM,
    "value": None,
    "text": None,
    "metadata": {},
    "version": 3,
    "revision": 43,
    "deleted": True,
}
HIT: dict[str, Any] = {"item": ITEM, "score": 0.8731}
CHANGE: dict[str, Any] = {
    "revision": 42,
    "op": "put",
    "namespace": "team/notes",
    "key": "deploy-plan",
    "version": 2,
    "prev_version": 1,
    "item": ITEM,
    "author": "planner",
    "time": "2025-01-06T09:30:00Z",
}
LEASE: dict[str, Any] = {
    "id": "6c1f0a9e2b7d4358",
    "ttl": 10.0,
    "holder": "planner",
    "revision": 44,
    "expires_at": "2025-01-06T09:30:10Z",
    "remaining": 9.98,
    "alive": True,
    "items": 2,
}
CLAIM: dict[str, Any] = {
    "token": "hmf1.WyJ0ZWFtL3Rhc2tzIiwidC0xNyIsNDVd",
    "item": {
        **ITEM,
        "namespace": "team/tasks",
        "key": "t-17",
        "claim": {
            "state": "claimed",
            "attempts": 1,
            "holder": "worker-3",
            "revision": 45,
            "lease": "6c1f0a9e2b7d4358",
            "max_attempts": 3,
        },
    },
    "lease": "6c1f0a9e2b7d4358",
}
PROPOSAL: dict[str, Any] = {
    "id": "9a41c07e5d2b8f13",
    "namespace": "team/plan",
    "key": "launch",
    "op": "put",
    "value": {"date": "2025-02-03"},
    "text": None,
    "metadata": {},
    "base_version": 4,
    "author": "intern-agent",
    "revision": 51,
    "created_at": "2025-01-06T09:00:00Z",
    "expires_at": "2025-01-13T09:00:00Z",
    "status": "pending",
    "reviewed_by": None,
    "reviewed_at": None,
    "reason": None,
    "result_version": None,
}
GRANT: dict[str, Any] = {"principal": "planner", "prefix": "team", "permission": "write"}
KEY_INFO: dict[str, Any] = {
    "id": "3f9c2a1b7d4e5f60",
    "principal": "planner",
    "created_at": "2025-01-06T09:00:00Z",
    "revoked_at": None,
}
KEY_CREATED: dict[str, Any] = {
    "id": "3f9c2a1b7d4e5f60",
    "principal": "planner",
    "secret": "hm_3f9c2a1b7d4e5f60_Jx1Yq0n4cB7v2Kd9sL3mP8rT5wZ6aE0uH1gF4iO7yXk",
    "created_at": "2025-01-06T09:00:00Z",
}


def ok(
    example: Any, status: int = 200, media_type: str = "application/json"
) -> dict[int | str, Any]:
    """An OpenAPI ``responses`` entry carrying ``example`` for a success status."""
    return {status: {"content": {media_type: {"example": example}}}}
