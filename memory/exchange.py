"""Export and import of coordination state: leases, claims and proposals.

An export is JSON Lines of item records (with their ``lease`` and ``claim`` fields);
before the first item attached to or claimed under a living lease comes that lease
(``"kind": "lease"``, with its ``expires_at``), and after the items the pending
proposals (``"kind": "proposal"``). ``Importer`` turns them back into a store's state:
a lease is granted for what was left of it (the same id when it is free in the target,
held by the importer), items are attached to it again and keep their claim state, and
proposals are proposed again in their author's name, with their base version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hivemem.memory.errors import InvalidInput
from hivemem.memory.leases import GrantPlan, check_lease_id
from hivemem.memory.log.base import StateLog
from hivemem.memory.models import Proposal, TaskClaim
from hivemem.memory.ops import PreparedDelete, prepare_put, validate_model
from hivemem.memory.proposals import ProposePlan
from hivemem.memory.validation import check_int

if TYPE_CHECKING:
    from hivemem.memory.engine import Memory

__all__ = ["lease_records", "Importer"]

_ITEM_FIELDS = ("namespace", "key", "value", "text", "metadata", "vector", "thread")


def lease_records(log: StateLog, item: dict[str, Any], done: set[str]) -> Iterator[dict[str, Any]]:
    """The lease records an exported item needs before it (each one once)."""
    claim = item.get("claim") or {}
    for lease_id in (
        item.get("lease"),
        claim.get("lease") if claim.get("state") == "claimed" else None,
    ):
        if lease_id is None or lease_id in done:
            continue
        done.add(lease_id)
        rec = log.lease(lease_id)
        if rec is not None and rec.alive(time.time()):
            yield {
                "kind": "lease",
                "id": rec.id,
                "ttl": rec.ttl,
                "expires_at": datetime.fromtimestamp(rec.deadline).astimezone().isoformat(),
            }


class Importer:
    """Replays coordination records into ``mem``; items go through its batches."""

    def __init__(self, mem: Memory) -> None:
        self.mem = mem
        self.leases: dict[str, str | None] = {}  # exported id -> id here (None: ran out)
        self.claims: dict[tuple[str, str], str] = {}

    def entry(self, rec: dict[str, Any], where: str) -> int:
        """Import a lease or proposal record; returns how many were written (0 or 1)."""
        kind = rec.get("kind")
        if kind == "lease":
            return self._lease(rec, where)
        if kind == "proposal":
            return self._proposal(rec, where)
        raise InvalidInput(f"{where}.kind", "must be 'item', 'lease' or 'proposal'")

    def item(self, rec: dict[str, Any], where: str = "record") -> dict[str, Any] | None:
        """The put of an item record, or None if its lease has run out meanwhile.

        A threaded record keeps its exported place (``_place``, taken off by the
        engine): a thread's conversation order survives the copy.
        """
        op = {f: rec[f] for f in _ITEM_FIELDS if f in rec}
        if rec.get("thread_pos") is not None:
            op["_place"] = check_int(rec["thread_pos"], f"{where}.thread_pos")
        if rec.get("lease") is not None:
            lease = self.leases.get(rec["lease"])
            if lease is None:
                return None  # it would be expired already
            op["lease"] = lease
        claim = rec.get("claim")
        if claim is not None:
            state = validate_model(TaskClaim, claim, "claim.")
            stored = state.model_dump()
            if state.state == "claimed":
                stored["lease"] = self.leases.get(state.lease or "")
                if stored["lease"] is None:  # its claim ran out: the task is open again
                    stored.update(state="open", holder=None)
            key = (str(op.get("namespace")), str(op.get("key")))
            self.claims[key] = json.dumps(stored, separators=(",", ":"))
        return op

    def _lease(self, rec: dict[str, Any], where: str) -> int:
        lease_id = check_lease_id(rec.get("id"), f"{where}.id")
        try:
            deadline = datetime.fromisoformat(str(rec.get("expires_at"))).timestamp()
        except ValueError:
            raise InvalidInput(f"{where}.expires_at", "must be an ISO 8601 time") from None
        left = deadline - time.time()
        if left <= 0:
            self.leases[lease_id] = None
            return 0
        plan = GrantPlan(left)
        if self.mem._core.log.lease(lease_id) is None:
            plan.lease_id = lease_id
        self.mem._core.commit(self.mem.principal, plan)
        self.leases[lease_id] = plan.lease_id
        return 1

    def _proposal(self, rec: dict[str, Any], where: str) -> int:
        body = {k: v for k, v in rec.items() if k != "kind"}
        proposal: Proposal = validate_model(Proposal, body, f"{where}.")
        left = proposal.expires_at.timestamp() - time.time()
        if proposal.status != "pending" or left <= 0:
            return 0
        self.mem._require(proposal.namespace, "write")  # importing reviews needs write
        core = self.mem._core
        if proposal.op == "delete":
            op: Any = PreparedDelete(proposal.namespace, proposal.key, None)
        else:
            raw = {
                "namespace": proposal.namespace,
                "key": proposal.key,
                "value": proposal.value,
                "text": proposal.text,
                "metadata": proposal.metadata,
                "thread": proposal.thread,
            }
            op = prepare_put(raw, f"{where}.", max_value_bytes=core.max_value_bytes, dim=core.dim)
            op.base_version = proposal.base_version
            self.mem._embed_missing([op])
        plan = ProposePlan(op, proposal.author, left)
        if not core.log.history("", proposal.id):
            plan.proposal_id = proposal.id
        core.commit(self.mem.principal, plan)
        return 1
