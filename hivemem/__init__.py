"""hivemem: a versioned, conflict-safe shared memory with hybrid retrieval.

One import name for everything: the engine lives in ``hivemem.memory``, the REST
server in ``hivemem.api`` and the framework adapters in ``hivemem.adapters``; the
public API is re-exported here, and ``__all__`` is its canonical list::

    from hivemem import Memory
    mem = Memory.open("./data")
    mem.put("team/notes", "deploy-plan", {"step": 1}, text="Deploy on Friday")
    mem.search("when is the deploy?", namespaces=["team"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hivemem.memory import (
    Activity,
    ActivitySeries,
    ApiKeyCreated,
    ApiKeyInfo,
    Change,
    Citation,
    Claim,
    Compacted,
    Compare,
    Conflict,
    DeleteOp,
    Embedder,
    GetOp,
    Grant,
    Hit,
    HivememError,
    InvalidInput,
    Item,
    Lagged,
    Lease,
    ListPage,
    Memory,
    MergeConflict,
    MiniLMEmbedder,
    NamespaceInfo,
    NamespacePage,
    NotFound,
    OpResult,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    Proposal,
    PutOp,
    Recall,
    RecallItem,
    Subscription,
    TaskClaim,
    TxnRequest,
    TxnResult,
    Unauthenticated,
    Unavailable,
)
from hivemem.memory import (
    __version__ as __version__,
)

if TYPE_CHECKING:
    from hivemem.memory.client import AsyncClient, Client

__all__ = [
    "Memory",
    "Client",
    "AsyncClient",
    "Embedder",
    "MiniLMEmbedder",
    "Subscription",
    "HivememError",
    "InvalidInput",
    "PayloadTooLarge",
    "NotFound",
    "Conflict",
    "PermissionDenied",
    "Unauthenticated",
    "Compacted",
    "Unavailable",
    "Lagged",
    "Overloaded",
    "Item",
    "MergeConflict",
    "Change",
    "Hit",
    "Lease",
    "Proposal",
    "Claim",
    "TaskClaim",
    "Recall",
    "RecallItem",
    "Citation",
    "Compare",
    "PutOp",
    "DeleteOp",
    "GetOp",
    "TxnRequest",
    "TxnResult",
    "OpResult",
    "ListPage",
    "NamespaceInfo",
    "NamespacePage",
    "Grant",
    "ApiKeyInfo",
    "ApiKeyCreated",
    "Activity",
    "ActivitySeries",
]


def __getattr__(name: str) -> object:
    # The HTTP client (and httpx) load only when asked for.
    if name in ("Client", "AsyncClient"):
        from hivemem.memory import client

        return getattr(client, name)
    raise AttributeError(f"module 'hivemem' has no attribute {name!r}")
