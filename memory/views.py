"""The state shared by every principal view of one store, and the views of its log.

``Core`` owns the log, the vector index, the keyword index, the watch hub and the TTL
reaper. The indexes and the hub are views of the log: ``after_commit`` applies each
commit in order, and ``catch_up`` / ``rebuild_index`` bring them level with the log
after a restart or a commit by another process.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import numpy as np

from hivemem.memory.acl import ACL
from hivemem.memory.activity import ActivityRecorder
from hivemem.memory.embed import Embedder
from hivemem.memory.embed_batch import BatchingEmbedder
from hivemem.memory.errors import Conflict, InvalidInput
from hivemem.memory.group_commit import GroupCommitter
from hivemem.memory.index.base import VectorIndex
from hivemem.memory.log.base import PendingChange, Plan, Row, StateLog, WriteView
from hivemem.memory.postings import MetadataPostings, indexable
from hivemem.memory.search import Cond
from hivemem.memory.threads import DEFAULT_WINDOW, KeywordView
from hivemem.memory.watch import Subscription, WatchHub

__all__ = ["Core", "SYSTEM_PRINCIPAL"]

SYSTEM_PRINCIPAL = "hivemem"  # author of expire changes
_TTL_REASON = '{"reason":"ttl"}'
log = logging.getLogger("hivemem.index")


def _event(name: str, **fields: Any) -> str:
    """One structured (logfmt) line: ``event=index_rebuild reason=ids_differ …``."""
    return " ".join([f"event={name}", *(f"{k}={v}" for k, v in fields.items())])


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
        thread_window: int | None = None,
        keyword_path: str | None = None,
    ) -> None:
        self.log = log
        #: Where the keyword view is saved on close (None: rebuilt on every open).
        self.keyword_path = keyword_path
        self._keywords_saved = -1
        self.index = index
        self.keywords = KeywordView(_thread_window(log, thread_window))
        self.embedder = embedder
        #: What writes embed through: concurrent writes share model calls.
        self.write_embedder = BatchingEmbedder(embedder) if embedder is not None else None
        self.max_value_bytes = max_value_bytes
        self.proposal_ttl = 7 * 86400.0  # set by Memory.open
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
        #: Faults of the derived views, by (event, reason): shown in /metrics.
        self.events: Counter[tuple[str, str]] = Counter()
        self.activity = ActivityRecorder()  # conflicts and lagged watchers: not in the log
        self.hub = WatchHub(log, max_pending=watch_queue, on_lagged=self._lagged)
        #: Every engine write commits through it: concurrent writers share an fsync.
        self.committer = GroupCommitter(log, self.write_lock)
        self._saved_revision = -1
        self._last_save = time.monotonic()
        self.load_keywords()
        self.postings: MetadataPostings | None = None
        self.open_index()
        self.verify_keywords()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        if reaper_interval:
            self._reaper = threading.Thread(
                target=self._reap_loop, args=(reaper_interval,), name="hivemem-reaper", daemon=True
            )
            self._reaper.start()
        self._woken = threading.Event()
        self._follower: threading.Thread | None = None
        if log.listen(self._wake):
            self._follower = threading.Thread(
                target=self._follow_loop, name="hivemem-follow", daemon=True
            )
            self._follower.start()

    def _lagged(self, sub: Subscription) -> None:
        self.activity.lagged(sub.scopes, sub.owner)

    def count_conflict(self, exc: Conflict, principal: str) -> None:
        """Record a write refused as a conflict: it never reaches the log."""
        where = exc.namespace or (exc.current.namespace if exc.current is not None else "")
        self.activity.conflict(where, principal)

    # -- the vector index as a view of the log ---------------------------------------
    def _record(self, name: str, reason: str, level: int = logging.WARNING, **fields: Any) -> None:
        self.events[(name, reason)] += 1
        log.log(level, _event(name, reason=reason, **fields))

    def open_index(self) -> None:
        """Load the persisted index, verify it, catch it up from the log or rebuild it.

        Each verification failure, rebuild and catch-up is logged (one logfmt line with
        its reason) and counted in ``events``.
        """
        with self.write_lock:
            head = self.log.head()
            loaded = self.index.load()
            applied = self.index.applied_revision
            reason = None
            if not loaded:
                reason = "load_failed" if head > 0 else None  # a new store has no index yet
            elif self.dim is not None and self.index.dim not in (None, self.dim):
                reason, loaded = "dimension_mismatch", False
            elif applied < self.log.compacted_revision():
                reason = "behind_compaction"
            elif applied > head:
                reason = "ahead_of_log"  # not this store's index
            if reason is not None:
                self._record("index_verify_failed", reason, index_revision=applied, revision=head)
            if not loaded or reason is not None:
                self.rebuild_index(reason or "new_store")
            else:
                self.catch_up("open")
                if self.index.ids() != {cid for cid, _, _ in self.log.live_vectors()}:
                    self._record("index_verify_failed", "ids_differ", revision=head)
                    self.rebuild_index("ids_differ")
            self._saved_revision = self.index.applied_revision if loaded else -1

    def _vectors(self, rows: Iterable[tuple[int, str, bytes]]) -> Iterator[tuple[int, str, Any]]:
        """Stored vectors as arrays, skipping (and logging) any of the wrong dimension,
        which an earlier release could store: one bad row must not break the index."""
        for change_id, ns, blob in rows:
            if self.dim is not None and len(blob) != 4 * self.dim:
                self._record(
                    "index_skip_vector",
                    "dimension_mismatch",
                    change=change_id,
                    dim=len(blob) // 4,
                    store_dim=self.dim,
                )
                continue
            if self.dim is None:
                self.dim = len(blob) // 4
            yield change_id, ns, np.frombuffer(blob, dtype=np.float32)

    def rebuild_index(self, reason: str = "requested") -> None:
        """Rebuild the vector index from the vectors stored in the log."""
        with self.write_lock:
            started = time.monotonic()
            self.index.reset()
            self.postings = None  # rebuilt from the log on the next filtered search
            head = self.log.head()
            batch: list[tuple[int, str, np.ndarray]] = []
            for item in self._vectors(self.log.live_vectors()):
                batch.append(item)
                if len(batch) >= 10_000:
                    self.index.apply(0, batch, ())
                    batch = []
            self.index.apply(head, batch, ())
            self.catch_up("rebuild")
            level = logging.INFO if reason == "new_store" else logging.WARNING
            self._record(
                "index_rebuild",
                reason,
                level,
                revision=head,
                vectors=len(self.index),
                seconds=round(time.monotonic() - started, 3),
            )

    def rebuild_keywords(self) -> None:
        """Rebuild the keyword index from the live items in the log.

        The revision is read first: a commit racing the listing is applied again by the
        next catch-up, which is harmless (applying a key's latest state is idempotent).
        """
        with self.write_lock:
            view = self.keywords
            view.reset()
            head = self.log.head()
            after = None
            while True:
                rows = self.log.list_items([""], [], 2000, after, time.time())
                view.apply(0, [r for r in rows if r.text], ())
                if len(rows) < 2000:
                    break
                after = (rows[-1].namespace, rows[-1].key)
            view.applied_revision = head

    def load_keywords(self) -> None:
        """Load the saved keyword view (``open_index``'s catch-up then brings it level
        with the log), or rebuild it from the log: when there is none, it cannot be
        read, it was made with another thread window, it is ahead of the log (not this
        store's) or behind the compacted revision (the changes since are gone)."""
        with self.write_lock:
            started = time.monotonic()
            path = self.keyword_path
            reason, mark = self.keywords.load(path) if path else ("not_persisted", None)
            if reason is None:
                applied, head = self.keywords.applied_revision, self.log.head()
                if applied > head:
                    reason = "ahead_of_log"
                elif applied < self.log.compacted_revision():
                    reason = "behind_compaction"
                elif mark != self._log_mark(applied):
                    reason = "other_log"
                else:
                    self._keywords_saved = applied
                    self._record(
                        "keyword_view_load",
                        "saved",
                        logging.INFO,
                        revision=applied,
                        items=len(self.keywords),
                        seconds=round(time.monotonic() - started, 3),
                    )
                    return
            if reason not in ("missing", "not_persisted"):
                self._record("keyword_view_verify_failed", reason, revision=self.log.head())
            self.rebuild_keywords()
            self._record(
                "keyword_view_rebuild",
                reason,
                logging.INFO if reason in ("missing", "not_persisted") else logging.WARNING,
                items=len(self.keywords),
                seconds=round(time.monotonic() - started, 3),
            )

    def _log_mark(self, revision: int) -> list[Any] | None:
        """What identifies this log at ``revision``: its first change's id, item and
        timestamp (another store's log, or this one restored from an older copy, differ)."""
        if revision <= 0:
            return None
        rows = self.log.changes_since(revision - 1, 1)
        if not rows or rows[0].revision != revision:
            return None
        r = rows[0]
        return [r.id, r.namespace, r.key, r.updated_at]

    def verify_keywords(self) -> None:
        """After the catch-up on open: a loaded view must hold only live items' ids
        (a file from another store, or a log restored from a backup, is rebuilt)."""
        if self._keywords_saved < 0:
            return
        with self.write_lock:
            held = self.keywords.ids()
            live = {cid for cid, _ in self.log.live_metadata()}
            if not held <= live:
                self._record("keyword_view_verify_failed", "ids_differ", revision=self.log.head())
                self.rebuild_keywords()
                self._keywords_saved = -1

    def save_keywords(self) -> None:
        """Persist the keyword view if it changed since it was loaded or saved."""
        if not self.keyword_path or self.keywords.applied_revision == self._keywords_saved:
            return
        try:
            mark = self._log_mark(self.keywords.applied_revision)
            self._keywords_saved = self.keywords.save(self.keyword_path, mark)
        except OSError as exc:  # the next open rebuilds it from the log
            self._record("keyword_view_save_failed", type(exc).__name__)

    def catch_up(self, reason: str = "external_commit") -> None:
        """Apply log revisions the indexes (and the watch hub) have not seen."""
        with self.write_lock:
            kw = self.keywords
            start = min(self.index.applied_revision, kw.applied_revision, self.hub.last_revision)
            first, applied = start, 0
            while True:
                rows = self.log.changes_since(start, 512)
                if not rows:
                    break
                last = rows[-1].revision
                behind = min(self.index.applied_revision, kw.applied_revision)
                if last > behind:
                    fresh = [r for r in rows if r.revision > behind]
                    self._reindex_keys({(r.namespace, r.key) for r in fresh}, last)
                for revision, group in _by_revision(rows):
                    self.hub.publish(revision, group)
                applied += len(rows)
                start = last
            if applied:
                # Other replicas' commits are routine; a catch-up on open means a crash
                # or an unsaved index, worth a warning.
                quiet = reason in ("external_commit", "rebuild")
                level = logging.DEBUG if quiet else logging.WARNING
                self._record(
                    "index_catch_up", reason, level, from_revision=first, to_revision=start
                )

    def _reindex_keys(self, keys: set[tuple[str, str]], revision: int) -> None:
        removes: list[int] = []
        adds: list[tuple[int, str, np.ndarray]] = []
        tops: list[Row] = []
        blobs: list[tuple[int, str, bytes]] = []
        for ns, key in sorted(keys):
            history = self.log.history(ns, key)
            removes += [r.id for r in history]
            top = history[-1] if history else None
            if top is not None and top.live:
                tops.append(top)
                if top.vector is not None:
                    blobs.append((top.id, ns, top.vector))
        adds += self._vectors(blobs)
        if revision > self.index.applied_revision:
            self.index.apply(revision, adds, removes)
        if revision > self.keywords.applied_revision:
            self.keywords.apply(revision, tops, removes)
        if self.postings is not None:
            self.postings.apply([(t.id, t.metadata) for t in tops], removes)

    # -- metadata postings (equality filters without a log scan) ---------------------
    def filtered_ids(
        self, scopes: list[str], conds: list[Cond], now: float, thread: str | None = None
    ) -> Collection[int]:
        """Ids of live items matching ``conds`` (and ``thread``), for a search to keep to.

        Equality filters come from the in-memory postings (built on first use); other
        filters, and threads, from the log. Either may include ids out of scope or
        expired: the indexes scope their search, and every hit is checked against the log
        before it is returned.
        """
        if thread is not None or not indexable(conds):
            return self.log.filtered_ids(scopes, conds, now, thread)
        if self.postings is None:
            with self.write_lock:
                if self.postings is None:
                    postings = MetadataPostings()
                    postings.apply(self.log.live_metadata(), ())
                    self.postings = postings
        return self.postings.matching(conds)

    def sync(self) -> None:
        """Catch up with commits made by other processes sharing the store."""
        if self.log.external_change() and self.log.head() > min(
            self.index.applied_revision, self.keywords.applied_revision
        ):
            self.catch_up()

    @property
    def applied_revision(self) -> int:
        """The revision every view (vector and keyword indexes, watchers) has applied."""
        return min(
            self.index.applied_revision, self.keywords.applied_revision, self.hub.last_revision
        )

    def _wake(self, revision: int | None) -> None:
        """From the log's listener: another process may have committed ``revision``."""
        if revision is None or revision > self.applied_revision:
            self._woken.set()

    def _follow_loop(self) -> None:
        """Catch the views up whenever the log says another process committed.

        The wake-up carries no data: the views read the log from their last revision,
        so a lost or repeated notification can delay a change but never lose or
        duplicate one (the reaper's poll is the backstop).
        """
        while not self._stop.is_set():
            if not self._woken.wait(1.0):
                continue
            self._woken.clear()
            try:
                self.catch_up()
            except Exception:  # PostgreSQL briefly away: the next wake-up or poll retries
                if self.closed:
                    return

    def await_revision(self, revision: int, *, views: bool, timeout: float) -> None:
        """Return once ``revision`` is committed and, with ``views``, applied here.

        A revision the log has is applied at once (catch-up); one it has not yet is
        waited for up to ``timeout`` seconds, then refused as ahead of the log.
        """
        deadline = time.monotonic() + timeout
        while True:
            if views and self.applied_revision >= revision:
                return
            head = self.log.head()
            if head >= revision:
                if views:
                    self.catch_up()
                    continue
                return
            if time.monotonic() >= deadline:
                raise InvalidInput("min_revision", f"is ahead of the latest revision {head}")
            time.sleep(0.01)

    def after_commit(self, revision: int, rows: list[Row], replaced: list[int]) -> None:
        """Update views in commit order (called under the write lock)."""
        if (
            revision > self.hub.last_revision + 1
            or revision > self.index.applied_revision + 1
            or revision > self.keywords.applied_revision + 1
        ):
            self.catch_up()  # another process committed in between
            return
        final = _final_rows(rows)
        adds = [
            (r.id, r.namespace, np.frombuffer(r.vector, dtype=np.float32))
            for r in final
            if r.live and r.vector is not None
        ]
        removes = replaced + [r.id for r in rows if not (r.live and r.vector is not None)]
        self.index.apply(revision, adds, removes)
        texts = [r for r in final if r.live and r.text]
        kept = {r.id for r in texts}
        self.keywords.apply(revision, texts, replaced + [r.id for r in rows if r.id not in kept])
        if self.postings is not None:  # every live item, with a vector or not
            live = [r for r in final if r.live]
            kept_live = {r.id for r in live}
            gone = replaced + [r.id for r in rows if r.id not in kept_live]
            self.postings.apply([(r.id, r.metadata) for r in live], gone)
        self.hub.publish(revision, rows)

    def fix_dim(self, puts: Iterable[Any]) -> bool:
        """Check supplied vectors against the store's dimension (under the write lock).

        A store without an embedder takes its dimension from its first vector; returns
        True when this call fixed it (the caller records it once the commit succeeds).
        """
        sized = [(p, len(p.vector) // 4) for p in puts if p.vector is not None]
        if not sized:
            return False
        fixed = False
        if self.dim is None:
            stored = self.log.meta("vector_dim")  # another process may have fixed it
            self.dim, fixed = (int(stored), False) if stored else (sized[0][1], True)
        expected = self.dim
        for p, size in sized:
            if size != expected:
                if fixed:
                    self.dim = None
                raise InvalidInput(
                    f"{p.field}vector", f"has {size} dimensions, the store uses {expected}"
                )
        return fixed

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

    def commit(self, author: str, plan: Plan) -> tuple[int, list[Row], Any]:
        """Commit a coordination plan, whose result is ``(replaced change ids, payload)``,
        and update the views; returns ``(revision, rows, payload)``."""
        with self.write_lock:
            try:
                revision, rows, (replaced, payload) = self.log.commit(author, plan)
            except Conflict as exc:
                self.count_conflict(exc, author)
                raise
            if rows:
                if self.dim is not None and self.log.meta("vector_dim") is None:
                    self.log.set_meta("vector_dim", str(self.dim))
                self.after_commit(revision, rows, replaced)
        return revision, rows, payload

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

    def close(self) -> None:
        if self.closed:
            return
        self._stop.set()
        if self.write_embedder is not None:
            self.write_embedder.close()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        if self._follower is not None:
            self._follower.join(timeout=5)
        with self.write_lock:
            self.closed = True
            self.hub.close()
            self.save_index()
            self.save_keywords()
            self.index.close()
            self.log.close()
        if self.cleanup_dir:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)


def _thread_window(log: StateLog, asked: int | None) -> int:
    """The store's thread window: as stored, or as asked (and then stored)."""
    stored = log.meta("thread_window")
    if asked is None:
        return int(stored) if stored else DEFAULT_WINDOW
    if isinstance(asked, bool) or not isinstance(asked, int) or not 0 <= asked <= 16:
        raise InvalidInput("thread_window", "must be an integer from 0 to 16")
    if stored != str(asked):
        log.set_meta("thread_window", str(asked))
    return asked


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
