"""PostgreSQL wake-ups from other processes: a thread LISTENing for the commit NOTIFYs
of the schema (a mixin of ``PostgresLog``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg


class PostgresListen:
    """The listening connection of ``PostgresLog``."""

    if TYPE_CHECKING:
        url: str
        channel: str
        listen_connects: int
        _kwargs: dict[str, Any]
        _closed: bool
        _origin: str
        _listener: threading.Thread | None
        _listen_con: psycopg.Connection[Any] | None

    def listen(self, wake: Callable[[int | None], None]) -> bool:
        """Call ``wake(revision)`` on every commit NOTIFY of this schema, from any process,
        and ``wake(None)`` after every (re)connect of the listening connection, since
        notifications sent while it was down are lost. A wake-up only: the caller reads
        the log from its last revision. Returns True (this backend can listen).
        """
        if self._listener is None:
            self._listener = threading.Thread(
                target=self._listen_loop, args=(wake,), name="hivemem-listen", daemon=True
            )
            self._listener.start()
        return True

    @property
    def listener_pid(self) -> int | None:
        """The backend pid of the listening connection (to kill it in tests)."""
        con = self._listen_con
        return None if con is None or con.closed else con.info.backend_pid

    def _listen_loop(self, wake: Callable[[int | None], None]) -> None:
        delay = 0.05
        while not self._closed:
            try:
                with psycopg.connect(self.url, **self._kwargs) as con:
                    con.execute(f"LISTEN {self.channel}")
                    self._listen_con = con
                    self.listen_connects += 1
                    delay = 0.05
                    wake(None)  # whatever was committed while nobody listened
                    while not self._closed:
                        for note in con.notifies(timeout=0.5):
                            revision, _, origin = note.payload.partition(" ")
                            if origin != self._origin:  # our own commits are applied already
                                wake(int(revision) if revision.isdigit() else None)
            except (psycopg.Error, OSError):
                self._listen_con = None
                if self._closed:
                    return
                time.sleep(delay)
                delay = min(2.0, delay * 2)
            finally:
                self._listen_con = None
