"""Pydantic models: the one source of hivemem's wire schema.

The engine returns these, the REST API puts them on the wire, the client parses them
back, and OpenAPI is generated from them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

__all__ = [
    "Item",
    "MergeConflict",
    "PatchTestFailure",
    "UpdateOp",
    "Change",
    "Hit",
    "Lease",
    "Proposal",
    "TaskClaim",
    "Claim",
    "Citation",
    "RecallItem",
    "Recall",
    "Compare",
    "PutOp",
    "DeleteOp",
    "GetOp",
    "TxnOp",
    "WriteOp",
    "TxnRequest",
    "OpResult",
    "TxnResult",
    "ListPage",
    "NamespaceInfo",
    "NamespacePage",
    "Activity",
    "ActivitySeries",
    "Grant",
    "ApiKeyInfo",
    "ApiKeyCreated",
    "Permission",
    "SearchMode",
    "MergeMode",
    "Filter",
    "MetadataValue",
    "ts_to_datetime",
]

Permission = Literal["read", "propose", "write", "admin"]
SearchMode = Literal["vector", "keyword", "hybrid"]
MergeMode = Literal["replace", "patch", "three_way"]
Scalar = str | int | float | bool | None
MetadataValue = Scalar | list[Scalar]
#: Metadata filter: ``{"field": value}`` (equality) or ``{"field": {"$op": operand}}``
#: with ``$eq $ne $gt $gte $lt $lte $in $nin $exists``; several fields are ANDed.
Filter = dict[str, Any]


def ts_to_datetime(ts: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class _Model(BaseModel):
    """A response model: parsing ignores fields it does not know, so a newer server may
    add optional fields without breaking older clients."""

    model_config = ConfigDict(extra="ignore")


class _Request(BaseModel):
    """A request model: unknown fields are rejected, and types are strict (a boolean is
    never an integer, a numeric string never a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TaskClaim(_Model):
    """A task's claim state, kept in its item's ``claim`` field (not in its metadata).

    ``state``: ``open`` (claimable), ``claimed`` (``holder`` holds it under ``lease``
    since ``revision``), ``done`` (completed) or ``dead`` (``attempts`` reached
    ``max_attempts``). An item never claimed has no ``claim`` and is open.
    """

    state: Literal["open", "claimed", "done", "dead"]
    attempts: int = 0
    holder: str | None = None
    revision: int | None = None
    lease: str | None = None
    max_attempts: int | None = None


class Item(_Model):
    """One version of one item. ``deleted`` marks a tombstone in history.

    ``thread`` names the conversation the item belongs to (in its namespace);
    ``thread_pos`` is its place there: a thread's items in conversation order sort by it.
    """

    namespace: str
    key: str
    value: Any = None
    text: str | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    version: int
    revision: int
    author: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    deleted: bool = False
    lease: str | None = None
    claim: TaskClaim | None = None
    thread: str | None = None
    thread_pos: int | None = None


class Claim(_Model):
    """A claimed task: its item (``claim`` filled in) and the fencing token.

    ``token`` names the task and the revision of this claim; pass it as ``fence=`` on
    writes, to ``complete`` or to ``release``. The claim lives as long as ``lease``:
    renew it with ``keepalive(lease)``.
    """

    token: str
    item: Item
    lease: str


class MergeConflict(_Model):
    """One JSON path changed differently by both sides of a three-way merge.

    ``ours`` is the caller's value, ``theirs`` the stored one; a side listed in
    ``absent`` did not have the field at all (deleted or never set).
    """

    path: str
    base: Any = None
    ours: Any = None
    theirs: Any = None
    absent: list[Literal["base", "ours", "theirs"]] = Field(default_factory=list)


class Proposal(_Model):
    """A write of a ``propose`` principal, waiting for review instead of being applied.

    ``base_version`` is the item's live version the proposal was based on (0: absent).
    ``status`` is ``pending``, ``approved``, ``rejected`` or ``expired``; a review
    records who (``reviewed_by``), when and why (``reason``), and an approval the
    version it wrote (``result_version``).
    """

    id: str
    namespace: str
    key: str
    op: Literal["put", "delete"]
    value: Any = None
    text: str | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    thread: str | None = None
    base_version: int
    author: str
    revision: int
    created_at: datetime
    expires_at: datetime
    status: Literal["pending", "approved", "rejected", "expired"] = "pending"
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    reason: str | None = None
    result_version: int | None = None


class PatchTestFailure(_Model):
    """A ``test`` operation of an update found another value at ``path``.

    ``absent`` is true when nothing was there at all (``actual`` is then null).
    """

    path: str
    expected: Any = None
    actual: Any = None
    absent: bool = False


class Change(_Model):
    """One entry of the log, as subscribers receive it.

    ``propose`` and ``review`` changes carry a ``proposal`` (visible only to writers of
    its namespace and to its author); the others are changes of items.
    """

    revision: int
    op: Literal["put", "delete", "expire", "propose", "review"]
    namespace: str
    key: str
    version: int
    prev_version: int | None = None
    item: Item | None = None
    author: str
    time: datetime
    reason: Literal["ttl", "lease"] | None = None
    score: float | None = None
    proposal: Proposal | None = None
    #: The operations of an ``update`` that wrote this version (``item`` is the result).
    ops: list[dict[str, Any]] | None = None


class Lease(_Model):
    """A lease (etcd's model): items written with ``lease=id`` live only while it lives.

    ``ttl`` is the granted time to live; each keepalive moves ``expires_at`` to now +
    ``ttl``. ``remaining`` is the seconds left when this was read (0 once ended);
    ``items`` counts the live items attached to it.
    """

    id: str
    ttl: float
    holder: str
    revision: int
    expires_at: datetime
    remaining: float
    alive: bool = True
    items: int = 0


class Hit(_Model):
    """A search result: the item and its score (higher is better)."""

    item: Item
    score: float


class Citation(_Model):
    """Where a recalled item comes from: enough to read that very version again."""

    namespace: str
    key: str
    version: int
    revision: int
    author: str
    thread: str | None = None


class RecallItem(_Model):
    """One item in a recall's context, with its citation and the tokens its entry took."""

    item: Item
    score: float
    citation: Citation
    tokens: int


class Recall(_Model):
    """A prompt-ready context under a token budget (see ``Memory.recall``).

    ``items`` are in context order (threads together, in conversation order);
    ``truncated`` is true when a hit ranked above the last one included did not fit.
    """

    context: str
    items: list[RecallItem]
    tokens: int
    truncated: bool


class Compare(_Request):
    """A txn precondition on one item.

    ``target``: ``version`` (0 when absent), ``value``, or ``exists`` (a bool).
    """

    namespace: str
    key: str
    target: Literal["version", "value", "exists"] = "version"
    op: Literal["==", "!=", "<", "<=", ">", ">="] = "=="
    value: Any = None


class PutOp(_Request):
    """Write one item (the same options as ``Memory.put``)."""

    op: Literal["put"] = "put"
    namespace: str
    key: str
    value: Any = None
    text: str | None = None
    metadata: dict[str, MetadataValue] | None = None
    if_version: int | None = None
    merge: str = "replace"
    base_version: int | None = None
    on_conflict: str | None = None
    ttl: float | None = None
    vector: list[float] | None = None
    lease: str | None = None
    fence: str | None = None
    thread: str | None = None


class UpdateOp(_Request):
    """Apply JSON Patch operations (and increment, append, add_to_set, remove_from_set) to
    the current value inside the transaction (the same options as ``Memory.update``)."""

    op: Literal["update"] = "update"
    namespace: str
    key: str
    ops: list[dict[str, Any]]
    if_version: int | None = None
    create: bool = True
    text: str | None = None
    metadata: dict[str, MetadataValue] | None = None
    vector: list[float] | None = None
    fence: str | None = None
    ttl: float | None = None
    metadata_ops: list[dict[str, Any]] | None = None


class DeleteOp(_Request):
    """Delete one item, leaving a tombstone."""

    op: Literal["delete"] = "delete"
    namespace: str
    key: str
    if_version: int | None = None
    fence: str | None = None


class GetOp(_Request):
    """Read one item inside the transaction's snapshot."""

    op: Literal["get"] = "get"
    namespace: str
    key: str


def _op_kind(value: Any) -> str:
    """The op of a txn operation; a missing ``op`` means a put, as in the engine."""
    if isinstance(value, dict):
        return str(value.get("op", "put"))
    return str(getattr(value, "op", "put"))


TxnOp = Annotated[
    Annotated[PutOp, Tag("put")]
    | Annotated[UpdateOp, Tag("update")]
    | Annotated[DeleteOp, Tag("delete")]
    | Annotated[GetOp, Tag("get")],
    Discriminator(_op_kind),
]
WriteOp = Annotated[
    Annotated[PutOp, Tag("put")]
    | Annotated[UpdateOp, Tag("update")]
    | Annotated[DeleteOp, Tag("delete")],
    Discriminator(_op_kind),
]


class TxnRequest(_Request):
    """etcd-style transaction: if every compare holds run ``success``, else ``failure``."""

    compare: list[Compare] = Field(default_factory=list)
    success: list[TxnOp] = Field(default_factory=list)
    failure: list[TxnOp] = Field(default_factory=list)


class OpResult(_Model):
    """What one txn op did: the item written or read (None for a missing get)."""

    op: Literal["put", "update", "delete", "get"]
    namespace: str
    key: str
    item: Item | None = None
    version: int | None = None


class TxnResult(_Model):
    """Outcome of a transaction; ``revision`` is the one it committed (or read at)."""

    succeeded: bool
    revision: int
    results: list[OpResult] = Field(default_factory=list)


class ListPage(_Model):
    """A page of items; pass ``cursor`` back to get the next page (None at the end)."""

    items: list[Item]
    cursor: str | None = None


class NamespaceInfo(_Model):
    """A namespace and how many live items the caller may read in it (and below it,
    when ``namespaces`` was cut at a ``depth``)."""

    namespace: str
    items: int


class NamespacePage(_Model):
    """A page of namespaces in byte order; pass ``cursor`` back for the next (None at the end)."""

    namespaces: list[NamespaceInfo]
    cursor: str | None = None


class ActivitySeries(_Model):
    """One namespace's or one author's activity: a count per bucket of each metric.

    ``writes``: puts and deletes committed; ``conflicts``: writes refused as stale (409);
    ``expiries``: items whose TTL ran out (counted for the author of the version that
    expired); ``lagged``: watchers cut off for falling behind (counted on the prefixes
    they watched, for the principal watching).
    """

    name: str
    writes: list[int]
    conflicts: list[int]
    expiries: list[int]
    lagged: list[int]


class Activity(_Model):
    """Coordination activity over a time window, per namespace and per author.

    Bucket ``i`` of every series covers ``[start + i * bucket, start + (i + 1) * bucket)``
    seconds; the last one ends after ``end`` (now). ``total`` sums everything in scope;
    the other series are ordered by their total, largest first, and
    ``more_namespaces`` / ``more_authors`` count those left out by ``limit``.
    Conflicts and lagged watchers are known only from ``recorded_since`` on (this
    process's start); ``dropped`` counts events not recorded because the recorder was
    full (reported to readers of the whole store only).
    """

    start: datetime
    end: datetime
    bucket: int
    total: ActivitySeries
    namespaces: list[ActivitySeries]
    authors: list[ActivitySeries]
    more_namespaces: int = 0
    more_authors: int = 0
    recorded_since: datetime
    dropped: int = 0


class Grant(_Model):
    """``principal`` holds ``permission`` on every namespace under ``prefix``."""

    principal: str
    prefix: str
    permission: Permission


class ApiKeyInfo(_Model):
    """An API key as listed: never the secret."""

    id: str
    principal: str
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(_Model):
    """A new API key; ``secret`` is shown this once and stored only as a hash."""

    id: str
    principal: str
    secret: str
    created_at: datetime
