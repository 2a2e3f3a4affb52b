"""Search: top-k by vector, keyword or hybrid relevance over readable namespaces."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from hivemem.api.deps import Caller
from hivemem.api.problems import problem_responses
from hivemem.api.routes.examples import HIT, ok
from hivemem.memory.models import Hit, Recall

__all__ = ["router", "SearchRequest", "RecallRequest"]

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
    thread: str | None = Field(None, description="Only items of this thread.")
    at_revision: int | None = Field(
        None, description="Rank the versions visible at this revision (exact; 410 if compacted)."
    )
    min_revision: int | None = Field(
        None,
        description="Wait (up to 5 s) until this replica's index has applied this revision "
        "(read-your-writes across replicas; the clients send it after their writes).",
    )


SEARCH_EXAMPLES = {
    "hybrid": {
        "summary": "Hybrid search in one team's namespaces",
        "value": {"query": "when is the deploy?", "namespaces": ["team"], "k": 5},
    },
    "thread_at_revision": {
        "summary": "One conversation, as it was at revision 40",
        "value": {"query": "who adopted a puppy?", "thread": "session-7", "at_revision": 40},
    },
    "read_your_writes": {
        "summary": "Search a replica once it has applied the caller's last write",
        "value": {"query": "deploy", "namespaces": ["team"], "min_revision": 41},
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
    responses={**ok([HIT]), **problem_responses(401, 410, 422)},
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
        thread=body.thread,
        at_revision=body.at_revision,
        min_revision=body.min_revision,
    )


class RecallRequest(BaseModel):
    """The arguments of ``Memory.recall`` (tokens are counted by the model's tokenizer)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    query: str | None = Field(None, description="Query text (needed unless `vector` is given).")
    namespaces: list[str] | None = Field(None, description="Namespace prefixes to search.")
    budget_tokens: int = Field(1500, description="Most tokens the context may take.")
    k: int = Field(20, description="How many search hits to choose from, 1 to 1000.")
    mode: Literal["vector", "keyword", "hybrid"] = "hybrid"
    filter: dict[str, Any] | None = Field(None, description="Metadata filter.")
    thread: str | None = Field(None, description="Only items of this thread.")
    at_revision: int | None = Field(None, description="Recall the state at this revision.")
    vector: list[float] | None = Field(None, description="Search by this vector.")


RECALL_EXAMPLES = {
    "budget": {
        "summary": "What the team knows about the deploy, in at most 500 tokens",
        "value": {"query": "when is the deploy?", "namespaces": ["team"], "budget_tokens": 500},
    },
}

RECALL_EXAMPLE = {
    "context": "[team/notes/deploy-plan v2 r41] Deploy on Friday after the freeze",
    "items": [
        {
            "item": HIT["item"],
            "score": 0.83,
            "citation": {
                "namespace": "team/notes",
                "key": "deploy-plan",
                "version": 2,
                "revision": 41,
                "author": "planner",
                "thread": None,
            },
            "tokens": 19,
        }
    ],
    "tokens": 19,
    "truncated": False,
}


@router.post(
    "/v1/recall",
    summary="Recall a prompt-ready context under a token budget",
    responses={**ok(RECALL_EXAMPLE), **problem_responses(401, 410, 422)},
)
def recall(
    mem: Caller, body: Annotated[RecallRequest, Body(openapi_examples=RECALL_EXAMPLES)]
) -> Recall:
    """The best hits that fit, near-duplicates dropped, threads in conversation order."""
    return mem.recall(
        body.query,
        namespaces=body.namespaces,
        budget_tokens=body.budget_tokens,
        k=body.k,
        mode=body.mode,
        filter=body.filter,
        thread=body.thread,
        at_revision=body.at_revision,
        vector=body.vector,
    )
