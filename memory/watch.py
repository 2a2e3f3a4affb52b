"""Fan-out of committed changes to subscribers, with replay from the log.

A subscription starts *catching up*: it reads the log from ``since`` in whole
revisions. When it has read everything the hub has published it goes *live* and the
hub hands it each committed transaction. A live subscriber holds at most
``max_pending`` undelivered transactions; one more and it is cut off with ``Lagged``
naming the revision to resume from, so a slow reader never grows memory without bound.
Revisions are delivered in order, whole, once each.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from hivemem.memory.errors import Compacted, Lagged
from hivemem.memory.log.base import ITEM_OPS, Row, StateLog
from hivemem.memory.subscriptions import Matcher
from hivemem.memory.validation import in_scope

__all__ = ["WatchHub", "Subscription"]

Batch = tuple[int, list[Row]]
ENTRY_OPS = frozenset({"propose", "review"})  # log entries some watchers may see


class WatchHub:
    """Publishes committed transactions, in revision order, to live subscriptions."""

    def __init__(
        self,
        log: StateLog,
        max_pending: int = 1024,
        page: int = 256,
        on_lagged: Callable[[Subscription], None] | None = None,
    ) -> None:
        self.log = log
        self.max_pending = max_pending
        self.page = page
        self.on_lagged = on_lagged  # told of each subscriber cut off for falling behind
        self.lock = threading.Lock()
        self.last_revision = log.head()
        self._subs: set[Subscription] = set()

    def publish(self, revision: int, rows: list[Row]) -> None:
        """Called after each commit, in commit order."""
        with self.lock:
            if revision <= self.last_revision:
                return
            self.last_revision = revision
            subs = list(self._subs)
        for sub in subs:
            sub._offer(revision, rows)

    def subscribe(
        self,
        scopes: Sequence[str],
        since: int,
        convert: Callable[[Row], Any],
        matcher: Matcher | None = None,
        thread: str | None = None,
    ) -> Subscription:
        compacted = self.log.compacted_revision()
        if since + 1 < compacted:
            raise Compacted(compacted)
        return Subscription(self, list(scopes), since, convert, matcher, thread=thread)

    def _go_live(self, sub: Subscription, upto: int) -> bool:
        """Switch ``sub`` to live delivery if nothing after ``upto`` was published yet."""
        with self.lock:
            if self.last_revision > upto:
                return False
            self._subs.add(sub)
            return True

    def _drop(self, sub: Subscription) -> None:
        with self.lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        with self.lock:
            return len(self._subs)

    def close(self) -> None:
        with self.lock:
            subs = list(self._subs)
            self._subs.clear()
        for sub in subs:
            sub.close()


class Subscription:
    """An ordered, gap-free stream of changes; iterate it (sync or async) and close it."""

    def __init__(
        self,
        hub: WatchHub,
        scopes: list[str],
        since: int,
        convert: Callable[[Row], Any],
        matcher: Matcher | None = None,
        thread: str | None = None,
    ) -> None:
        self.hub = hub
        self.scopes = scopes
        self.owner = ""  # the principal watching (set by the engine), for activity counts
        self.matcher = matcher
        #: Who may see a proposal entry; None: this stream carries no proposals.
        self.sees_entry: Callable[[Row], bool] | None = None
        self.thread = thread
        self.delivered = since  # the last revision handed to the consumer
        self._taken = since  # the last revision the consumer has taken (it will hand it on)
        self.convert = convert
        self._live = False
        self._queue: deque[Batch] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._lagged: int | None = None
        self._wakers: list[Callable[[], None]] = []

    # -- producer side -------------------------------------------------------------
    def _visible(self, rows: list[Row]) -> list[Row]:
        out = []
        for r in rows:
            if r.op in ITEM_OPS:
                if any(in_scope(r.namespace, s) for s in self.scopes) and (
                    self.thread is None or r.thread == self.thread
                ):
                    out.append(r)
            elif r.op in ENTRY_OPS and self.sees_entry is not None and self._in_scope(r):
                if self.sees_entry(r):
                    out.append(r)
        return out

    def _in_scope(self, row: Row) -> bool:
        namespace = json.loads(row.info or "{}").get("namespace", "")
        return bool(namespace) and any(in_scope(namespace, s) for s in self.scopes)

    def _offer(self, revision: int, rows: list[Row]) -> None:
        cut_off = False
        with self._cond:
            if self._closed or self._lagged is not None:
                return
            if len(self._queue) >= self.hub.max_pending:
                # What was taken is on its way to the consumer: resume after it.
                self._lagged = self._taken
                self._queue.clear()
                self.hub._drop(self)
                cut_off = True
            else:
                self._queue.append((revision, rows))
            self._cond.notify_all()
            wakers = list(self._wakers)
        for wake in wakers:
            wake()
        if cut_off and self.hub.on_lagged is not None:
            self.hub.on_lagged(self)

    # -- consumer side -------------------------------------------------------------
    def _catch_up(self) -> list[Batch]:
        """Read the next page from the log; go live once it reaches what was published."""
        compacted = self.hub.log.compacted_revision()
        if self.delivered + 1 < compacted:
            raise Compacted(compacted)
        rows = self.hub.log.changes_since(self.delivered, self.hub.page)
        batches: list[Batch] = []
        for row in rows:
            if not batches or batches[-1][0] != row.revision:
                batches.append((row.revision, []))
            batches[-1][1].append(row)
        upto = batches[-1][0] if batches else self.delivered
        with self._cond:
            self._taken = max(self._taken, upto)
        if len(batches) < self.hub.page and self.hub._go_live(self, upto):
            self._live = True
        return batches

    def _take(self) -> Batch | None:
        """Pop one queued batch (live mode), raising if cut off or closed."""
        with self._cond:
            if self._lagged is not None:
                raise Lagged(self._lagged)
            if self._queue:
                batch = self._queue.popleft()
                self._taken = max(self._taken, batch[0])
                return batch
            if self._closed:
                raise StopIteration
            return None

    def _emit(self, batch: Batch) -> list[Any]:
        revision, rows = batch
        if revision <= self.delivered:
            return []
        self.delivered = revision
        if self.matcher is None:
            return [self.convert(r) for r in self._visible(rows)]
        out = []
        for row in self._visible(rows):
            hit, score = self.matcher.score(row)
            if hit:
                change = self.convert(row)
                change.score = score
                out.append(change)
        return out

    def __iter__(self) -> Iterator[Any]:
        return self.iter(timeout=None)

    def iter(self, timeout: float | None = None) -> Iterator[Any]:
        """Iterate; with ``timeout``, stop after that many idle seconds."""
        try:
            while not self._closed:
                if not self._live:
                    for page_batch in self._catch_up():
                        yield from self._emit(page_batch)
                    continue
                try:
                    batch = self._take()
                except StopIteration:
                    return
                if batch is not None:
                    yield from self._emit(batch)
                    continue
                with self._cond:
                    if not self._queue and not self._closed and self._lagged is None:
                        if not self._cond.wait(timeout) and timeout is not None:
                            return
        finally:
            if self._closed:
                self.hub._drop(self)

    async def __aiter__(self) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(event.set)

        with self._cond:
            self._wakers.append(wake)
        try:
            while not self._closed:
                if not self._live:
                    for page_batch in await asyncio.to_thread(self._catch_up):
                        for change in self._emit(page_batch):
                            yield change
                    continue
                event.clear()
                try:
                    batch = self._take()
                except StopIteration:
                    return
                if batch is not None:
                    for change in self._emit(batch):
                        yield change
                    continue
                await event.wait()
        finally:
            with self._cond:
                if wake in self._wakers:
                    self._wakers.remove(wake)

    def close(self) -> None:
        """Stop the stream; a blocked iterator returns."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            wakers = list(self._wakers)
        self.hub._drop(self)
        for wake in wakers:
            wake()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
