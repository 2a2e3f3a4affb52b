"""Leases (etcd's model), as plans for the one commit path.

A lease is granted with a time to live and lives until it is revoked or its deadline
passes without a keepalive. Granting and ending are entries of the log (op ``lease``,
namespace ``""``, key the lease id), so each takes a revision; a keepalive only moves
the deadline in the derived ``leases`` table, durably and without a revision. Items
written with ``lease=id`` live only while it lives: when it ends, every item attached
to it gets an ``expire`` change (``reason: lease``) in the revision that ends it.

The deadline is wall-clock time stored in the database, so a restart honours what was
left of it; a lease whose deadline passed while nobody was running is expired by the
first reaper pass (or by the first write that touches one of its items), never revived.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import TYPE_CHECKING, Any

from hivemem.memory.errors import InvalidInput, NotFound
from hivemem.memory.log.base import LeaseRecord, PendingChange, Row, WriteView
from hivemem.memory.models import Lease
from hivemem.memory.rows import build_model, dt
from hivemem.memory.validation import check_ttl

if TYPE_CHECKING:
    from hivemem.memory.plan import TxnPlan

__all__ = [
    "GrantPlan",
    "EndPlan",
    "end_lease",
    "check_lease_id",
    "check_lease_ttl",
    "lease_model",
    "MAX_LEASE_TTL",
    "LEASE_REASON",
]

#: The longest lease (etcd's limit too: about 285 years).
MAX_LEASE_TTL = 9e9
LEASE_REASON = json.dumps({"reason": "lease"})
_LEASE_ID = re.compile(r"[0-9a-f]{16}")


def check_lease_id(value: Any, field: str = "lease") -> str:
    """A lease id as ``lease()`` returns them: 16 lowercase hex digits."""
    if not isinstance(value, str) or not _LEASE_ID.fullmatch(value):
        raise InvalidInput(field, "must be a lease id (16 hex digits)")
    return value


def check_lease_ttl(ttl: Any, field: str = "ttl") -> float:
    """Seconds a lease lives without a keepalive: positive, at most ``MAX_LEASE_TTL``."""
    value = check_ttl(ttl, field)
    if value is None:
        raise InvalidInput(field, "is required")
    if value > MAX_LEASE_TTL:
        raise InvalidInput(field, f"must be at most {MAX_LEASE_TTL:.0f} seconds")
    return value


def grant_change(lease_id: str, ttl: float, now: float) -> PendingChange:
    """The log entry granting a lease."""
    info = {"event": "grant", "ttl": ttl, "deadline": now + ttl}
    return PendingChange("lease", "", lease_id, 1, None, info=json.dumps(info))


def lease_model(rec: LeaseRecord, now: float, items: int = 0) -> Lease:
    """The public view of a lease record."""
    alive = rec.alive(now)
    return build_model(
        Lease,
        id=rec.id,
        ttl=rec.ttl,
        holder=rec.holder,
        revision=rec.revision,
        expires_at=dt(rec.deadline),
        remaining=max(0.0, rec.deadline - now) if alive else 0.0,
        alive=alive,
        items=items if alive else 0,
    )


class GrantPlan:
    """Grant a new lease of ``ttl`` seconds (one revision)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.lease_id = secrets.token_hex(8)

    def __call__(self, view: WriteView) -> tuple[list[PendingChange], Any]:
        change = grant_change(self.lease_id, self.ttl, view.now)
        record = LeaseRecord(self.lease_id, "", self.ttl, view.now + self.ttl, view.revision, None)
        return [change], ([], record)


class EndPlan:
    """End a lease (revoked, or expired by the reaper): its items expire in this revision.

    ``expired_only`` ends it only if its deadline has passed (the reaper's check, made
    again inside the transaction, since a keepalive may have landed in between).
    """

    def __init__(self, lease_id: str, reason: str, expired_only: bool = False) -> None:
        self.lease_id = lease_id
        self.reason = reason
        self.expired_only = expired_only

    def __call__(self, view: WriteView) -> tuple[list[PendingChange], Any]:
        from hivemem.memory.plan import TxnPlan

        plan = TxnPlan([], [], [])
        plan.begin(view)
        rec = plan.lease_record(self.lease_id)
        if rec is None or rec.ended_revision is not None:
            raise NotFound(f"no lease {self.lease_id!r} (it may have ended)")
        if self.expired_only and rec.deadline > view.now:
            return [], ([], None)
        end_lease(plan, self.lease_id, self.reason)
        return plan.pending, (plan.replaced(), None)


def end_lease(plan: TxnPlan, lease_id: str, reason: str) -> None:
    """Stage, in ``plan``'s transaction, the end of a lease and the expiry of its items."""
    if lease_id in plan.ended_leases:
        return
    plan.ended_leases.add(lease_id)
    info = json.dumps({"event": "end", "reason": reason})
    plan.stage(("", lease_id), PendingChange("lease", "", lease_id, 2, 1, info=info))
    for row in plan.view.lease_items(lease_id):
        _release(plan, row, lease_id)
    for k, staged in list(plan.staged.items()):  # attached earlier in this transaction
        if staged.op == "put" and staged.lease == lease_id:
            plan.stage(k, _expire(k, staged))


def _release(plan: TxnPlan, row: Row, lease_id: str) -> None:
    k = (row.namespace, row.key)
    if k in plan.staged:
        return  # this transaction already wrote a newer version; the loop above sees it
    plan.latest.setdefault(k, row)
    if row.lease == lease_id:
        plan.stage(k, _expire(k, row))
    elif row.claim is not None:  # a task claimed under the lease: back to open (or dead)
        from hivemem.memory.claims import released_claim

        plan.stage(k, released_claim(row))


def _expire(k: tuple[str, str], cur: Row | PendingChange) -> PendingChange:
    # the tombstone names the thread it leaves, so thread watchers hear of it
    return PendingChange(
        "expire",
        k[0],
        k[1],
        cur.version + 1,
        cur.version,
        info=LEASE_REASON,
        thread=cur.thread,
        thread_pos=cur.thread_pos,
    )
