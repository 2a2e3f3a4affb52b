"""Propose and review, as plans for the one commit path.

A principal with ``propose`` on a namespace may read it, and its puts and deletes there
become proposals instead of writes: an entry of the log (op ``propose``, namespace
``""``, key the proposal id) holding the proposed content, its author and the item's
live version it was based on, which changes nothing else. A writer of the namespace
approves it (the write is applied in the same revision as the ``review`` entry that
records who approved it, when and why: a three-way merge against the base for object
values, a compare-and-swap against the base version otherwise, conflicts raised as for
any write and the proposal left pending) or rejects it. Pending proposals expire after
the store's ``proposal_ttl``.

Both entries carry the whole proposal as JSON, so each renders on its own in a watch.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from hivemem.memory.errors import Conflict, NotFound
from hivemem.memory.log.base import PendingChange, Row, WriteView
from hivemem.memory.models import Proposal
from hivemem.memory.ops import Prepared, PreparedDelete, PreparedPut
from hivemem.memory.plan import TxnPlan
from hivemem.memory.rows import dt

__all__ = [
    "ProposePlan",
    "ReviewPlan",
    "proposal_of",
    "DEFAULT_PROPOSAL_TTL",
    "PROPOSAL_OPS",
]

#: Seconds a proposal waits for review before it expires (7 days).
DEFAULT_PROPOSAL_TTL = 7 * 86400.0
PROPOSAL_OPS = frozenset({"propose", "review"})


def proposal_of(row: Row) -> Proposal:
    """The proposal a ``propose`` or ``review`` entry records."""
    return Proposal.model_validate_json(row.info or "{}")


class ProposePlan:
    """Record a proposed put or delete, based on the item's live version now."""

    def __init__(self, op: PreparedPut | PreparedDelete, author: str, ttl: float) -> None:
        self.op = op
        self.author = author
        self.ttl = ttl
        self.proposal_id = secrets.token_hex(8)

    def __call__(self, view: WriteView) -> tuple[list[PendingChange], Any]:
        op = self.op
        k = (op.namespace, op.key)
        plan = TxnPlan([], [], [])
        plan.begin(view, [k])
        version, cur = plan._current(k)
        base = version if cur is not None else 0
        if op.if_version is not None and op.if_version != base:
            raise Conflict(
                f"expected version {op.if_version}, found {base}", current=plan._item(k, cur)
            )
        if isinstance(op, PreparedDelete) and cur is None:
            raise NotFound("no such item")
        put = op if isinstance(op, PreparedPut) else None
        proposal = Proposal(
            id=self.proposal_id,
            namespace=op.namespace,
            key=op.key,
            op="put" if put else "delete",
            value=put.value if put else None,
            text=put.text if put else None,
            metadata=json.loads(put.metadata or "{}") if put else {},
            thread=put.thread if put else None,
            base_version=put.base_version if put and put.base_version is not None else base,
            author=self.author,
            revision=view.revision,
            created_at=dt(view.now),
            expires_at=dt(view.now + self.ttl),
        )
        entry = PendingChange(
            "propose",
            "",
            self.proposal_id,
            1,
            None,
            put.value_json if put else None,
            put.text if put else None,
            put.metadata if put else None,
            put.vector if put else None,
            info=proposal.model_dump_json(),
        )
        plan.stage(("", self.proposal_id), entry)
        return plan.pending, (plan.replaced(), proposal)


class ReviewPlan:
    """Approve (apply the write), reject, or expire a pending proposal."""

    def __init__(
        self, proposal_id: str, decision: str, reviewer: str, reason: str | None = None
    ) -> None:
        self.proposal_id = proposal_id
        self.decision = decision  # approved | rejected | expired
        self.reviewer = reviewer
        self.reason = reason

    def __call__(self, view: WriteView) -> tuple[list[PendingChange], Any]:
        entry = view.version_row("", self.proposal_id, 1)
        if entry is None or entry.op != "propose":
            raise NotFound(f"no proposal {self.proposal_id!r}")
        proposal = proposal_of(entry)
        if view.version_row("", self.proposal_id, 2) is not None:
            raise Conflict(f"proposal {self.proposal_id!r} was already reviewed")
        if self.decision != "expired" and proposal.expires_at.timestamp() <= view.now:
            raise Conflict(f"proposal {self.proposal_id!r} has expired")
        if self.decision == "approved":
            plan = TxnPlan([], [self._write(entry, proposal)], [])
            _, (_, results, _) = plan(view)
            proposal.result_version = results[0].version
        else:
            plan = TxnPlan([], [], [])
            plan.begin(view)
        proposal.status = self.decision  # type: ignore[assignment]
        proposal.reviewed_by = self.reviewer
        proposal.reviewed_at = dt(view.now)
        proposal.reason = self.reason
        review = PendingChange(
            "review", "", self.proposal_id, 2, 1, info=proposal.model_dump_json()
        )
        plan.stage(("", self.proposal_id), review)
        return plan.pending, (plan.replaced(), proposal)

    @staticmethod
    def _write(entry: Row, proposal: Proposal) -> Prepared:
        """The write a proposal stands for, guarded by its base version."""
        base = proposal.base_version
        if proposal.op == "delete":
            return PreparedDelete(proposal.namespace, proposal.key, base)
        merge = isinstance(proposal.value, dict) and base > 0
        return PreparedPut(
            proposal.namespace,
            proposal.key,
            proposal.value,
            entry.value or "null",
            entry.text,
            entry.metadata,
            None if merge else base,
            "three_way" if merge else "replace",
            base if merge else None,
            None,
            None,
            entry.vector,
            thread=proposal.thread,
        )
