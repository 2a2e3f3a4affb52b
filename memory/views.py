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
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from hivemem.memory.acl import ACL
from hivemem.memory.activity import ActivityRecorder
from hivemem.memory.embed import Embedder
from hivemem.memory.embed_batch import BatchingEmbedder
from hivemem.memory.errors import Conflict, InvalidInput
from hivemem.memory.group_commit import GroupCommitter
from hivemem.memory.index.base import VectorIndex
from hivemem.memory.log.base import Plan, Row, StateLog
from hivemem.memory.postings import MetadataPostings
from hivemem.memory.reaper import SYSTEM_PRINCIPAL, Reaper  # re-exported: see __all__
from hivemem.memory.threads import DEFAULT_WINDOW, KeywordView
from hivemem.memory.views_keywords import KeywordPersistence
from hivemem.memory.views_postings import PostingsFilter
from hivemem.memory.watch import Subscription, WatchHub

__all__ = ["Core", "SYSTEM_PRINCIPAL"]

log = logging.getLogger("hivemem.index")


def _event(name: str, **fields: Any) -> str:
    """One structured (logfmt) line: ``event=index_rebuild reason=ids_differ …``."""
    return " ".join([f"event={name}", *(f"{k}={v}" for k, v in fields.items())])


class Core(KeywordPersistence, PostingsFilter, Reaper):
    """State shared by every principal view of one store.

    Its concerns beyond the vector index live in mixins: the keyword view's persistence
    (``views_keywords``), filtered ids from the metadata postings (``views_postings``)
    and the TTL reaper (``reaper``).
    """

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

    # -- commits by other processes ---------------------------------------------------
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

    # -- commits made here --------------------------------------------------------------
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
