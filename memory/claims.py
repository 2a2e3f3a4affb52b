"""Task claims with fencing tokens, as plans for the one commit path.

A task is an item; putting one enqueues it. ``ClaimPlan`` takes a given task, or the
oldest open one of a namespace (matching a metadata filter), in one revision: the item
gets a new version whose ``claim`` field says ``claimed``, by whom, since which revision
and under which lease. Every claim lives under a lease: the caller's, or one granted for
the claim in the same revision (``ttl``), which ends with it. When the lease ends the
task goes back to ``open`` (or to ``dead`` once ``attempts`` reached ``max_attempts``) in
the revision that ends it.

The fencing token names the task and the claim's revision. A write carrying
``fence=token`` commits only if, inside its own transaction, that claim is still the
task's current one and its lease still lives; otherwise it is a ``Conflict``. So a worker
that stalled past its lease, whose task was claimed again, can never overwrite the newer
holder's result.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from hivemem.memory.errors import Conflict, InvalidInput, NotFound
from hivemem.memory.leases import end_lease, grant_change
from hivemem.memory.log.base import LeaseRecord, PendingChange, Row, WriteView
from hivemem.memory.plan import TxnPlan
from hivemem.memory.search import Cond, matches

__all__ = [
    "ClaimPlan",
    "CompletePlan",
    "ReleasePlan",
    "make_token",
    "parse_token",
    "check_fence",
    "released_claim",
    "DEFAULT_CLAIM_TTL",
]

#: Seconds a claim lives without a keepalive when neither ``lease`` nor ``ttl`` is given.
DEFAULT_CLAIM_TTL = 30.0
_PREFIX = "hmf1."
_LEASE_REASON = json.dumps({"reason": "lease"})

Key = tuple[str, str]


def make_token(namespace: str, key: str, revision: int) -> str:
    """The fencing token of the claim of ``(namespace, key)`` made at ``revision``."""
    raw = json.dumps([namespace, key, revision], separators=(",", ":")).encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_token(token: Any, field: str = "token") -> tuple[str, str, int]:
    """``(namespace, key, revision)`` of a fencing token; InvalidInput if it is not one."""
    if isinstance(token, str) and token.startswith(_PREFIX) and len(token) < 2048:
        body = token[len(_PREFIX) :]
        try:
            ns, key, revision = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, TypeError):
            pass
        else:
            if isinstance(ns, str) and isinstance(key, str) and type(revision) is int:
                return ns, key, revision
    raise InvalidInput(field, "is not a fencing token returned by claim")


def claim_of(cur: Any) -> dict[str, Any] | None:
    """The stored claim state of a row or staged change (None: never claimed)."""
    raw = getattr(cur, "claim", None)
    return json.loads(raw) if raw else None


def _copy(
    cur: Row | PendingChange,
    version: int,
    claim: dict[str, Any],
    info: str | None = None,
    value: str | None = None,
) -> PendingChange:
    """A new version of a task with the same content and a new claim state."""
    return PendingChange(
        "put",
        cur.namespace,
        cur.key,
        version + 1,
        version,
        value if value is not None else cur.value,
        cur.text,
        cur.metadata,
        cur.vector,
        cur.created_at,
        cur.expires_at,
        lease=cur.lease,
        claim=json.dumps(claim, separators=(",", ":")),
        info=info,
        thread=cur.thread,
        thread_pos=cur.thread_pos,
    )


def _after_loss(claim: dict[str, Any]) -> dict[str, Any]:
    """The state of a task whose claim ended without completion."""
    limit = claim.get("max_attempts")
    dead = limit is not None and claim.get("attempts", 0) >= limit
    return {
        "state": "dead" if dead else "open",
        "attempts": claim.get("attempts", 0),
        "holder": None,
        "revision": claim.get("revision"),
        "lease": None,
        "max_attempts": limit,
    }


def released_claim(row: Row) -> PendingChange:
    """The change that gives back the claim of ``row`` because its lease ended."""
    claim = claim_of(row) or {}
    return _copy(row, row.version, _after_loss(claim), info=_LEASE_REASON)


def check_fence(plan: TxnPlan, fence: tuple[str, str, int]) -> tuple[int, Any, dict[str, Any]]:
    """Inside ``plan``'s transaction: the task's (version, current, claim) if the fencing
    token's claim is still current and its lease lives; otherwise ``Conflict``."""
    k = (fence[0], fence[1])
    version, cur = plan._current(k)
    claim = claim_of(cur) if cur is not None else None
    if (
        cur is None
        or claim is None
        or claim.get("state") != "claimed"
        or claim.get("revision") != fence[2]
        or not plan.lease_alive(claim["lease"])
    ):
        raise Conflict(
            f"stale fencing token: the claim of {k[1]!r} made at revision {fence[2]} is "
            "no longer current",
            current=plan._item(k, cur),
            namespace=k[0],
            key=k[1],
        )
    return version, cur, claim


class ClaimPlan:
    """Claim a given task, or the oldest open one of a namespace matching ``conds``."""

    def __init__(
        self,
        author: str,
        namespace: str,
        key: str | None,
        lease: str | None,
        ttl: float,
        conds: list[Cond],
        max_attempts: int | None,
    ) -> None:
        self.author = author
        self.namespace = namespace
        self.key = key
        self.lease = lease
        self.ttl = ttl
        self.conds = conds
        self.max_attempts = max_attempts

    def __call__(self, view: WriteView) -> tuple[list[PendingChange], Any]:
        plan = TxnPlan([], [], [])
        plan.begin(view, [(self.namespace, self.key)] if self.key else [])
        lease_id, own = self._lease(plan)
        k = self._given(plan) if self.key is not None else self._oldest(plan)
        if k is None:
            return [], ([], None)  # nothing to claim: nothing written, not even the lease
        version, cur = plan._current(k)
        before = claim_of(cur) or {}
        claim = {
            "state": "claimed",
            "attempts": int(before.get("attempts", 0)) + 1,
            "holder": self.author,
            "revision": view.revision,
            "lease": lease_id,
            "max_attempts": self.max_attempts or before.get("max_attempts"),
            "own_lease": own,
        }
        plan.stage(k, _copy(cur, version, claim))
        return plan.pending, (plan.replaced(), (k, version + 1, lease_id))

    def _lease(self, plan: TxnPlan) -> tuple[str, bool]:
        view = plan.view
        if self.lease is not None:
            if not plan.lease_alive(self.lease):
                raise NotFound(f"no lease {self.lease!r} (it may have ended)")
            return self.lease, False
        lease_id = secrets.token_hex(8)
        plan.stage(("", lease_id), grant_change(lease_id, self.ttl, view.now))
        deadline = view.now + self.ttl
        plan._leases[lease_id] = LeaseRecord(lease_id, self.author, self.ttl, deadline, 0, None)
        return lease_id, True

    def _given(self, plan: TxnPlan) -> Key:
        assert self.key is not None
        k = (self.namespace, self.key)
        _, cur = plan._current(k)  # a claim whose lease died is given back first
        if cur is None:
            raise NotFound("no such item")
        claim = claim_of(cur)
        if claim is not None and claim.get("state") != "open":
            raise Conflict(
                f"task {self.key!r} is {claim['state']}",
                current=plan._item(k, cur),
                namespace=k[0],
                key=k[1],
            )
        return k

    def _oldest(self, plan: TxnPlan) -> Key | None:
        view = plan.view
        for lease_id in view.stale_claims(self.namespace, 50):
            end_lease(plan, lease_id, "expired")  # their tasks reopen in this revision
        best: tuple[float, str] | None = None
        for k, staged in plan.staged.items():
            claim = claim_of(staged)
            if (
                k[0] == self.namespace
                and staged.op == "put"
                and claim is not None
                and claim.get("state") == "open"
                and matches(self.conds, json.loads(staged.metadata or "{}"))
            ):
                best = min(best or (staged.created_at, k[1]), (staged.created_at, k[1]))
        for row in view.claimable(self.namespace, self.conds, 8):
            k = (row.namespace, row.key)
            if k in plan.staged:
                continue
            plan.latest.setdefault(k, row)
            best = min(best or (row.created_at, row.key), (row.created_at, row.key))
            break  # rows come oldest first
        return (self.namespace, best[1]) if best is not None else None


class CompletePlan:
    """Mark a claimed task done (optionally with a new value); its own lease ends."""

    def __init__(self, fence: tuple[str, str, int], value_json: str | None) -> None:
        self.fence = fence
        self.value_json = value_json

    def __call__(self, view: WriteView) -> tuple[list[PendingChange], Any]:
        plan = TxnPlan([], [], [])
        plan.begin(view, [self.fence[:2]])
        version, cur, claim = check_fence(plan, self.fence)
        done = {**claim, "state": "done", "own_lease": False}
        plan.stage(self.fence[:2], _copy(cur, version, done, value=self.value_json))
        if claim.get("own_lease"):
            end_lease(plan, claim["lease"], "released")
        return plan.pending, (plan.replaced(), (self.fence[:2], version + 1))


class ReleasePlan:
    """Give a claimed task back (open, or dead once out of attempts); its own lease ends."""

    def __init__(self, fence: tuple[str, str, int]) -> None:
        self.fence = fence

    def __call__(self, view: WriteView) -> tuple[list[PendingChange], Any]:
        plan = TxnPlan([], [], [])
        plan.begin(view, [self.fence[:2]])
        version, cur, claim = check_fence(plan, self.fence)
        plan.stage(self.fence[:2], _copy(cur, version, _after_loss(claim)))
        if claim.get("own_lease"):
            end_lease(plan, claim["lease"], "released")
        return plan.pending, (plan.replaced(), (self.fence[:2], version + 1))
