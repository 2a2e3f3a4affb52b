"""Group commit: concurrent writers share one durable database commit, each keeping its
own revision.

With ``durability="full"`` every commit waits for an fsync, and a hot key written by 32
agents spends its time there. While one writer (the leader) is committing, the others
queue their plans; the next leader runs every queued plan in one database transaction,
each plan in a savepoint of its own and each taking the next revision, then commits once.
A plan that fails rolls back alone and consumes no revision; every caller gets its own
result, revision and error, and only after the commit that made its write durable.
Serial order, gap-free revisions and "one transaction = one revision" are unchanged: only
the fsyncs are shared.

Only writes without a precondition share commits (``share=True``: plain puts, updates,
deletes). A compare-and-swap commits alone: in a shared batch the stale attempts of a
read-CAS-retry loop would wait for the fsync of the one that won before learning they
lost (measured: 5-8x fewer successful CAS increments at 32 writers).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hivemem.memory.log.base import Plan, Row, StateLog

__all__ = ["GroupCommitter", "OnCommit"]

Outcome = tuple[int, list[Row], Any]


def _held_lock() -> Any:
    lock = threading.Lock()
    lock.acquire()
    return lock


#: Called under the write lock, in revision order, after the commit that made it durable.
OnCommit = Callable[[int, list[Row], Any], None]


@dataclass
class _Ticket:
    author: str
    plan: Plan
    on_commit: OnCommit
    done: bool = False
    outcome: Outcome | None = None
    error: BaseException | None = field(default=None)
    #: Held until the caller may go on: released once, when its commit is done or when
    #: it is handed the lead. One lock per caller: a commit wakes only its own callers.
    wake: Any = field(default_factory=_held_lock)


class GroupCommitter:
    """Commits plans for concurrent callers, batching those that arrive while one commits.

    The first caller to find no leader leads: it takes every queued plan (at most
    ``max_batch``), commits them as one transaction, wakes their callers and hands the
    lead to the caller first in the queue, if any. Each waiting caller sleeps on a lock
    of its own, so a commit wakes exactly the callers it served plus the next leader
    (with one condition for all, every commit woke every waiting thread).
    """

    def __init__(self, log: StateLog, write_lock: Any, max_batch: int = 256) -> None:
        self.log = log
        self.write_lock = write_lock
        self.max_batch = max_batch
        self._mutex = threading.Lock()
        self._queue: deque[_Ticket] = deque()
        self._leading = False

    def commit(
        self, author: str, plan: Plan, on_commit: OnCommit, *, share: bool = True
    ) -> Outcome:
        """Run ``plan`` as one revision; returns ``(revision, rows, plan result)``.

        ``share=False`` commits it alone (for plans with preconditions).
        """
        owned = getattr(self.write_lock, "_is_owned", None)
        if not share or (owned is not None and owned()):
            # Or called with the write lock held (a nested write): a leader waiting for
            # that lock would wait forever on us, so commit directly.
            return self._direct(author, plan, on_commit)
        ticket = _Ticket(author, plan, on_commit)
        with self._mutex:
            self._queue.append(ticket)
            lead = not self._leading
            self._leading = True
        if not lead:
            ticket.wake.acquire()  # done, or handed the lead
        if not ticket.done:
            self._lead()
        if ticket.error is not None:
            raise ticket.error
        assert ticket.outcome is not None
        return ticket.outcome

    def _direct(self, author: str, plan: Plan, on_commit: OnCommit) -> Outcome:
        with self.write_lock:
            outcome = self.log.commit(author, plan)
            on_commit(*outcome)
        return outcome

    def _lead(self) -> None:
        """Commit what is queued (this caller's plan first), then hand the lead over."""
        batch: list[_Ticket] = []
        try:
            with self._mutex:
                while self._queue and len(batch) < self.max_batch:
                    batch.append(self._queue.popleft())
            self._commit_batch(batch)
        except BaseException as exc:  # interrupted: whoever has no answer gets this one
            for ticket in batch:
                if ticket.outcome is None and ticket.error is None:
                    ticket.error = exc
            raise
        finally:
            for ticket in batch:
                ticket.done = True
            with self._mutex:
                successor = self._queue[0] if self._queue else None
                self._leading = successor is not None
            for ticket in batch[1:]:  # batch[0] is this caller's own ticket
                ticket.wake.release()
            if successor is not None:
                successor.wake.release()

    def _commit_batch(self, batch: list[_Ticket]) -> None:
        with self.write_lock:
            try:
                if len(batch) == 1:
                    outcomes: list[Outcome | BaseException] = [
                        self._one(batch[0].author, batch[0].plan)
                    ]
                else:
                    outcomes = self.log.commit_group([(t.author, t.plan) for t in batch])
            except BaseException as exc:  # the commit itself failed: nothing is durable
                for ticket in batch:
                    ticket.error = exc
                return
            for ticket, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    ticket.error = outcome
                else:
                    ticket.outcome = outcome
                    try:
                        ticket.on_commit(*outcome)
                    except BaseException as exc:  # committed, but the views failed
                        ticket.error = exc

    def _one(self, author: str, plan: Plan) -> Outcome | BaseException:
        try:
            return self.log.commit(author, plan)
        except Exception as exc:  # the plan's own error (Conflict, InvalidInput, ...)
            return exc
