"""SQLite leases: keeping the ``leases`` table level with the log, reading it, and
keep-alives (a mixin of ``SQLiteLog``)."""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import TYPE_CHECKING

from hivemem.memory.errors import Unavailable
from hivemem.memory.log.base import LeaseRecord, Row
from hivemem.memory.log.sqlite_schema import _LEASE_COLS, _LIVE, _ROW_COLS


class SQLiteLeases:
    """The lease tables of ``SQLiteLog``."""

    if TYPE_CHECKING:
        _w: sqlite3.Connection
        _wlock: threading.RLock
        _closed: bool

        def _r(self) -> sqlite3.Connection: ...

    # -- the leases table, inside a commit -------------------------------------------
    @staticmethod
    def _apply_leases(con: sqlite3.Connection, rows: list[Row]) -> None:
        """Keep the ``leases`` table level with the lease entries of the log."""
        for r in rows:
            info = json.loads(r.info or "{}")
            if info.get("event") == "grant":
                con.execute(
                    "INSERT INTO leases VALUES (?, ?, ?, ?, ?, NULL)",
                    (r.key, r.author, info["ttl"], info["deadline"], r.revision),
                )
            else:
                con.execute(
                    "UPDATE leases SET ended_revision = ? WHERE id = ?", (r.revision, r.key)
                )

    @staticmethod
    def _deadlines(con: sqlite3.Connection, ids: set[str | None]) -> dict[str | None, float]:
        """Leased items live until their lease's deadline: the items table's expiry."""
        out: dict[str | None, float] = {}
        for lease_id in ids:
            r = con.execute(
                "SELECT deadline, ended_revision FROM leases WHERE id = ?", (lease_id,)
            ).fetchone()
            out[lease_id] = 0.0 if r is None or r[1] is not None else float(r[0])
        return out

    # -- leases ----------------------------------------------------------------------
    def proposal_rows(self) -> list[Row]:
        cur = self._r().execute(
            f"SELECT {_ROW_COLS} FROM changes c WHERE c.id IN (SELECT MAX(id) FROM changes "
            "WHERE namespace = '' AND op IN ('propose', 'review') GROUP BY key) ORDER BY c.id"
        )
        return [Row(*r) for r in cur]

    def due_leases(self, now: float, limit: int) -> list[str]:
        cur = self._r().execute(
            "SELECT id FROM leases WHERE ended_revision IS NULL AND deadline <= ? "
            "ORDER BY deadline LIMIT ?",
            (now, limit),
        )
        return [r[0] for r in cur]

    def lease(self, lease_id: str) -> LeaseRecord | None:
        r = (
            self._r()
            .execute(f"SELECT {_LEASE_COLS} FROM leases WHERE id = ?", (lease_id,))
            .fetchone()
        )
        return LeaseRecord(*r) if r else None

    def lease_item_count(self, lease_id: str, now: float) -> int:
        r = (
            self._r()
            .execute(f"SELECT COUNT(*) FROM items i WHERE i.lease = ? AND {_LIVE}", (lease_id, now))
            .fetchone()
        )
        return int(r[0])

    def keepalive(self, lease_id: str, now: float) -> LeaseRecord | None:
        with self._wlock:
            if self._closed:
                raise Unavailable("the store is closed")
            con = self._w
            con.execute("BEGIN IMMEDIATE")
            try:
                r = con.execute(
                    "UPDATE leases SET deadline = ? + ttl WHERE id = ? AND ended_revision IS NULL "
                    f"AND deadline > ? RETURNING {_LEASE_COLS}",
                    (now, lease_id, now),
                ).fetchone()
                if r is not None:
                    con.execute(
                        "UPDATE items SET expires_at = ? WHERE lease = ? AND live = 1",
                        (r[3], lease_id),
                    )
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return LeaseRecord(*r) if r else None
