"""Liveness, readiness and metrics: no API key needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from hivemem.api.deps import Root
from hivemem.api.metrics import CONTENT_TYPE
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import ok
from hivemem.memory.errors import Unavailable

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness", responses=ok({"status": "ok"}))
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    responses={
        **ok({"status": "ready", "revision": 42, "index_revision": 42}),
        **problem_responses(503),
    },
)
def readyz(root: Root) -> dict[str, Any]:
    """Ready when the log is open, the embedding model (if the store has one) has
    loaded, and the vector index has applied every revision."""
    try:
        status = root.status()
    except Exception as exc:  # a closed or broken log: not ready, and say why
        raise Unavailable(f"the log is not open: {exc}") from exc
    if not root.ready():
        raise Unavailable("the embedding model is still loading")
    if status["index_revision"] < status["revision"]:
        raise Unavailable(
            f"the vector index is at revision {status['index_revision']}, "
            f"the log at {status['revision']}"
        )
    return {
        "status": "ready",
        "revision": status["revision"],
        "index_revision": status["index_revision"],
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses=ok("# TYPE hivemem_revision gauge\nhivemem_revision 42\n", media_type="text/plain"),
)
def metrics(request: Request, root: Root) -> PlainTextResponse:
    """Request counts and latencies, the revision, index lag and watch subscribers."""
    text = request.app.state.metrics.render(root)
    return PlainTextResponse(text, media_type=CONTENT_TYPE)
