"""Persistence of the keyword view: load and verify it on open, save it on close, or
rebuild it from the log (a mixin of ``hivemem.memory.views.Core``)."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hivemem.memory.log.base import StateLog
    from hivemem.memory.threads import KeywordView

__all__ = ["KeywordPersistence"]


class KeywordPersistence:
    """Load, verify, save and rebuild ``Core``'s keyword view."""

    if TYPE_CHECKING:
        log: StateLog
        keywords: KeywordView
        keyword_path: str | None
        write_lock: threading.RLock
        _keywords_saved: int

        def _record(
            self, name: str, reason: str, level: int = logging.WARNING, **fields: Any
        ) -> None: ...

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
