"""Metadata postings: equality filters answered without a log scan (a mixin of
``hivemem.memory.views.Core``, which keeps the postings level with the log)."""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import TYPE_CHECKING

from hivemem.memory.postings import MetadataPostings, indexable

if TYPE_CHECKING:
    from hivemem.memory.log.base import StateLog
    from hivemem.memory.search import Cond

__all__ = ["PostingsFilter"]


class PostingsFilter:
    """The ids a filtered search keeps to, from the postings or the log."""

    if TYPE_CHECKING:
        log: StateLog
        write_lock: threading.RLock
        postings: MetadataPostings | None

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
