"""The state shared by every principal view of one store, and the views of its log.

``Core`` owns the log, the vector index, the watch hub and the TTL reaper. The index
and the hub are views of the log: ``after_commit`` applies each commit in order, and
``catch_up`` / ``rebuild_index`` bring them level with the log after a restart or a
commit by another process.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from hivemem.memory.acl import ACL
from hivemem.memory.embed import Embedder
from hivemem.memory.errors import InvalidInput
from hivemem.memory.index.base import VectorIndex
from hivemem.memory.log.base import PendingChange, Plan, Row, StateLog, WriteView
from hivemem.memory.watch import WatchHub

__all__ = ["Core", "SYSTEM_PRINCIPAL"]

SYSTEM_PRINCIPAL = "hivemem"  # author of expire changes
_TTL_REASON = '{"reason":"ttl"}'


class Core:
    """State shared by every principal view of one store."""

    def __init__(
        self,
        log: StateLog,
        index: VectorIndex,
        embedder: Embedder | None,
        *,
        max_value_bytes: int,
        reaper_interval: float | None,
        watch_queue: int,
        save_interval: float,
        cleanup_dir: str | None,
    ) -> None:
        self.log = log
        self.index = index
        self.embedder = embedder
        self.max_value_bytes = max_value_bytes
        self.acl = ACL(log.acl())
        self.write_lock = threading.RLock()
        self.cleanup_dir = cleanup_dir
        self.save_interval = save_interval
        self.closed = False
        stored = log.meta("vector_dim")
        self.dim: int | None = int(stored) if stored else None
        if embedder is not None:
            if self.dim is not None and self.dim != embedder.dim:
                raise InvalidInput(
                    "embedder", f"has {embedder.dim} dimensions; the store holds {self.dim}"
                )
            self.dim = embedder.dim
        self.hub = WatchHub(log, max_pending=watch_queue)
        self._saved_revision = -1
        self._last_save = time.monotonic()
        self.open_index()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        if reaper_interval:
            self._reaper = threading.Thread(
                target=self._reap_loop, args=(reaper_interval,), name="hivemem-reaper", daemon=True
            )
            self._reaper.start()

    # -- the vector index as a view of the log ---------------------------------------
    def open_index(self) -> None:
        """Load the persisted index, verify it, catch it up from the log or rebuild it."""
        with self.write_lock:
            loaded = self.index.load()
            if loaded and self.dim is not None and self.index.dim not in (None, self.dim):
                loaded = False
            applied = self.index.applied_revision
            if (
                not loaded
                or applied < self.log.compacted_revision()
                or applied > self.log.head()  # not this store's index
            ):
                self.rebuild_index()
            else:
                self.catch_up()
                if self.index.ids() != {cid for cid, _, _ in self.log.live_vectors()}:
                    self.rebuild_index()
            self._saved_revision = self.index.applied_revision if loaded else -1

    def rebuild_index(self) -> None:
        with self.write_lock:
            self.index.reset()
            head = self.log.head()
            batch: list[tuple[int, str, np.ndarray]] = []
            for change_id, ns, blob in self.log.live_vectors():
                batch.append((change_id, ns, np.frombuffer(blob, dtype=np.float32)))
                if len(batch) >= 10_000:
                    self.index.apply(0, batch, ())
                    batch = []
            self.index.apply(head, batch, ())
            self.catch_up()

    def catch_up(self) -> None:
        """Apply log revisions the index (and the watch hub) have not seen."""
        with self.write_lock:
            start = min(self.index.applied_revision, self.hub.last_revision)
            while True:
                rows = self.log.changes_since(start, 512)
                if not rows:
                    return
                last = rows[-1].revision
                if last > self.index.applied_revision:
                    fresh = [r for r in rows if r.revision > self.index.applied_revision]
                    self._reindex_keys({(r.namespace, r.key) for r in fresh}, last)
                for revision, group in _by_revision(rows):
                    self.hub.publish(revision, group)
                start = last

    def _reindex_keys(self, keys: set[tuple[str, str]], revision: int) -> None:
        removes: list[int] = []
        adds: list[tuple[int, str, np.ndarray]] = []
        for ns, key in keys:
            history = self.log.history(ns, key)
            removes += [r.id for r in history]
            top = history[-1] if history else None
            if top is not None and top.live and top.vector is not None:
                adds.append((top.id, ns, np.frombuffer(top.vector, dtype=np.float32)))
        self.index.apply(revision, adds, removes)

    def sync(self) -> None:
        """Catch up with commits made by other processes sharing the store."""
        if self.log.external_change() and self.log.head() > self.index.applied_revision:
            self.catch_up()

    def after_commit(self, revision: int, rows: list[Row], replaced: list[int]) -> None:
        """Update views in commit order (called under the write lock)."""
        if revision > self.hub.last_revision + 1 or revision > self.index.applied_revision + 1:
            self.catch_up()  # another process committed in between
            return
        adds = [
            (r.id, r.namespace, np.frombuffer(r.vector, dtype=np.float32))
            for r in _final_rows(rows)
            if r.live and r.vector is not None
        ]
        removes = replaced + [r.id for r in rows if not (r.live and r.vector is not None)]
        self.index.apply(revision, adds, removes)
        self.hub.publish(revision, rows)

    def save_index(self, force: bool = False) -> None:
        """Persist the vector index; writers wait only for its in-memory copy."""
        revision = self.index.applied_revision
        if force or revision != self._saved_revision:
            self.index.save()
            self._saved_revision = revision
            self._last_save = time.monotonic()

    # -- TTL -----------------------------------------------------------------------
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
                            "expire", k[0], k[1], row.version + 1, row.version, info=_TTL_REASON
                        )
                    )
            return out, [latest[(p.namespace, p.key)].id for p in out]

        with self.write_lock:
            revision, rows, replaced = self.log.commit(SYSTEM_PRINCIPAL, plan)
            if rows:
                self.after_commit(revision, rows, replaced)
        return len(rows)

    def commit(self, author: str, plan: Plan) -> tuple[int, list[Row], Any]:
        """Commit a coordination plan, whose result is ``(replaced change ids, payload)``,
        and update the views; returns ``(revision, rows, payload)``."""
        with self.write_lock:
            revision, rows, (replaced, payload) = self.log.commit(author, plan)
            if rows:
                if self.dim is not None and self.log.meta("vector_dim") is None:
                    self.log.set_meta("vector_dim", str(self.dim))
                self.after_commit(revision, rows, replaced)
        return revision, rows, payload

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
                if time.monotonic() - self._last_save > self.save_interval:
                    self.save_index()
            except Exception:  # the reaper must outlive transient errors (busy, closed)
                if self.closed:
                    return

    def close(self) -> None:
        if self.closed:
            return
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        with self.write_lock:
            self.closed = True
            self.hub.close()
            self.save_index()
            self.log.close()
        if self.cleanup_dir:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)


def _by_revision(rows: list[Row]) -> Iterator[tuple[int, list[Row]]]:
    group: list[Row] = []
    for row in rows:
        if group and group[0].revision != row.revision:
            yield group[0].revision, group
            group = []
        group.append(row)
    if group:
        yield group[0].revision, group


def _final_rows(rows: list[Row]) -> list[Row]:
    final: dict[tuple[str, str], Row] = {}
    for r in rows:
        final[(r.namespace, r.key)] = r
    return list(final.values())
