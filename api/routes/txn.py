"""Batches and etcd-style transactions: many operations, one revision."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict

from hivemem.api.deps import Caller
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import ITEM, TOMBSTONE, ok
from hivemem.memory.errors import InvalidInput
from hivemem.memory.models import Item, TxnRequest, TxnResult, WriteOp

__all__ = ["router", "BatchRequest"]

router = APIRouter(tags=["transactions"])


class BatchRequest(BaseModel):
    """Puts and deletes committed together, all or nothing."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ops: list[WriteOp]


BATCH_EXAMPLES = {
    "mixed": {
        "summary": "Write one item and delete another in one revision",
        "value": {
            "ops": [
                {
                    "op": "put",
                    "namespace": "team/notes",
                    "key": "deploy-plan",
                    "value": {"step": 2},
                    "text": "Deploy on Friday",
                },
                {"op": "delete", "namespace": "team/notes", "key": "old-plan"},
            ]
        },
    }
}
TXN_EXAMPLES = {
    "claim": {
        "summary": "Claim a task only if nobody holds it",
        "value": {
            "compare": [
                {"namespace": "team/tasks", "key": "t-17", "target": "exists", "value": False}
            ],
            "success": [
                {"op": "put", "namespace": "team/tasks", "key": "t-17", "value": {"owner": "a1"}}
            ],
            "failure": [{"op": "get", "namespace": "team/tasks", "key": "t-17"}],
        },
    }
}


@router.post(
    "/v1/batch",
    summary="Write many items in one revision",
    responses={**ok([ITEM, TOMBSTONE]), **problem_responses(401, 403, 404, 409, 413, 422)},
)
def batch(
    mem: Caller, body: Annotated[BatchRequest, Body(openapi_examples=BATCH_EXAMPLES)]
) -> list[Item]:
    """The items written (tombstones for deletes), in the order of ``ops``."""
    try:
        result = mem.txn(success=body.ops)
    except InvalidInput as exc:
        _rename_field(exc, "success", "ops")
        raise
    return [r.item for r in result.results if r.item is not None]


def _rename_field(exc: InvalidInput, old: str, new: str) -> None:
    """The engine names txn fields ``success[i]…``; a batch calls them ``ops[i]…``."""
    if exc.field.startswith(old):
        exc.field = new + exc.field[len(old) :]
        if exc.detail.startswith(old):
            exc.detail = new + exc.detail[len(old) :]
            exc.args = (exc.detail,)


@router.post(
    "/v1/txn",
    summary="Run a transaction",
    responses={
        **ok(
            {
                "succeeded": True,
                "revision": 44,
                "results": [
                    {
                        "op": "put",
                        "namespace": "team/tasks",
                        "key": "t-17",
                        "item": {**ITEM, "namespace": "team/tasks", "key": "t-17"},
                        "version": 1,
                    }
                ],
            }
        ),
        **problem_responses(401, 403, 404, 409, 413, 422),
    },
)
def txn(mem: Caller, body: Annotated[TxnRequest, Body(openapi_examples=TXN_EXAMPLES)]) -> TxnResult:
    """If every compare holds run ``success``, else ``failure``; atomic, one revision."""
    return mem.txn(body.compare, body.success, body.failure)
