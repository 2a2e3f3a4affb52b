"""The I/O-free half of a remote watch: parsing the event stream and keeping the place.

The server sends one ``changes`` event per revision (``id:`` is the revision), ``: ping``
comments as heartbeats, and at most one ``error`` event before it ends the stream. The
cursor remembers the last revision handed over, so a reconnection resumes right after
it and a revision that arrives twice is dropped: no gaps, no duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from hivemem.memory.client._wire import Call, _nothing, error_from_problem
from hivemem.memory.errors import InvalidInput, Lagged
from hivemem.memory.models import Change
from hivemem.memory.search import parse_filter
from hivemem.memory.subscriptions import check_threshold
from hivemem.memory.validation import check_key, check_prefix

__all__ = ["Event", "EventParser", "WatchCursor", "Resume"]

_CHANGES = TypeAdapter(list[Change])


@dataclass
class Event:
    """One server-sent event."""

    event: str = "message"
    data: list[str] = field(default_factory=list)
    id: str | None = None


class EventParser:
    """Incremental ``text/event-stream`` parser: feed it lines, it returns whole events."""

    def __init__(self) -> None:
        self._event = Event()
        self._seen = False

    def feed(self, line: str) -> Event | None:
        """Take one line (without its end of line); return the event a blank line ends."""
        if not line:
            event, seen = self._event, self._seen
            self._event, self._seen = Event(), False
            return event if seen else None
        if line.startswith(":"):
            return None  # a comment: heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event.event = value
        elif name == "data":
            self._event.data.append(value)
        elif name == "id":
            self._event.id = value
        else:
            return None  # "retry" and unknown fields
        self._seen = True
        return None


class Resume(Exception):
    """The server cut the stream off resumably (``Lagged``); reconnect from the cursor."""


class WatchCursor:
    """Where a watch stands: the request to (re)connect with and what to hand over."""

    def __init__(
        self,
        namespaces: Sequence[str] | str | None,
        since: int,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        threshold: float | None = None,
        filter: dict[str, Any] | None = None,
        thread: str | None = None,
    ) -> None:
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidInput("since", "must be a non-negative integer")
        if namespaces is None:
            namespaces = [""]
        elif isinstance(namespaces, str):
            namespaces = [namespaces]
        elif not isinstance(namespaces, list | tuple):
            raise InvalidInput("namespaces", "must be a list of namespace prefixes")
        # Checked here, as the engine does when a watch is opened, not on first read.
        self.namespaces = [
            check_prefix(n, f"namespaces[{i}]", stored=True) for i, n in enumerate(namespaces)
        ]
        self.since = since
        self.thread = None if thread is None else check_key(thread, "thread")
        self.last = since  # the last revision handed to the consumer
        # The engine's own checks of a subscription, made when the watch is opened.
        parse_filter(filter)
        if query is not None and vector is not None:
            raise InvalidInput("vector", "give a query text or a vector, not both")
        if threshold is not None:
            check_threshold(threshold)
            if query is None and vector is None:
                raise InvalidInput("threshold", "needs a query or a vector")
        self.options: list[tuple[str, str]] = []
        if query is not None:
            self.options.append(("query", str(query)))
        if vector is not None:
            self.options.append(("vector", json.dumps([float(x) for x in vector])))
        if threshold is not None:
            self.options.append(("threshold", repr(threshold)))
        if filter is not None:
            self.options.append(("filter", json.dumps(filter)))
        self.reconnects = 0
        self.lagged = 0

    def call(self) -> Call[None]:
        """The request that continues right after ``last``."""
        params = [("namespaces", n) for n in self.namespaces] + [("since", str(self.last))]
        params += self.options
        if self.thread is not None:
            params.append(("thread", self.thread))
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last > self.since:
            headers["Last-Event-ID"] = str(self.last)
        return Call("GET", "/v1/watch", _nothing, params=params, retry=True, headers=headers)

    def take(self, event: Event) -> list[Change]:
        """The changes of ``event`` not handed over yet; raises the error an event carries."""
        data = "\n".join(event.data)
        if event.event == "error":
            err = error_from_problem(0, json.loads(data) if data else {})
            if isinstance(err, Lagged):
                self.lagged += 1
                raise Resume(str(err)) from err
            raise err
        if event.event not in ("changes", "message") or not data:
            return []
        changes = _CHANGES.validate_json(data)
        fresh = [c for c in changes if c.revision > self.last]
        revision = _revision(event.id, changes)
        if revision is not None and revision > self.last:
            self.last = revision
        return fresh


def _revision(event_id: str | None, changes: list[Change]) -> int | None:
    if event_id and event_id.isdigit():
        return int(event_id)
    return max((c.revision for c in changes), default=None)
