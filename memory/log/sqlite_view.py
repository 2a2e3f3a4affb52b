"""SQLite reads inside the write transaction: the view a commit's plan is checked against."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from hivemem.memory.log.base import LeaseRecord, Row
from hivemem.memory.log.sqlite_filters import filter_sql
from hivemem.memory.log.sqlite_schema import _LEASE_COLS, _ROW_COLS


class _WriteView:
    """Reads inside the write transaction; remembers what it read."""

    def __init__(self, con: sqlite3.Connection, revision: int, now: float) -> None:
        self.con = con
        self.revision = revision
        self.now = now
        self._latest: dict[tuple[str, str], Row | None] = {}

    def latest(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        missing = list(dict.fromkeys(k for k in keys if k not in self._latest))
        for start in range(0, len(missing), 300):
            chunk = missing[start : start + 300]
            for k in chunk:
                self._latest[k] = None
            marks = ",".join("(?,?)" for _ in chunk)
            flat = [x for k in chunk for x in k]
            # CROSS JOIN makes SQLite drive from the key list and seek the primary key;
            # an IN (VALUES ...) here scans the whole items table for every chunk.
            sql = (
                f"WITH k (ns, key) AS (VALUES {marks}) SELECT {_ROW_COLS} FROM k "
                "CROSS JOIN items i ON i.namespace = k.ns AND i.key = k.key "
                "JOIN changes c ON c.id = i.change_id"
            )
            for r in self.con.execute(sql, flat):
                row = Row(*r)
                self._latest[(row.namespace, row.key)] = row
        return {k: r for k in keys if (r := self._latest[k]) is not None}

    def version_row(self, namespace: str, key: str, version: int) -> Row | None:
        r = self.con.execute(
            f"SELECT {_ROW_COLS} FROM changes c WHERE namespace = ? AND key = ? AND version = ?",
            (namespace, key, version),
        ).fetchone()
        return Row(*r) if r else None

    def leases(self, ids: Sequence[str]) -> dict[str, LeaseRecord]:
        out: dict[str, LeaseRecord] = {}
        for lease_id in dict.fromkeys(ids):
            r = self.con.execute(
                f"SELECT {_LEASE_COLS} FROM leases WHERE id = ?", (lease_id,)
            ).fetchone()
            if r:
                out[lease_id] = LeaseRecord(*r)
        return out

    def lease_items(self, lease_id: str) -> list[Row]:
        cur = self.con.execute(
            f"SELECT {_ROW_COLS} FROM items i JOIN changes c ON c.id = i.change_id "
            "WHERE i.live = 1 AND (i.lease = ? OR i.claim_lease = ?) ORDER BY c.id",
            (lease_id, lease_id),
        )
        return [Row(*r) for r in cur]

    def claimable(self, namespace: str, flt: Any, limit: int) -> list[Row]:
        fsql, fp = filter_sql(flt)
        cur = self.con.execute(
            f"SELECT {_ROW_COLS} FROM items i JOIN changes c ON c.id = i.change_id "
            "WHERE i.namespace = ? AND i.queue_at IS NOT NULL "
            f"AND (i.expires_at IS NULL OR i.expires_at > ?) AND {fsql} "
            "ORDER BY i.queue_at, i.key LIMIT ?",
            [namespace, self.now, *fp, limit],
        )
        return [Row(*r) for r in cur]

    def stale_claims(self, namespace: str, limit: int) -> list[str]:
        cur = self.con.execute(
            "SELECT DISTINCT l.id FROM items i JOIN leases l ON l.id = i.claim_lease "
            "WHERE i.namespace = ? AND l.ended_revision IS NULL AND l.deadline <= ? LIMIT ?",
            (namespace, self.now, limit),
        )
        return [r[0] for r in cur]
