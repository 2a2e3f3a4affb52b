"""hivemem: a versioned, conflict-safe shared memory with hybrid retrieval.

from hivemem.memory import Memory
mem = Memory.open("./data")
mem.put("team/notes", "deploy-plan", {"step": 1}, text="Deploy on Friday")
mem.search("when is the deploy?", namespaces=["team"])
"""

from hivemem.memory.embed import Embedder, MiniLMEmbedder
from hivemem.memory.engine import Memory
from hivemem.memory.errors import (
    Compacted,
    Conflict,
    HivememError,
    InvalidInput,
    Lagged,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from hivemem.memory.models import (
    Activity,
    ActivitySeries,
    ApiKeyCreated,
    ApiKeyInfo,
    Change,
    Citation,
    Claim,
    Compare,
    DeleteOp,
    GetOp,
    Grant,
    Hit,
    Item,
    Lease,
    ListPage,
    MergeConflict,
    NamespaceInfo,
    NamespacePage,
    OpResult,
    Proposal,
    PutOp,
    Recall,
    RecallItem,
    TaskClaim,
    TxnRequest,
    TxnResult,
)
from hivemem.memory.watch import Subscription

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
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The HTTP client (and httpx) load only when asked for.
    if name in ("Client", "AsyncClient"):
        from hivemem.memory import client

        return getattr(client, name)
    raise AttributeError(f"module 'hivemem.memory' has no attribute {name!r}")
