"""The TTL reaper: expire items past their TTL, end due leases, expire pending
proposals, and save the vector index now and then (a mixin of
``hivemem.memory.views.Core``, which starts ``_reap_loop`` on its thread)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from hivemem.memory.log.base import PendingChange, WriteView

if TYPE_CHECKING:
    from hivemem.memory.log.base import Plan, Row, StateLog

__all__ = ["Reaper", "SYSTEM_PRINCIPAL"]

SYSTEM_PRINCIPAL = "hivemem"  # author of expire changes
_TTL_REASON = '{"reason":"ttl"}'


class Reaper:
    """The expiries ``Core`` commits as ``SYSTEM_PRINCIPAL``, and the loop running them."""

    if TYPE_CHECKING:
        log: StateLog
        write_lock: threading.RLock
        closed: bool
        save_interval: float
        _stop: threading.Event
        _last_save: float

        def sync(self) -> None: ...
        def save_index(self, force: bool = False) -> None: ...
        def after_commit(self, revision: int, rows: list[Row], replaced: list[int]) -> None: ...
        def commit(self, author: str, plan: Plan) -> tuple[int, list[Row], Any]: ...

    def expire_due(self) -> int:
        """Commit an ``expire`` change for every item whose TTL has passed."""
        due = self.log.expired(time.time(), 1000)
        if not due:
            return 0

        def plan(view: WriteView) -> tuple[list[PendingChange], Any]:
            latest = view.latest(due)
            out = []
            for k in due:
                row = latest.get(k)
                if row and row.live and row.expires_at is not None and row.expires_at <= view.now:
                    out.append(
                        PendingChange(
                            "expire",
                            k[0],
                            k[1],
                            row.version + 1,
                            row.version,
                            info=_TTL_REASON,
                            thread=row.thread,
                            thread_pos=row.thread_pos,
                        )
                    )
            return out, [latest[(p.namespace, p.key)].id for p in out]

        with self.write_lock:
            revision, rows, replaced = self.log.commit(SYSTEM_PRINCIPAL, plan)
            if rows:
                self.after_commit(revision, rows, replaced)
        return len(rows)

    def expire_proposals(self) -> int:
        """Record the expiry of every pending proposal past its deadline."""
        from hivemem.memory.errors import HivememError
        from hivemem.memory.proposals import ReviewPlan, proposal_of

        now, expired = time.time(), 0
        for row in self.log.proposal_rows():
            if row.op == "propose" and proposal_of(row).expires_at.timestamp() <= now:
                try:
                    self.commit(SYSTEM_PRINCIPAL, ReviewPlan(row.key, "expired", SYSTEM_PRINCIPAL))
                    expired += 1
                except HivememError:
                    pass  # reviewed meanwhile
        return expired

    def end_due_leases(self) -> int:
        """End every lease whose deadline has passed (one revision per lease)."""
        from hivemem.memory.errors import NotFound
        from hivemem.memory.leases import EndPlan

        ended = 0
        for lease_id in self.log.due_leases(time.time(), 100):
            try:
                self.commit(SYSTEM_PRINCIPAL, EndPlan(lease_id, "expired", expired_only=True))
                ended += 1
            except NotFound:
                pass  # ended meanwhile by a revoke or a write
        return ended

    def _reap_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sync()
                self.expire_due()
                self.end_due_leases()
                self.expire_proposals()
                if time.monotonic() - self._last_save > self.save_interval:
                    self.save_index()
            except Exception:  # the reaper must outlive transient errors (busy, closed)
                if self.closed:
                    return
