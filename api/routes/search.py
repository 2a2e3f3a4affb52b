"""Search: top-k by vector, keyword or hybrid relevance over readable namespaces."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from hivemem.api.deps import Caller
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import HIT, ok
from hivemem.memory.models import Hit

__all__ = ["router", "SearchRequest"]

router = APIRouter(tags=["search"])


class SearchRequest(BaseModel):
    """The arguments of ``Memory.search``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    query: str | None = Field(None, description="Query text (needed unless `vector` is given).")
    namespaces: list[str] | None = Field(
        None, description="Namespace prefixes to search (default: everything readable)."
    )
    k: int = Field(10, description="How many hits, 1 to 1000.")
    mode: Literal["vector", "keyword", "hybrid"] = "hybrid"
    filter: dict[str, Any] | None = Field(
        None, description='Metadata filter, e.g. {"priority": {"$gte": 2}}.'
    )
    vector: list[float] | None = Field(None, description="Search by this vector.")


SEARCH_EXAMPLES = {
    "hybrid": {
        "summary": "Hybrid search in one team's namespaces",
        "value": {"query": "when is the deploy?", "namespaces": ["team"], "k": 5},
    },
    "filtered": {
        "summary": "Keyword search with a metadata filter",
        "value": {
            "query": "deploy",
            "mode": "keyword",
            "filter": {"kind": "plan", "priority": {"$gte": 2}},
        },
    },
}


@router.post(
    "/v1/search",
    summary="Search items",
    responses={**ok([HIT]), **problem_responses(401, 422)},
)
def search(
    mem: Caller, body: Annotated[SearchRequest, Body(openapi_examples=SEARCH_EXAMPLES)]
) -> list[Hit]:
    """Best hits first; only items the caller may read are ever considered."""
    return mem.search(
        body.query,
        namespaces=body.namespaces,
        k=body.k,
        mode=body.mode,
        filter=body.filter,
        vector=body.vector,
    )
