"""Coordination activity: who writes where, where writers collide, who falls behind.

Writes and expiries are in the log: they are counted from it (``StateLog.change_counts``),
so they survive restarts and include every process sharing the log. Conflicts (a write
refused as stale, HTTP 409) and lagged watchers (cut off for falling behind) never reach
the log, so the process that sees them records them here, in bounded memory: counts per
``CELL`` seconds, kept for ``RETAIN`` seconds, at most ``MAX_CELLS`` (time, namespace,
principal) cells in all. They are lost when the process exits, and each process (each
API replica) counts only its own.

A report is cut to a window and a bucket width, grouped by namespace (optionally cut to
a depth) and by author, and holds only namespaces the caller may read: an author appears
only through activity in readable namespaces.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from hivemem.memory.errors import InvalidInput
from hivemem.memory.log.base import ChangeCount
from hivemem.memory.models import Activity, ActivitySeries, ts_to_datetime
from hivemem.memory.validation import in_scope

__all__ = [
    "ActivityRecorder",
    "build_activity",
    "check_activity_args",
    "CELL",
    "RETAIN",
    "MAX_CELLS",
    "METRICS",
]

CELL = 10  # seconds per recorded cell; report buckets are multiples of it
RETAIN = 24 * 3600  # the longest window a report covers
MAX_CELLS = 50_000  # about 10 MB at most, whatever the traffic
MAX_BUCKETS = 360
METRICS = ("writes", "conflicts", "expiries", "lagged")


class ActivityRecorder:
    """Conflicts and lagged watchers per (cell, namespace, principal), bounded.

    Thread-safe. When ``max_cells`` would be exceeded the oldest cells go first; events
    that still do not fit (all cells in the newest bucket) are only counted as dropped.
    """

    def __init__(
        self,
        cell: int = CELL,
        retain: int = RETAIN,
        max_cells: int = MAX_CELLS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cell = cell
        self.retain = retain
        self.max_cells = max_cells
        self.clock = clock
        self.started = clock()
        self.dropped = 0
        self._lock = threading.Lock()
        # cell index -> (namespace, principal) -> [conflicts, lagged]
        self._cells: OrderedDict[int, dict[tuple[str, str], list[int]]] = OrderedDict()
        self._size = 0

    def conflict(self, namespace: str, principal: str) -> None:
        """A write by ``principal`` in ``namespace`` was refused as a conflict."""
        self._add(0, [namespace], principal)

    def lagged(self, scopes: Iterable[str], principal: str) -> None:
        """A watcher of ``principal`` on ``scopes`` fell behind and was cut off."""
        self._add(1, scopes, principal)

    def _add(self, metric: int, namespaces: Iterable[str], principal: str) -> None:
        now = self.clock()
        index = int(now // self.cell)
        with self._lock:
            self._expire(index)
            for namespace in dict.fromkeys(namespaces):
                cells = self._cells.get(index)
                key = (namespace, principal)
                if cells is None or key not in cells:
                    if not self._make_room(index):
                        self.dropped += 1
                        continue
                    cells = self._cells.setdefault(index, {})
                    cells[key] = [0, 0]
                    self._size += 1
                cells[key][metric] += 1

    def _expire(self, index: int) -> None:
        oldest = index - self.retain // self.cell
        while self._cells and next(iter(self._cells)) < oldest:
            _, cells = self._cells.popitem(last=False)
            self._size -= len(cells)

    def _make_room(self, index: int) -> bool:
        while self._size >= self.max_cells:
            first = next(iter(self._cells))
            if first == index:
                return False
            self._size -= len(self._cells.pop(first))
        return True

    def counts(self, since: float) -> list[tuple[float, str, str, int, int]]:
        """``(cell start, namespace, principal, conflicts, lagged)`` of every cell that
        ends after ``since`` (report windows start on a cell boundary)."""
        first = int(since // self.cell)
        with self._lock:
            return [
                (index * self.cell, ns, who, c[0], c[1])
                for index, cells in self._cells.items()
                if index >= first
                for (ns, who), c in cells.items()
            ]

    @property
    def size(self) -> int:
        """Cells held now (never above ``max_cells``)."""
        with self._lock:
            return self._size


def check_activity_args(
    window: object, bucket: object, depth: object, limit: object
) -> tuple[int, int, int | None, int]:
    """Validate the arguments of ``Memory.activity``; each error names its field."""
    if isinstance(window, bool) or not isinstance(window, int) or not 60 <= window <= RETAIN:
        raise InvalidInput("window", f"must be an integer number of seconds from 60 to {RETAIN}")
    if bucket is None:
        bucket = max(CELL, math.ceil(window / 60 / CELL) * CELL)
    if (
        isinstance(bucket, bool)
        or not isinstance(bucket, int)
        or not CELL <= bucket <= RETAIN
        or bucket % CELL
    ):
        raise InvalidInput("bucket", f"must be a multiple of {CELL} seconds up to {RETAIN}")
    if math.ceil(window / bucket) + 1 > MAX_BUCKETS:
        raise InvalidInput("bucket", f"gives more than {MAX_BUCKETS} buckets over the window")
    if depth is not None and (
        isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 16
    ):
        raise InvalidInput("depth", "must be an integer from 1 to 16")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidInput("limit", "must be an integer from 1 to 100")
    return window, bucket, depth, limit


@dataclass
class _Series:
    counts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, metric: str, slot: int, n: int, size: int) -> None:
        self.counts.setdefault(metric, [0] * size)[slot] += n

    def total(self) -> int:
        return sum(sum(v) for v in self.counts.values())

    def model(self, name: str, size: int) -> ActivitySeries:
        return ActivitySeries(name=name, **{m: self.counts.get(m, [0] * size) for m in METRICS})


def build_activity(
    log_counts: Sequence[ChangeCount],
    recorded: Sequence[tuple[float, str, str, int, int]],
    scopes: Sequence[str],
    *,
    now: float,
    window: int,
    bucket: int,
    depth: int | None,
    limit: int,
    recorded_since: float,
    dropped: int,
) -> Activity:
    """The report: log counts (bucketed by ``bucket``) and recorded counts, in scope."""
    first = int((now - window) // bucket)
    size = int(now // bucket) - first + 1
    total = _Series()
    by_ns: dict[str, _Series] = {}
    by_author: dict[str, _Series] = {}

    def add(metric: str, b: int, namespace: str, author: str, n: int) -> None:
        slot = b - first
        if not 0 <= slot < size or n == 0:
            return
        name = "/".join(namespace.split("/")[:depth]) if depth is not None else namespace
        total.add(metric, slot, n, size)
        by_ns.setdefault(name, _Series()).add(metric, slot, n, size)
        by_author.setdefault(author, _Series()).add(metric, slot, n, size)

    for b, namespace, author, op, n in log_counts:
        add("expiries" if op == "expire" else "writes", b, namespace, author, n)
    for start, namespace, who, conflicts, lagged in recorded:
        if not any(in_scope(namespace, s) for s in scopes):
            continue
        b = int(start // bucket)
        add("conflicts", b, namespace, who, conflicts)
        add("lagged", b, namespace, who, lagged)

    def top(series: dict[str, _Series]) -> tuple[list[ActivitySeries], int]:
        ranked = sorted(series.items(), key=lambda kv: (-kv[1].total(), kv[0]))
        return [s.model(name, size) for name, s in ranked[:limit]], max(0, len(ranked) - limit)

    namespaces, more_namespaces = top(by_ns)
    authors, more_authors = top(by_author)
    return Activity(
        start=ts_to_datetime(first * bucket),  # type: ignore[arg-type]
        end=ts_to_datetime(now),  # type: ignore[arg-type]
        bucket=bucket,
        total=total.model("", size),
        namespaces=namespaces,
        authors=authors,
        more_namespaces=more_namespaces,
        more_authors=more_authors,
        recorded_since=ts_to_datetime(recorded_since),  # type: ignore[arg-type]
        dropped=dropped if any(s == "" for s in scopes) else 0,
    )
