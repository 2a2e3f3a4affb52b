"""The StateLog protocol: append a transaction, read at a revision, history, changes since.

Backends store rows and answer queries; versioning, permissions, merging and
validation live in the engine, which hands the backend a *plan*: a function run inside
the backend's write transaction that reads current rows and returns the changes to
append. The backend assigns the next gap-free revision and keeps its derived tables
(current state, keyword index) in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Row",
    "PendingChange",
    "WriteView",
    "StateLog",
    "Plan",
    "LeaseRecord",
    "ChangeCount",
    "scope_sql",
    "first_revision_at",
    "item_columns",
    "ITEM_OPS",
]

#: Ops of rows that are versions of items. Other rows are coordination entries of the
#: log (``lease``: a lease granted or ended), kept in the same table so they take
#: revisions like every other change; their namespace is ``""``, which no item has.
ITEM_OPS = frozenset({"put", "delete", "expire"})


def scope_sql(
    scopes: Sequence[str], column: str = "i.namespace", mark: str = "?"
) -> tuple[str, list[Any]]:
    """SQL matching namespaces equal to or below any scope (``""`` = everything).

    ``mark`` is the driver's placeholder. ``0`` follows ``/`` in byte order, so the
    strings that start with ``s/`` are exactly those in ``[s + '/', s + '0')``: an
    index range, not a LIKE (``_`` is a LIKE wildcard and a namespace character).
    PostgreSQL columns use ``COLLATE "C"`` to compare bytewise.
    """
    if any(s == "" for s in scopes):
        return "1 = 1", []
    parts, params = [], []
    for s in scopes:
        parts.append(f"({column} = {mark} OR ({column} > {mark} AND {column} < {mark}))")
        params += [s, s + "/", s + "0"]
    return "(" + " OR ".join(parts) + ")", params


def first_revision_at(since: float, head: int, time_from: Callable[[int], float | None]) -> int:
    """The first revision committed at or after ``since`` (``head + 1`` if none).

    ``time_from(r)`` is the commit time of the first stored revision ``>= r`` (None past
    the end). Revisions are assigned in commit order under the write lock, so their
    times rise with them (up to clock skew between replicas): a binary search of a few
    indexed reads finds the start of a time window, with no index on time.
    """
    lo, hi = 1, head + 1
    while lo < hi:
        mid = (lo + hi) // 2
        t = time_from(mid)
        if t is None or t >= since:
            hi = mid
        else:
            lo = mid + 1
    return lo


#: ``(bucket, namespace, author, op, count)``: changes of one op in one namespace by
#: one author whose commit time falls in ``[bucket * width, (bucket + 1) * width)``.
#: For an ``expire`` the author is the writer of the version that expired.
ChangeCount = tuple[int, str, str, str, int]


@dataclass(slots=True)
class Row:
    """One stored change: a version of an item (or its tombstone)."""

    id: int
    revision: int
    op: str  # put | delete | expire
    namespace: str
    key: str
    version: int
    prev_version: int | None
    value: str | None  # JSON text
    text: str | None
    metadata: str | None  # JSON text
    vector: bytes | None
    author: str
    created_at: float
    updated_at: float
    expires_at: float | None
    lease: str | None = None  # the lease this version is attached to (or, op lease: its id)
    claim: str | None = None  # JSON: the task's claim state, carried from version to version
    info: str | None = None  # JSON: why the system wrote it, or a coordination entry's data
    ops: str | None = None  # JSON text: the operations of the update that wrote it
    thread: str | None = None
    thread_pos: int | None = None  # place in the thread; None: the change's own id

    @property
    def live(self) -> bool:
        return self.op == "put"


@dataclass(slots=True)
class PendingChange:
    """A change the engine wants appended; the backend fills in id and revision."""

    op: str
    namespace: str
    key: str
    version: int
    prev_version: int | None
    value: str | None = None
    text: str | None = None
    metadata: str | None = None
    vector: bytes | None = None
    created_at: float = 0.0
    expires_at: float | None = None
    lease: str | None = None
    claim: str | None = None
    info: str | None = None
    ops: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    thread: str | None = None
    thread_pos: int | None = None  # None with a thread: the change's own id (a new place)


@dataclass(slots=True)
class LeaseRecord:
    """A lease as the derived ``leases`` table holds it."""

    id: str
    holder: str
    ttl: float
    deadline: float  # epoch seconds; keepalives move it without a revision
    revision: int  # the revision that granted it
    ended_revision: int | None  # the revision that ended it (None while it lives)

    def alive(self, now: float) -> bool:
        return self.ended_revision is None and self.deadline > now


def item_columns(row: Row) -> tuple[str | None, str | None, float | None]:
    """The derived ``items`` columns of an item row: ``(lease, claim_lease, queue_at)``.

    ``claim_lease`` is the lease a claimed task is held under; ``queue_at`` orders open
    tasks (their creation time) and is NULL for any task not open. Both backends fill
    their ``items`` table from this one function.
    """
    if not row.live:
        return None, None, None
    if row.claim is None:
        return row.lease, None, row.created_at
    state = json.loads(row.claim)
    if state.get("state") == "claimed":
        return row.lease, state.get("lease"), None
    return row.lease, None, row.created_at if state.get("state") == "open" else None


class WriteView(Protocol):
    """What a plan may read inside the write transaction."""

    revision: int  # the revision being committed
    now: float

    def latest(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        """The newest row (live or tombstone) of each key that has one."""
        ...

    def version_row(self, namespace: str, key: str, version: int) -> Row | None:
        """A specific version of an item, if still in history."""
        ...

    def leases(self, ids: Sequence[str]) -> dict[str, LeaseRecord]:
        """The leases among ``ids`` that were ever granted (ended ones included)."""
        ...

    def lease_items(self, lease_id: str) -> list[Row]:
        """Current live rows of the items attached to the lease or claimed under it."""
        ...

    def claimable(self, namespace: str, flt: Any, limit: int) -> list[Row]:
        """Open, unexpired tasks of ``namespace`` matching ``flt``, oldest first."""
        ...

    def stale_claims(self, namespace: str, limit: int) -> list[str]:
        """Leases, not yet ended but past their deadline, holding claims in ``namespace``."""
        ...


Plan = Callable[[WriteView], tuple[list[PendingChange], Any]]


class StateLog(Protocol):
    """A transactional, revisioned log of item changes with derived current state."""

    def commit(self, author: str, plan: Plan) -> tuple[int, list[Row], Any]:
        """Run ``plan`` in one write transaction; append its changes as one revision.

        Returns ``(revision, rows, plan_result)``. No revision is consumed when the plan
        returns no changes; an exception from the plan rolls everything back.
        """
        ...

    def commit_group(
        self, batch: Sequence[tuple[str, Plan]]
    ) -> list[tuple[int, list[Row], Any] | BaseException]:
        """Run several plans in one write transaction, each as a revision of its own.

        Plans run in order, each in a savepoint: one that raises is rolled back alone
        (its exception is its outcome) and consumes no revision. One durable commit at
        the end; if that fails, the call raises and nothing is committed.
        """
        ...

    def head(self) -> int:
        """The latest committed revision."""
        ...

    def compacted_revision(self) -> int:
        """History below this revision is gone (0 if never compacted)."""
        ...

    def get(self, namespace: str, key: str, at_revision: int | None, now: float) -> Row | None:
        """The live version now (or the newest version at or below ``at_revision``)."""
        ...

    def history(self, namespace: str, key: str) -> list[Row]:
        """Every stored version of an item, oldest first, tombstones included."""
        ...

    def list_items(
        self,
        scopes: Sequence[str],
        flt: Any,
        limit: int,
        after: tuple[str, str] | None,
        now: float,
    ) -> list[Row]:
        """Live items in the scopes, ordered by (namespace, key), after ``after``."""
        ...

    def namespace_counts(self, scopes: Sequence[str], now: float) -> list[tuple[str, int]]:
        """``(namespace, live item count)`` of every namespace in the scopes with a live item."""
        ...

    def change_counts(self, scopes: Sequence[str], since: float, width: float) -> list[ChangeCount]:
        """Changes in the scopes committed at or after ``since``, counted per bucket of
        ``width`` seconds, namespace, author and op (see ``ChangeCount``)."""
        ...

    def rows_by_id(self, ids: Iterable[int]) -> dict[int, Row]:
        """Rows by change id (any version)."""
        ...

    def current_rows(self, ids: Iterable[int], now: float) -> dict[int, Row]:
        """Rows of the ``ids`` that are the live, unexpired version of their item.

        Their ``vector`` is left out (None): hits are hydrated from these.
        """
        ...

    def filtered_ids(
        self, scopes: Sequence[str], flt: Any, now: float, thread: str | None = None
    ) -> list[int]:
        """Change ids of the live items in scope that match ``flt`` (and are in ``thread``)."""
        ...

    def state_at(
        self,
        revision: int,
        scopes: Sequence[str],
        flt: Any,
        thread: str | None = None,
        vectors: bool = False,
    ) -> list[Row]:
        """The versions visible at ``revision`` in scope: live then, and not expired at
        that revision's commit time, matching ``flt`` (and in ``thread``). The vector is
        read only with ``vectors``."""
        ...

    def changes_since(self, revision: int, limit: int) -> list[Row]:
        """Rows with revision > ``revision``, in log order, whole revisions only."""
        ...

    def live_vectors(self) -> Iterator[tuple[int, str, bytes]]:
        """``(change id, namespace, vector)`` for every live item that has a vector."""
        ...

    def live_metadata(self) -> Iterator[tuple[int, str | None]]:
        """``(change id, metadata JSON)`` of every live item."""
        ...

    def expired(self, now: float, limit: int) -> list[tuple[str, str]]:
        """Keys of live items whose TTL has passed."""
        ...

    def proposal_rows(self) -> list[Row]:
        """The newest entry (``propose`` or ``review``) of every proposal, oldest first."""
        ...

    def due_leases(self, now: float, limit: int) -> list[str]:
        """Ids of leases not ended whose deadline has passed."""
        ...

    def lease(self, lease_id: str) -> LeaseRecord | None:
        """One lease (ended ones included), or None if it was never granted."""
        ...

    def lease_item_count(self, lease_id: str, now: float) -> int:
        """How many live items are attached to the lease."""
        ...

    def keepalive(self, lease_id: str, now: float) -> LeaseRecord | None:
        """Move a living lease's deadline to ``now + ttl``, durably and without a revision.

        Returns the renewed lease, or None if it has ended or its deadline has passed:
        a lease past its deadline is never revived.
        """
        ...

    def compact(self, revision: int) -> int:
        """Drop history below ``revision``; keep what reads at >= ``revision`` need."""
        ...

    def meta(self, name: str) -> str | None:
        """A stored setting (e.g. the vector dimension)."""
        ...

    def set_meta(self, name: str, value: str) -> None:
        """Store a setting."""
        ...

    def external_change(self) -> bool:
        """True if anything may have been committed since this thread last asked
        (cheap, lock-free; the engine then compares revisions)."""
        ...

    def listen(self, wake: Callable[[int | None], None]) -> bool:
        """Call ``wake(revision or None)`` from a background thread whenever another
        process may have committed (and after every reconnect of the listener), if the
        backend can; returns False if it cannot (the engine then polls)."""
        ...

    def acl(self) -> Any:
        """The store of principals, grants and API keys (see memory.acl)."""
        ...

    def close(self) -> None:
        """Close connections."""
        ...
