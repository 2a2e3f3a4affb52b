"""Coordination: proposals (reviewed writes), leases, and fenced task claims."""

from __future__ import annotations

import builtins
import contextlib
import time
from typing import TYPE_CHECKING, Any

from hivemem.memory.acl import LEVELS
from hivemem.memory.claims import (
    DEFAULT_CLAIM_TTL,
    ClaimPlan,
    CompletePlan,
    ReleasePlan,
    make_token,
    parse_token,
)
from hivemem.memory.errors import InvalidInput, NotFound, PermissionDenied
from hivemem.memory.leases import EndPlan, GrantPlan, check_lease_id, check_lease_ttl, lease_model
from hivemem.memory.log.base import LeaseRecord, Row
from hivemem.memory.models import (
    Claim,
    Item,
    Lease,
    Proposal,
)
from hivemem.memory.ops import (
    PreparedDelete,
    PreparedPut,
    PreparedUpdate,
    prepare_ops,
)
from hivemem.memory.proposals import (
    PROPOSAL_OPS,
    ProposePlan,
    ReviewPlan,
    proposal_of,
)
from hivemem.memory.rows import row_to_item
from hivemem.memory.search import parse_filter
from hivemem.memory.validation import (
    check_key,
    check_namespace,
    check_prefix,
    dump_value,
    in_scope,
)
from hivemem.memory.views import SYSTEM_PRINCIPAL, Core


class CoordinationMixin:
    """The ``Memory`` methods that coordinate agents: proposals, leases, task claims."""

    if TYPE_CHECKING:
        _core: Core
        principal: str
        _superuser: bool

        def _require(self, namespace: str, permission: str) -> None: ...
        def _own_lease(self, lease_id: str) -> LeaseRecord: ...
        def _embed_missing(self, puts: list[PreparedPut | PreparedUpdate]) -> None: ...

    # -- proposals -------------------------------------------------------------------
    def _proposes(self, namespace: Any) -> bool:
        """True if the caller may propose but not write in ``namespace``."""
        if self._superuser or not isinstance(namespace, str):
            return False
        return self._core.acl.level(self.principal, namespace) == LEVELS["propose"]

    def _propose(self, op: dict[str, Any]) -> Proposal:
        for name in ("lease", "fence"):
            if op.get(name) is not None:
                raise InvalidInput(name, "a proposal cannot carry one")
        core = self._core

        def require(namespace: str, permission: str) -> None:
            self._require(namespace, "propose" if permission == "write" else permission)

        try:
            (prepared,) = prepare_ops(
                [op], "ops", max_value_bytes=core.max_value_bytes, dim=core.dim, require=require
            )
        except InvalidInput as exc:
            exc.field = exc.field.removeprefix("ops[0].")
            exc.detail = exc.detail.removeprefix("ops[0].")
            exc.args = (exc.detail,)
            raise
        if isinstance(prepared, PreparedPut):
            self._embed_missing([prepared])
        assert isinstance(prepared, PreparedPut | PreparedDelete)
        plan = ProposePlan(prepared, self.principal, self._core.proposal_ttl)
        _, _, proposal = self._core.commit(self.principal, plan)
        return proposal  # type: ignore[no-any-return]

    def _can_review(self, namespace: str) -> bool:
        return self._superuser or self._core.acl.level(self.principal, namespace) >= LEVELS["write"]

    def _sees(self, proposal: Proposal) -> bool:
        return proposal.author == self.principal or self._can_review(proposal.namespace)

    def proposals(
        self, prefix: str = "", status: str | None = "pending", limit: int = 100
    ) -> builtins.list[Proposal]:
        """Proposals under ``prefix`` the caller may see (a writer of their namespace,
        or their author), oldest first; ``status=None`` lists every status."""
        check_prefix(prefix)
        if status not in (None, "pending", "approved", "rejected", "expired"):
            raise InvalidInput("status", "must be pending, approved, rejected, expired or null")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit", "must be an integer from 1 to 1000")
        scope, now = check_prefix(prefix), time.time()
        out: builtins.list[Proposal] = []
        for row in self._core.log.proposal_rows():
            p = _current_status(proposal_of(row), now)
            if in_scope(p.namespace, scope) and (status is None or p.status == status):
                if self._sees(p):
                    out.append(p)
                    if len(out) == limit:
                        break
        return out

    def get_proposal(self, proposal_id: str) -> Proposal:
        """One proposal the caller may see (NotFound for everyone else)."""
        rows = self._core.log.history("", check_lease_id(proposal_id, "proposal_id"))
        rows = [r for r in rows if r.op in PROPOSAL_OPS]
        if not rows or not self._sees(proposal_of(rows[-1])):
            raise NotFound(f"no proposal {proposal_id!r}")
        return _current_status(proposal_of(rows[-1]), time.time())

    def approve(self, proposal_id: str, reason: str | None = None) -> Proposal:
        """Apply a pending proposal (a three-way merge against its base for objects, a
        compare-and-swap on its base version otherwise); conflicts raise as for writes."""
        return self._review(proposal_id, "approved", reason)

    def reject(self, proposal_id: str, reason: str | None = None) -> Proposal:
        """Reject a pending proposal, recording why."""
        return self._review(proposal_id, "rejected", reason)

    def _review(self, proposal_id: str, decision: str, reason: str | None) -> Proposal:
        proposal = self.get_proposal(proposal_id)
        if not self._can_review(proposal.namespace):
            raise PermissionDenied(f"{self.principal!r} may not review in {proposal.namespace!r}")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 4096):
            raise InvalidInput("reason", "must be a string of at most 4096 characters")
        plan = ReviewPlan(proposal_id, decision, self.principal, reason)
        _, _, reviewed = self._core.commit(self.principal, plan)
        return reviewed  # type: ignore[no-any-return]

    # -- leases --------------------------------------------------------------------
    def lease(self, ttl: float = 10) -> Lease:
        """Grant a lease of ``ttl`` seconds (a revision); renew it with ``keepalive``."""
        ttl = check_lease_ttl(ttl)
        _, _, rec = self._core.commit(self.principal, GrantPlan(ttl))
        rec.holder = self.principal
        return lease_model(rec, time.time())

    def keepalive(self, lease_id: str) -> Lease:
        """Renew a lease for its ``ttl`` from now (durable, no revision).

        A lease that has ended, or whose deadline has passed, is not revived: NotFound.
        """
        check_lease_id(lease_id, "lease_id")
        self._own_lease(lease_id)
        now = time.time()
        rec = self._core.log.keepalive(lease_id, now)
        if rec is None:
            with contextlib.suppress(NotFound):  # past its deadline: end it now
                self._core.commit(SYSTEM_PRINCIPAL, EndPlan(lease_id, "expired", True))
            raise NotFound(f"no lease {lease_id!r} (it has ended)")
        return lease_model(rec, now, self._core.log.lease_item_count(lease_id, now))

    def revoke_lease(self, lease_id: str) -> None:
        """End a lease now (a revision): every item attached to it expires in it."""
        check_lease_id(lease_id, "lease_id")
        self._own_lease(lease_id)
        self._core.commit(self.principal, EndPlan(lease_id, "revoked"))

    def get_lease(self, lease_id: str) -> Lease:
        """A lease: its ttl, deadline, time remaining and attached item count."""
        check_lease_id(lease_id, "lease_id")
        rec = self._own_lease(lease_id)
        now = time.time()
        if not rec.alive(now):
            raise NotFound(f"no lease {lease_id!r} (it has ended)")
        return lease_model(rec, now, self._core.log.lease_item_count(lease_id, now))

    # -- task claims ---------------------------------------------------------------
    def claim(
        self,
        namespace: str,
        key: str | None = None,
        *,
        lease: str | None = None,
        ttl: float | None = None,
        filter: dict[str, Any] | None = None,
        max_attempts: int | None = None,
    ) -> Claim | None:
        """Claim task ``key``, or the oldest open task of ``namespace`` matching ``filter``.

        Returns the ``Claim`` (the item and its fencing token), or None when no task is
        open. The claim lives under ``lease`` (yours), or under a lease of ``ttl`` seconds
        (default 30) granted for it; renew with ``keepalive(claim.lease)``. Once a task
        has been claimed ``max_attempts`` times without completing, it goes ``dead``.
        """
        ns = check_namespace(namespace)
        if key is not None:
            check_key(key)
        self._require(ns, "write")
        if lease is not None:
            check_lease_id(lease)
            if ttl is not None:
                raise InvalidInput("lease", "a claim has a lease or a ttl, not both")
            self._own_lease(lease)
        seconds = check_lease_ttl(ttl) if ttl is not None else DEFAULT_CLAIM_TTL
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise InvalidInput("max_attempts", "must be a positive integer")
        plan = ClaimPlan(
            self.principal, ns, key, lease, seconds, parse_filter(filter), max_attempts
        )
        revision, rows, payload = self._core.commit(self.principal, plan)
        if payload is None:
            return None
        k, version, lease_id = payload
        item = self._written(rows, k, version)
        return Claim(token=make_token(k[0], k[1], revision), item=item, lease=lease_id)

    def complete(self, token: str, value: Any = None) -> Item:
        """Mark the claimed task done (with ``value`` as its new value, if given).

        Refused with ``Conflict`` unless the token's claim is still current.
        """
        fence = self._fenced(token)
        value_json = None
        if value is not None:
            value_json = dump_value(value, self._core.max_value_bytes)
        _, rows, (k, version) = self._core.commit(self.principal, CompletePlan(fence, value_json))
        return self._written(rows, k, version)

    def release(self, token: str) -> Item:
        """Give the claimed task back: open again (or dead once out of attempts)."""
        fence = self._fenced(token)
        _, rows, (k, version) = self._core.commit(self.principal, ReleasePlan(fence))
        return self._written(rows, k, version)

    def _fenced(self, token: str) -> tuple[str, str, int]:
        fence = parse_token(token)
        self._require(fence[0], "write")
        return fence

    @staticmethod
    def _written(rows: builtins.list[Row], k: tuple[str, str], version: int) -> Item:
        for row in rows:
            if (row.namespace, row.key, row.version) == (*k, version):
                return row_to_item(row)
        raise AssertionError("the plan wrote no such version")  # pragma: no cover


def _current_status(proposal: Proposal, now: float) -> Proposal:
    """A pending proposal past its expiry reads as expired before the reaper logs it."""
    if proposal.status == "pending" and proposal.expires_at.timestamp() <= now:
        return proposal.model_copy(update={"status": "expired"})
    return proposal
